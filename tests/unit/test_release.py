"""The release id: what ``--version``, ``/healthz`` and the journal show.

Not pure unit tests: they run the command line and build a wheel (no database, no network).
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support import CQRS_DEMO

REPO = Path(__file__).resolve().parents[2]


def test_a_checkout_says_it_is_one_with_its_commit() -> None:
    version = subprocess.run(
        [CQRS_DEMO, "--version"], capture_output=True, text=True, check=True
    ).stdout
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert re.fullmatch(rf"cqrs-demo 0\.1\.0-checkout-g{commit}(-dirty)?\n", version), version


def test_a_built_wheel_carries_the_release_id_it_was_given(tmp_path: Path) -> None:
    """As packaging/build-release does: RELEASE written into a copy of the sources."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(
        REPO / "service",
        source / "service",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
    )
    (source / "service/cqrs_demo/RELEASE").write_text("0.1.0-20260101T000000Z-gabcdef012345\n")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("cqrs_demo-*.whl"))
    target = tmp_path / "installed"
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    shown = subprocess.run(
        [sys.executable, "-c", "from cqrs_demo.release import release_id; print(release_id())"],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
    ).stdout
    assert shown == "0.1.0-20260101T000000Z-gabcdef012345\n"
