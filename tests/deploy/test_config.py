"""A bad setting given to the playbook fails the play before it reaches the running service;
the documented rollback without Ansible swaps the links both ways.

Runs after test_appliance.py, on the hosts it left, and leaves them as they were: the play
is expected to fail at the check of the new environment file, and the rollback is done
twice (back and forward again).
"""

import httpx
import pytest

from tests.deploy.conftest import Appliance
from tests.deploy.documented import host_commands, run_documented
from tests.deploy.hosts import Host
from tests.deploy.playbooks import PlaybookRun
from tests.deploy.test_appliance import (
    CURRENT,
    PREVIOUS,
    main_pid,
    post_order,
    release_running,
    unique,
)

pytestmark = pytest.mark.deploy

FILES = "/etc/cqrs-demo/cqrs-demo.env /etc/cqrs-demo/cqrs-demo-projector.env"


@pytest.fixture(scope="module")
def before(appliance: Appliance) -> dict[str, dict[str, str]]:
    def state(host: Host) -> dict[str, str]:
        return {
            "files": host.run(f"sha256sum {FILES}"),
            "pids": f"{main_pid(host)} {main_pid(host, 'cqrs-demo-projector')}",
            "current": host.run(f"readlink {CURRENT}").strip(),
        }

    return appliance.each(state)


@pytest.fixture(scope="module")
def bogus_runs(appliance: Appliance, before: dict[str, dict[str, str]]) -> dict[str, PlaybookRun]:
    running = before["deb12"]["current"].rsplit("/", 1)[1]
    return appliance.playbook(
        "site.yml",
        "5-site-bogus-log-level",
        running,
        extra={"cqrs_demo_log_level": "bogus"},
    )


@pytest.fixture(scope="module")
def bogus_projector_runs(
    appliance: Appliance, before: dict[str, dict[str, str]], bogus_runs: dict[str, PlaybookRun]
) -> dict[str, PlaybookRun]:
    running = before["deb12"]["current"].rsplit("/", 1)[1]
    return appliance.playbook(
        "site.yml",
        "5-site-bogus-batch-size",
        running,
        extra={"cqrs_demo_projector_batch_size": 0},
    )


def assert_untouched(host: Host, before: dict[str, str]) -> None:
    assert host.run("systemctl is-active cqrs-demo cqrs-demo-projector").split() == [
        "active",
        "active",
    ]
    assert host.run(f"sha256sum {FILES}") == before["files"]
    assert f"{main_pid(host)} {main_pid(host, 'cqrs-demo-projector')}" == before["pids"]
    assert host.run(f"readlink {CURRENT}").strip() == before["current"]
    assert httpx.get(f"{host.url}/healthz", timeout=10).status_code == 200
    assert post_order(host, unique("after_bogus"))[0] == 202


def test_a_bad_log_level_fails_the_play_naming_it_and_the_service_runs_on(
    bogus_runs: dict[str, PlaybookRun], before: dict[str, dict[str, str]], host: Host
) -> None:
    run = bogus_runs[host.name]
    assert run.failed == 1, run.summary()
    output = run.output()
    assert "Write the service's environment file, checked by the release first" in output
    assert "CQRS_LOG_LEVEL='bogus' is invalid" in output, run.summary()
    assert_untouched(host, before[host.name])


def test_a_bad_projector_setting_fails_the_play_and_the_projector_runs_on(
    bogus_projector_runs: dict[str, PlaybookRun], before: dict[str, dict[str, str]], host: Host
) -> None:
    run = bogus_projector_runs[host.name]
    assert run.failed == 1, run.summary()
    assert "CQRS_PROJECTOR_BATCH_SIZE='0' is invalid" in run.output(), run.summary()
    assert_untouched(host, before[host.name])


def test_the_documented_rollback_without_ansible_swaps_current_and_previous(
    appliance: Appliance, host: Host
) -> None:
    recipe = host_commands("Without Ansible, on each API host, swap the two links")
    was, back = host.run(f"readlink {CURRENT} {PREVIOUS}").split()
    run_documented(host, recipe)
    assert host.run(f"readlink {CURRENT} {PREVIOUS}").split() == [back, was]
    assert release_running(host) == back.rsplit("/", 1)[1]
    run_documented(host, recipe)  # and forward again
    assert host.run(f"readlink {CURRENT} {PREVIOUS}").split() == [was, back]
    assert release_running(host) == was.rsplit("/", 1)[1]
    assert release_running(host, "cqrs-demo-projector") == was.rsplit("/", 1)[1]
