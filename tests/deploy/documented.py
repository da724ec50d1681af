"""Commands from docs/operations.md, run on a test host as the document shows them.

The test hosts are reached as root and have no sudo: ``sudo -u postgres CMD`` runs as
``runuser -u postgres -- CMD`` and ``sudo CMD`` as ``CMD``, as the document says to do on
hosts without sudo. The port is the host's PostgreSQL port instead of 5432.
"""

import re

from tests.deploy.hosts import Host
from tests.deploy.playbooks import REPO

OPERATIONS = REPO / "docs/operations.md"


def host_commands(heading: str, block: int = 0) -> list[str]:
    """The ``host$`` lines of the ``block``-th shell block after ``heading`` (text of the
    document), continuation lines joined, comments and prompts removed."""
    text = OPERATIONS.read_text()
    start = text.index(heading)
    blocks = re.findall(r"```sh\n(.*?)```", text[start:], re.S)
    lines = blocks[block].replace("\\\n", " ").splitlines()
    commands = [line.removeprefix("host$ ") for line in lines if line.startswith("host$ ")]
    assert commands, f"no host$ lines in block {block} after {heading!r}"
    return [re.sub(r"\s+#[^']*$", "", command).strip() for command in commands]


def run_documented(host: Host, commands: list[str], *, cwd: str = "/") -> str:
    """Run ``commands`` in one root shell on ``host``, stopping at the first that fails."""
    script = [f"cd {cwd}"]
    for command in commands:
        command = command.replace("sudo -u postgres ", "runuser -u postgres -- ")
        command = re.sub(r"(^|&& |\| )sudo ", r"\1", command)
        script.append(command.replace(" -p 5432 ", f" -p {host.postgresql_port} "))
    return host.run("set -e; " + "; ".join(script), timeout=120)
