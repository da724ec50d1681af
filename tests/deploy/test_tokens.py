"""Bearer tokens through the playbook: required once configured, open again once removed;
verify.yml with a verification token the service does not know fails saying what the
service answered, and shows no token.

Runs last (after test_crash.py): it changes the installed configuration, then restores it.
"""

import hashlib
import json
import urllib.error
import urllib.request

import pytest

from tests.deploy.conftest import Appliance
from tests.deploy.hosts import Host
from tests.deploy.playbooks import PlaybookRun
from tests.deploy.test_appliance import assert_clean, post_order, unique

pytestmark = pytest.mark.deploy

TOKEN = "cqrs_deploy-test-token-not-secret"
TOKEN_LINE = f"orders-app sha256:{hashlib.sha256(TOKEN.encode()).hexdigest()}"


@pytest.fixture(scope="module")
def with_tokens(appliance: Appliance) -> dict[str, PlaybookRun]:
    return appliance.playbook(
        "site.yml",
        "7-site-tokens",
        appliance.next_release,
        extra={"cqrs_demo_api_tokens": [TOKEN_LINE]},
    )


@pytest.fixture(scope="module")
def without_tokens(
    appliance: Appliance, with_tokens: dict[str, PlaybookRun]
) -> dict[str, PlaybookRun]:
    return appliance.playbook("site.yml", "8-site-no-tokens", appliance.next_release)


def post_with_token(host: Host, token: str) -> int:
    request = urllib.request.Request(
        f"{host.url}/api/commands/order/create",
        data=json.dumps(
            {"user_id": unique("token"), "product_id": "p", "quantity": 1, "total_price": 1}
        ).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_configured_tokens_are_required_and_verify_still_passes(
    with_tokens: dict[str, PlaybookRun], host: Host
) -> None:
    assert_clean(with_tokens, host.name)  # site.yml ends with verify.yml, using its token
    assert post_order(host, unique("no_token"))[0] == 401
    assert post_with_token(host, "cqrs_wrong") == 401
    assert post_with_token(host, TOKEN) == 202
    mode = host.run("stat -c '%a %U:%G' /etc/cqrs-demo/tokens /etc/cqrs-demo/verify-token")
    assert mode.split("\n")[:2] == ["640 root:cqrs-demo", "600 root:root"]
    assert TOKEN not in with_tokens[host.name].output()


def test_removing_the_tokens_opens_the_api_again(
    without_tokens: dict[str, PlaybookRun], host: Host
) -> None:
    assert_clean(without_tokens, host.name)
    assert post_order(host, unique("open_again"))[0] == 202
    assert host.try_run("test -e /etc/cqrs-demo/tokens").returncode == 1


WRONG_VERIFY_TOKEN = "cqrs_deploy-test-wrong-verify-token"


@pytest.fixture(scope="module")
def verified_with_a_wrong_token(
    appliance: Appliance, without_tokens: dict[str, PlaybookRun]
) -> dict[str, PlaybookRun]:
    """verify.yml with the verification token replaced (the service keeps the old one's
    hash); the token put back after it."""
    token = "/etc/cqrs-demo/verify-token"
    for host in appliance.hosts.values():
        host.run(f"cp -p {token} {token}.kept && printf %s {WRONG_VERIFY_TOKEN} > {token}")
    try:
        return appliance.playbook("verify.yml", "8b-verify-wrong-token")
    finally:
        for host in appliance.hosts.values():
            host.run(f"mv {token}.kept {token}")


@pytest.fixture(scope="module")
def verified_again(
    appliance: Appliance, verified_with_a_wrong_token: dict[str, PlaybookRun]
) -> dict[str, PlaybookRun]:
    return appliance.playbook("verify.yml", "8c-verify-again")


def test_a_verification_the_service_refuses_says_what_it_answered(
    verified_with_a_wrong_token: dict[str, PlaybookRun],
    verified_again: dict[str, PlaybookRun],
    host: Host,
) -> None:
    run = verified_with_a_wrong_token[host.name]
    output = run.output()
    assert not run.succeeded, run.summary()
    assert "POST /api/commands/order/create answered 400, not 202" in output, run.summary()
    assert "cqrs-verify:" in output.split("answered 400", 1)[1][:2000], run.summary()
    assert WRONG_VERIFY_TOKEN not in output
    assert_clean(verified_again, host.name)  # the token put back: it passes again
