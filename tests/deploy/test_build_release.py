"""packaging/build-release: the id it names a release by, and the id inside the release.

Needs no host: builds from a clone of this repository's HEAD, sharing its wheelhouse (the
appliance's builds fill it; a first build downloads the locked wheels from PyPI).
"""

import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.deploy.playbooks import REPO

pytestmark = pytest.mark.deploy


def build(clone: Path, dist: Path) -> str:
    done = subprocess.run(
        [str(clone / "packaging/build-release"), "--dist", str(dist)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "CQRS_PYTHON": sys.executable},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def release_in_wheel(dist: Path, release: str) -> str:
    with tarfile.open(dist / f"cqrs-demo-{release}.tar") as tar:
        wheel = next(m for m in tar.getmembers() if re.search(r"cqrs_demo-.*\.whl$", m.name))
        data = tar.extractfile(wheel)
        assert data is not None
        with zipfile.ZipFile(data) as zipped:
            return zipped.read("cqrs_demo/RELEASE").decode()


def test_an_inventory_in_the_checkout_keeps_the_release_clean_a_source_change_does_not(
    tmp_path: Path,
) -> None:
    clone = tmp_path / "cqrs-demo"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    (clone / "dist").mkdir()
    (REPO / "dist/wheelhouse").mkdir(parents=True, exist_ok=True)
    (clone / "dist/wheelhouse").symlink_to(REPO / "dist/wheelhouse")
    commit = subprocess.run(
        ["git", "-C", str(clone), "rev-parse", "--short=12", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    inventory = clone / "ansible/inventory"
    (inventory / "mine.yml").write_text("all: {}\n")
    (inventory / "group_vars/all").mkdir(parents=True)
    (inventory / "group_vars/all/vault.yml").write_text("$ANSIBLE_VAULT;1.1;AES256\n")
    clean = build(clone, tmp_path / "releases")
    assert re.fullmatch(rf"0\.1\.0-\d{{8}}T\d{{6}}Z-g{commit}", clean), clean
    assert release_in_wheel(tmp_path / "releases", clean) == f"{clean}\n"
    with (clone / "service/cqrs_demo/__init__.py").open("a") as source:
        source.write("# changed\n")
    dirty = build(clone, tmp_path / "releases")
    assert dirty.endswith(f"-g{commit}-dirty"), dirty
