"""A throwaway PostgreSQL cluster for the local run, the tests and the benchmark.

It uses the distribution's server binaries (``/usr/lib/postgresql/<major>/bin``), keeps
its data in a temporary directory, listens on 127.0.0.1 and on a Unix socket inside that
directory, trusts local connections (loopback only, nothing to steal) and is removed when
stopped. As root it runs the server as the ``postgres`` user, since PostgreSQL refuses root.

``LocalPostgres(standby_of=primary)`` is a streaming replica of another such server: a base
backup of it (``pg_basebackup -R``) in a directory of its own, a hot standby on its own port
and socket, which ``promote`` makes a primary.
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

SUPERUSER = "postgres"


class LocalPostgresError(Exception):
    """The throwaway cluster could not be created or started; the message says why."""


def find_bindir() -> Path:
    """The newest installed PostgreSQL's ``bin`` directory; raises if there is none."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parent.parent.name),
    )
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise LocalPostgresError(
        "no PostgreSQL server binaries found: install them with 'apt-get install postgresql'"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LocalPostgres:
    """A private PostgreSQL server. Use as a context manager, or ``start()``/``stop()``.

    ``durable=False`` (the default) turns fsync off: fast and fine for tests. The benchmark
    passes ``durable=True`` to measure with production durability (fsync, synchronous
    commit, full page writes).

    ``standby_of``: a hot standby streaming from that (running) server, made by its first
    ``start`` from a base backup; it has the primary's settings, ``port`` and ``settings``
    apart, and the primary's databases.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        durable: bool = False,
        settings: dict[str, str] | None = None,
        standby_of: "LocalPostgres | None" = None,
    ) -> None:
        self.port = port or free_port()
        self.durable = durable
        self.extra_settings = settings or {}
        self.primary = standby_of
        self.bindir = find_bindir()
        self.directory = Path(tempfile.mkdtemp(prefix="cqrs-demo-pg-"))
        self.datadir = self.directory / "data"
        self._user = SUPERUSER if os.geteuid() == 0 else None

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> None:
        if self._user is not None:
            self._ensure_user()
            entry = pwd.getpwnam(self._user)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
        if not self.datadir.exists() and self.primary is not None:
            self._base_backup(self.primary)
            self._write_settings()
        elif not self.datadir.exists():
            self._run(
                "initdb",
                "-D",
                str(self.datadir),
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-instructions",
            )
            self._write_settings()
        self._run(
            "pg_ctl",
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            str(self.datadir),
            "-l",
            str(self.directory / "server.log"),
            new_session=True,
        )

    def stop(self, *, remove: bool = True) -> None:
        if (self.datadir / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.datadir), check=False)
        if remove:
            shutil.rmtree(self.directory, ignore_errors=True)

    def promote(self) -> None:
        """Make this standby a primary; return once it accepts writes (``pg_ctl promote
        -w``: it waits until the server has left recovery)."""
        self._run("pg_ctl", "promote", "-w", "-t", "60", "-D", str(self.datadir))

    def create_database(self, name: str) -> None:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, name)

    def psql(self, dbname: str, sql: str) -> str:
        """Run ``sql`` with psql and return its unaligned, tuples-only output."""
        return self._run(
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            SUPERUSER,
            "-d",
            dbname,
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        )

    def __enter__(self) -> "LocalPostgres":
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _write_settings(self) -> None:
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.directory}'",
            "max_connections": "200",
            "shared_buffers": "256MB",
            "fsync": "on" if self.durable else "off",
            "synchronous_commit": "on" if self.durable else "off",
            "full_page_writes": "on" if self.durable else "off",
            "log_min_messages": "warning",
            **self.extra_settings,
        }
        with (self.datadir / "postgresql.auto.conf").open("a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def _base_backup(self, primary: "LocalPostgres") -> None:
        """Copy ``primary`` into this data directory, streaming the WAL made meanwhile, with
        the settings that make it a standby of it (``-R``: ``standby.signal`` and
        ``primary_conninfo``). The primary's ``pg_hba.conf`` (initdb's) trusts replication
        connections from 127.0.0.1."""
        self._run(
            "pg_basebackup",
            "-D",
            str(self.datadir),
            "-h",
            "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            SUPERUSER,
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
        )

    def _ensure_user(self) -> None:
        try:
            pwd.getpwnam(SUPERUSER)
        except KeyError:
            raise LocalPostgresError(
                f"running as root needs the system user {SUPERUSER!r} to own the server: "
                "install the postgresql package (it creates the user)"
            ) from None

    def _run(self, program: str, *args: str, check: bool = True, new_session: bool = False) -> str:
        command = [str(self.bindir / program), *args]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            cwd=self.directory,
            start_new_session=new_session,
            timeout=120,
        )
        if check and result.returncode != 0:
            log_tail = ""
            server_log = self.directory / "server.log"
            if server_log.exists():
                log_tail = server_log.read_text(errors="replace")[-2000:]
            raise LocalPostgresError(
                f"{program} failed ({result.returncode}): {result.stderr.strip()}\n{log_tail}"
            )
        return result.stdout
