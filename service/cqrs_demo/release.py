"""Which build of cqrs-demo this is: the release id, for ``--version``, ``/healthz``, the
start-up lines in the journal and ``cqrs-demo status``.

A release made by ``packaging/build-release`` carries its id in the file ``RELEASE`` of
the package (written into the wheel it builds; the same id names the tar file, the
directory under ``/var/www/cqrs-demo/releases/`` and ``BUILD_INFO``). Run from a checkout,
there is no such file, and the id says so: ``<version>-checkout-g<commit>[-dirty]`` from
``git describe``, or ``<version>-checkout`` where git cannot tell.
"""

import subprocess
from functools import cache
from importlib import resources
from pathlib import Path

from cqrs_demo import __version__

RELEASE_FILE = "RELEASE"


@cache
def release_id() -> str:
    """The release id of this build, read (or asked of git) once per process."""
    try:
        written = resources.files("cqrs_demo").joinpath(RELEASE_FILE).read_text("utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return _checkout_id(Path(__file__).resolve().parent)
    return written.strip() or f"{__version__}-unknown"


def _checkout_id(package: Path) -> str:
    try:
        described = subprocess.run(
            [
                "git",
                "-C",
                str(package),
                "describe",
                "--always",
                "--dirty",
                "--abbrev=12",
                "--exclude=*",
            ],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"{__version__}-checkout"
    return f"{__version__}-checkout-g{described}" if described else f"{__version__}-checkout"
