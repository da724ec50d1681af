"""The projector's systemd unit: notify type, the API unit's settings and sandbox."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def directives(unit: str) -> list[str]:
    text = (REPO / "systemd" / unit).read_text()
    return [line for line in text.splitlines() if line and not line.startswith(("#", "["))]


def test_the_projector_unit_runs_cqrs_demo_project_and_notifies() -> None:
    lines = directives("cqrs-demo-projector.service")
    assert "Type=notify" in lines
    assert "ExecStart=/var/www/cqrs-demo/current/venv/bin/cqrs-demo project" in lines
    assert "RestartPreventExitStatus=78" in lines


def test_the_projector_unit_has_the_api_units_settings_and_sandbox() -> None:
    api = directives("cqrs-demo.service")
    projector = directives("cqrs-demo-projector.service")
    shared = [line for line in api if line.split("=")[0] not in _API_ONLY]
    assert [line for line in projector if line in shared] == shared
    sandbox = api[api.index("UMask=0077") :]
    assert projector[projector.index("UMask=0077") :] == sandbox


# What only a process serving HTTP needs, or says of itself.
_API_ONLY = {
    "Description",
    "ExecStart",
    "SyslogIdentifier",
    "KillMode",
    "TimeoutStopSec",
    "LimitNOFILE",
}
