"""``cqrs-demo config check``: environment files checked before they replace the old ones."""

from pathlib import Path

import pytest

from cqrs_demo.cli import EXIT_CONFIG, main

URL = "CQRS_DATABASE_URL=postgresql://cqrs_app@127.0.0.1:5432/cqrs_events\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_valid_file_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = write(tmp_path / "a.env", f"# managed\n\n{URL}CQRS_LOG_LEVEL=info\nCQRS_PORT='8080'\n")
    assert main(["config", "check", str(env)]) == 0
    assert capsys.readouterr().out == f"ok: {env}: 3 variables, every setting valid\n"


def test_a_bad_value_is_78_naming_the_file_and_the_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = write(tmp_path / "a.env", f"{URL}CQRS_LOG_LEVEL=bogus\n")
    assert main(["config", "check", str(env)]) == EXIT_CONFIG
    assert capsys.readouterr().err == (
        f"cqrs-demo: {env}: CQRS_LOG_LEVEL='bogus' is invalid:"
        " must be one of debug, info, warning, error, critical\n"
    )


def test_a_later_file_wins_as_in_the_projector_unit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = write(tmp_path / "service.env", f"{URL}CQRS_PROJECTOR_BATCH_SIZE=0\n")
    projector = write(tmp_path / "projector.env", "CQRS_PROJECTOR_BATCH_SIZE=500\n")
    assert main(["config", "check", str(service)]) == EXIT_CONFIG
    assert "CQRS_PROJECTOR_BATCH_SIZE='0' is invalid" in capsys.readouterr().err
    assert main(["config", "check", str(service), str(projector)]) == 0


def test_a_line_that_is_no_assignment_is_78_naming_its_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = write(tmp_path / "a.env", f"{URL}\nCQRS_PORT 8080\n")
    assert main(["config", "check", str(env)]) == EXIT_CONFIG
    assert capsys.readouterr().err == (
        f"cqrs-demo: {env} line 3 is not NAME=VALUE: 'CQRS_PORT 8080'\n"
    )


def test_a_missing_file_is_78_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(tmp_path / "none.env")]) == EXIT_CONFIG
    assert capsys.readouterr().err == (
        f"cqrs-demo: {tmp_path / 'none.env'} cannot be read: No such file or directory\n"
    )


def test_the_database_url_is_required(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = write(tmp_path / "a.env", "CQRS_LOG_LEVEL=info\n")
    assert main(["config", "check", str(env)]) == EXIT_CONFIG
    assert "CQRS_DATABASE_URL is not set" in capsys.readouterr().err
