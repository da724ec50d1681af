"""The benchmark's options refuse a combination that would measure something else than asked,
naming it, before anything starts."""

import pytest

from tests.bench.options import parse_arguments


@pytest.mark.parametrize(
    "argv",
    [
        ["--compare-projector", "floor"],  # no projector, no 'other'
        ["--projector", "--compare-projector", "floor"],  # no 'other'
        ["--compare-commit", "HEAD", "--compare-projector", "floor"],  # no --projector
    ],
)
def test_a_projector_for_other_without_a_projector_and_other_is_refused(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_arguments(argv)
    assert exit_.value.code == 2
    assert "--compare-projector is for 'other' beside --projector" in capsys.readouterr().err


def test_other_gets_the_projector_of_ours_unless_told() -> None:
    assert parse_arguments(["--projector", "--compare-commit", "HEAD"]).compare_projector == (
        "project"
    )
    floor = ["--projector", "floor", "--compare-commit", "HEAD", "--compare-projector", "project"]
    arguments = parse_arguments(floor)
    assert (arguments.projector, arguments.compare_projector) == ("floor", "project")
