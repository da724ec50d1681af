"""The code under test: this checkout, another tree, or a commit exported read-only."""

import subprocess
from pathlib import Path

from tests.bench.postgres import REPO


def export_commit(revision: str | None, directory: Path) -> Path | None:
    """The service of ``revision`` (``git archive``, read-only for the repository)."""
    if revision is None:
        return None
    full = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", f"{revision}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    directory.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", full, "service"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive, check=True)
    (directory / "COMMIT").write_text(full + "\n")
    return directory


def describe_tree(tree: Path | None) -> str:
    if tree is not None and (tree / "COMMIT").exists():
        return f"{tree} (commit {(tree / 'COMMIT').read_text().strip()})"
    commit = subprocess.run(
        ["git", "-C", str(tree or REPO), "describe", "--always", "--dirty", "--abbrev=12"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"{tree or REPO} ({'commit ' + commit if commit else 'not a git checkout'})"
