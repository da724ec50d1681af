"""Optional bearer tokens for commands, stored only as SHA-256 hashes.

A presented token is hashed and compared with every configured hash in constant time
(``hmac.compare_digest``, no early exit), so the answer's timing tells nothing about which
hash or how much of it matched. The token itself is never logged or echoed.
"""

import hashlib
import hmac
import secrets
from collections.abc import Sequence

from starlette.types import Scope

from cqrs_demo.api.body import request_headers
from cqrs_demo.api.problems import Problem

TOKEN_PREFIX = "cqrs_"  # noqa: S105 - a prefix that makes tokens recognisable, no secret


def new_token() -> tuple[str, str]:
    """A fresh random token and its SHA-256 hex digest (the line for the tokens file)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, hashlib.sha256(token.encode()).hexdigest()


class BearerTokens:
    """Checks ``Authorization: Bearer <token>`` against named token hashes: the clients'
    (``tokens``; none: every request may send commands) and, apart, the deployment's
    verification's (``verification``: the only ones that may write a reserved
    ``cqrs-verify:`` stream; none: no request may)."""

    def __init__(
        self,
        tokens: Sequence[tuple[str, bytes]],
        *,
        verification: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        self._tokens = tuple(tokens)
        self._verification = tuple(verification)

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def client(self, authorization: bytes | None) -> str | None:
        """The name of the token presented in the ``Authorization`` header's value; None when
        no token is configured.

        Raises a 401 ``Problem`` when tokens are configured and none valid was presented.
        """
        if not self._tokens:
            return None
        matched = _matching(self._tokens, authorization)
        if matched is None:
            raise Problem(
                401,
                "a valid bearer token is required: Authorization: Bearer <token>",
                headers={"WWW-Authenticate": 'Bearer realm="cqrs-demo"'},
            )
        return matched

    def verifies(self, authorization: bytes | None) -> bool:
        """Whether the ``Authorization`` header's value presents a verification token (in
        constant time, as ``client``)."""
        return _matching(self._verification, authorization) is not None

    def authorize(self, scope: Scope) -> None:
        """``client`` of the request's ``Authorization`` header, left in ``scope["state"]``
        for the access log: the check every read makes first (401 ``Problem`` as there)."""
        authorization = request_headers(scope).get(b"authorization")
        scope.setdefault("state", {})["client"] = self.client(authorization)


def _matching(tokens: Sequence[tuple[str, bytes]], authorization: bytes | None) -> str | None:
    """The name of the token of ``tokens`` that the ``Authorization`` value presents as
    ``Bearer <token>``, compared with every hash (no early exit); None if none."""
    scheme, _, token = (authorization or b"").decode("latin-1").partition(" ")
    digest = hashlib.sha256(token.strip().encode("utf-8", "replace")).digest()
    matched = None
    for name, expected in tokens:
        if hmac.compare_digest(digest, expected) and scheme.lower() == "bearer":
            matched = name
    return matched
