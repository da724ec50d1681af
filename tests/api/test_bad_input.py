"""Every bad request gets a 4xx problem that names the problem, and writes nothing.

"Nothing" is checked on the whole table, not on the user the test named: most bad bodies
name no user at all, and a refused request that wrote anything, for anyone, must fail.
"""

import uuid
from collections.abc import Iterator

import pytest

from tests.support import Service, raw_exchange

CREATE = "/api/commands/order/create"
VALID = b'{"user_id": "%s", "product_id": "prod_456", "quantity": 2, "total_price": 150.00}'
JSON = {"content-type": "application/json"}


FORBIDDEN_IN_PRODUCT_ID = (
    "product_id must not contain control characters, bidirectional overrides or lone surrogates"
)


@pytest.fixture
def user(nothing_written: None) -> str:
    """A user id no test wrote, in a test that must leave the events table unchanged."""
    return f"bad_input_{uuid.uuid4().hex[:12]}"


def send(
    service: Service,
    content: bytes,
    headers: dict[str, str] | None = None,
    method: str = "POST",
    path: str = CREATE,
) -> tuple[int, dict[str, object], dict[str, str]]:
    with service.client() as client:
        response = client.request(
            method, path, content=content, headers=JSON if headers is None else headers
        )
    assert response.headers["content-type"] == "application/problem+json", response.text
    problem = response.json()
    assert problem["status"] == response.status_code
    assert set(problem) >= {"type", "title", "status", "detail"}
    return response.status_code, problem, dict(response.headers)


def field_errors(problem: dict[str, object]) -> dict[str, str]:
    """The problem's ``errors`` list as {field: message}."""
    errors = problem["errors"]
    assert isinstance(errors, list), problem
    return {str(error["field"]): str(error["message"]) for error in errors}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            b"{not json",
            "Invalid JSON payload: Expecting property name enclosed in double quotes"
            " at line 1 column 2",
        ),
        (b"", "Invalid JSON payload: the body is empty"),
        (b"[1, 2]", "Invalid JSON payload: the body must be a JSON object"),
        (b'"text"', "Invalid JSON payload: the body must be a JSON object"),
        (b'{"user_id": "a", "user_id": "b"}', "Invalid JSON payload: duplicate key 'user_id'"),
        (b'{"total_price": NaN}', "Invalid JSON payload: NaN is not a JSON number"),
        (b'{"total_price": -Infinity}', "Invalid JSON payload: -Infinity is not a JSON number"),
        (
            b'{"quantity": 1' + b"0" * 5000 + b"}",
            "Invalid JSON payload: a number has too many digits",
        ),
        (b"[" * 5000 + b"]" * 5000, "Invalid JSON payload: nested too deeply"),
        (b'{"user_id": "\xff"}', "Invalid JSON payload: not valid UTF-8 at byte 13"),
        ('{"user_id": "ü"}'.encode("utf-16"), "Invalid JSON payload: not valid UTF-8 at byte 0"),
        (
            b'\xef\xbb\xbf{"user_id": "u"}',
            "Invalid JSON payload: the body starts with a byte order mark (BOM)",
        ),
    ],
)
def test_a_body_that_is_not_one_json_object_is_a_400(
    service: Service, user: str, body: bytes, detail: str
) -> None:
    status, problem, _ = send(service, body)
    assert (status, problem["detail"]) == (400, detail)


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        (b'"product_id": "p", "quantity": 1, "total_price": 1', {"user_id": "user_id is required"}),
        (
            b'"user_id": "%(u)s", "product_id": null, "quantity": 1, "total_price": 1',
            {"product_id": "product_id is required"},
        ),
        (
            b'"user_id": "%(u)s", "product_id": "p", "quantity": 2.5, "total_price": 1',
            {"quantity": "quantity must be an integer"},
        ),
        (
            b'"user_id": "%(u)s", "product_id": "p", "quantity": "2", "total_price": 1',
            {"quantity": "quantity must be an integer"},
        ),
        (
            b'"user_id": "%(u)s", "product_id": "p", "quantity": true, "total_price": 1',
            {"quantity": "quantity must be an integer"},
        ),
        (
            b'"user_id": "%(u)s", "product_id": "p", "quantity": 0, "total_price": 1',
            {"quantity": "quantity must be between 1 and 2147483647, got 0"},
        ),
        (
            b'"user_id": "%(u)s", "product_id": "p", "quantity": 1, "total_price": -0.5',
            {"total_price": "total_price must not be negative"},
        ),
        (
            b'"user_id": "%(u)s", "product_id": "p", "quantity": 1, "total_price": 1e400',
            {"total_price": "total_price must be less than 1000000000000000"},
        ),
        (
            b'"user_id": "%(u)s", "product_id": "p", "quantity": 1, "total_price": "1"',
            {"total_price": "total_price must be a number"},
        ),
        (
            b'"user_id": "%(u)s", "product_id": "p\\u0000", "quantity": 1, "total_price": 1',
            {"product_id": f"{FORBIDDEN_IN_PRODUCT_ID}; found U+0000 at character 2"},
        ),
        (
            b'"user_id": "%(u)s", "product_id": "\\ud800", "quantity": 1, "total_price": 1',
            {"product_id": f"{FORBIDDEN_IN_PRODUCT_ID}; found U+D800 at character 1"},
        ),
        (
            b'"user_id": "%(u)s", "product_id": {"a": 1}, "quantity": [1], "total_price": 1',
            {
                "product_id": "product_id must be a string",
                "quantity": "quantity must be an integer",
            },
        ),
        (
            b'"user_id": "%(u)s", "product_id": "p", "quantity": 1, "total_price": 1,'
            b' "timestamp": "yesterday"',
            {"timestamp": "timestamp must be an RFC 3339 date-time with an offset"},
        ),
        (
            b'"user_id": "%(u)s", "product_id": "p", "quantity": 1, "total_price": 1,'
            b' "expected_version": -1',
            {"expected_version": "expected_version must be between 0 and 9223372036854775807"},
        ),
        (
            b'"user_id": "%(u)s", "product_id": "p", "quantity": 1, "total_price": 1,'
            b' "coupon": "FREE", "admin": true',
            {"coupon": "unknown field: coupon", "admin": "unknown field: admin"},
        ),
    ],
)
def test_every_failing_field_is_named(
    service: Service, user: str, fields: bytes, errors: dict[str, str]
) -> None:
    status, problem, _ = send(service, b"{" + fields % {b"u": user.encode()} + b"}")
    assert status == 400
    assert field_errors(problem) == errors
    assert problem["detail"] == "; ".join(errors.values())


def test_a_long_user_id_is_refused(service: Service, user: str) -> None:
    status, problem, _ = send(service, VALID % (user + "x" * 255).encode())
    assert status == 400
    assert problem["detail"] == "user_id must be at most 255 characters, got 277"


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        ("3.5", 'If-Match must be one version in quotes, like "3"; got 3.5'),
        ('W/"3"', 'If-Match must be one version in quotes, like "3"; got W/"3"'),
        ("*", 'If-Match must be one version in quotes, like "3"; got *'),
    ],
)
def test_a_malformed_if_match_is_a_400(
    service: Service, user: str, header: str, detail: str
) -> None:
    status, problem, _ = send(service, VALID % user.encode(), {**JSON, "If-Match": header})
    assert (status, problem["detail"]) == (400, detail)


def test_if_match_and_expected_version_that_disagree_are_a_400(service: Service, user: str) -> None:
    body = (
        b'{"user_id": "%s", "product_id": "p", "quantity": 1, "total_price": 1,'
        b' "expected_version": 0}' % user.encode()
    )
    status, problem, _ = send(service, body, {**JSON, "If-Match": '"4"'})
    assert (status, problem["detail"]) == (400, 'expected_version 0 and If-Match "4" disagree')


def test_a_bad_correlation_id_is_a_400(service: Service, user: str) -> None:
    status, problem, _ = send(service, VALID % user.encode(), {**JSON, "X-Correlation-ID": "a b"})
    assert (status, problem["detail"]) == (
        400,
        "X-Correlation-ID must be 1 to 200 printable ASCII characters",
    )


@pytest.mark.parametrize(
    ("content_type", "detail"),
    [
        ("text/plain", "Content-Type must be application/json, got text/plain"),
        (
            "application/x-www-form-urlencoded",
            "Content-Type must be application/json, got application/x-www-form-urlencoded",
        ),
        (None, "Content-Type must be application/json, got none"),
        ("application/json; charset=latin-1", "Content-Type charset must be utf-8"),
    ],
)
def test_a_body_that_is_not_json_is_a_415(
    service: Service, user: str, content_type: str | None, detail: str
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    status, problem, response_headers = send(service, VALID % user.encode(), headers)
    assert (status, problem["detail"]) == (415, detail)
    assert response_headers["accept-post"] == "application/json"


def test_json_with_a_charset_or_a_json_suffix_is_accepted(service: Service) -> None:
    name = f"charset_{uuid.uuid4().hex[:12]}"
    with service.client() as client:
        for content_type in ("application/json; charset=UTF-8", "application/merge+json"):
            response = client.post(
                CREATE, content=VALID % name.encode(), headers={"content-type": content_type}
            )
            assert response.status_code == 202, response.text


def test_a_declared_oversized_body_is_a_413_before_it_is_read(
    service: Service, nothing_written: None
) -> None:
    # Only the headers are sent: the answer must come without the body.
    answer, _ = raw_exchange(
        service.url,
        b"POST " + CREATE.encode() + b" HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"request body is larger than 65536 bytes" in answer


def test_an_oversized_chunked_body_is_a_413(service: Service, nothing_written: None) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b" " * 1024

    with service.client() as client:
        response = client.post(CREATE, content=chunks(), headers=JSON)
    assert response.status_code == 413
    assert response.json()["detail"] == "request body is larger than 65536 bytes"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_another_method_is_a_405_with_allow_post(
    service: Service, nothing_written: None, method: str
) -> None:
    status, problem, headers = send(service, b"", method=method)
    assert (status, problem["detail"]) == (405, "method not allowed; allowed: POST")
    assert headers["allow"] == "POST"


def test_an_unknown_path_is_a_404(service: Service, nothing_written: None) -> None:
    status, problem, _ = send(service, b"{}", path="/api/commands/order/ship")
    assert (status, problem["title"]) == (404, "Not Found")
