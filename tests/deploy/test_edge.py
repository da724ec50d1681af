"""The installed unit's HTTP edge, with its real limits: the open-file limit systemd gives
the workers, an idle crowd larger than systemd's default of 1,024 files, a head over the
16 KiB limit. (The API tests try every limit on a service of their own with small ones.)
"""

import re
import resource
import time

import pytest

from tests.deploy.hosts import Host
from tests.deploy.test_appliance import post_order, unique
from tests.http_wire import (
    closed_by_server,
    exchange,
    get,
    head_of,
    idle_connections,
    probes_during_a_huge_head,
)
from tests.support import require, wait_for_match

pytestmark = pytest.mark.deploy

CROWD = 1100
HEAD_LIMIT = 16_384  # CQRS_HEAD_LIMIT's default
HEAD_SECONDS = 10  # cqrs_demo_head_timeout's default


def service_pids(host: Host) -> list[int]:
    """The main process of cqrs-demo.service and its children (the workers, and
    multiprocessing's resource tracker)."""
    main = int(host.run("systemctl show -p MainPID --value cqrs-demo").strip())
    children = host.run(f"grep -lE '^PPid:[[:space:]]+{main}$' /proc/[0-9]*/status")
    return [main] + [int(path.split("/")[2]) for path in children.split()]


def journal_since(host: Host, since: str, text: str) -> str:
    """The service's journal since ``since`` (seconds since the epoch), once it holds
    ``text`` (``wait_for_match``: lines reach the journal a moment after the event)."""
    command = f"journalctl -u cqrs-demo --since @{since} -o cat --no-pager"
    return wait_for_match(lambda: host.run(command), re.escape(text)).string


def open_files(host: Host, pid: int) -> tuple[int, int]:
    """The soft and hard open-file limits of process ``pid`` on ``host``."""
    limits = host.run(f"grep 'Max open files' /proc/{pid}/limits").split()
    return int(limits[3]), int(limits[4])


def test_every_process_of_the_unit_has_the_units_open_file_limit(host: Host) -> None:
    assert host.run("systemctl show -p LimitNOFILE --value cqrs-demo").strip() == "65536"
    # systemd cannot give a unit more than its own hard limit: on a machine, 65536; in a
    # test container, whatever the container was given (the test process's own limit).
    ceiling = min(65536, open_files(host, 1)[1])
    assert ceiling > 1024, "the test container leaves no room above systemd's default"
    pids = service_pids(host)
    assert len(pids) >= 2, pids  # the main process and at least one worker
    for pid in pids:
        assert open_files(host, pid) == (ceiling, ceiling), pid


def test_an_idle_crowd_leaves_the_service_serving_and_is_closed_in_time(host: Host) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    require(hard >= CROWD + 200, f"an open-file hard limit of {CROWD + 200} (the test's sockets)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, CROWD + 200), hard))
    since = host.run("date +%s").strip()
    with idle_connections(host.url, CROWD) as crowd:
        opened = time.monotonic()
        for _ in range(3):
            assert get(host.url, "/healthz").status == 200
        status, body = post_order(host, unique("crowd"))
        assert status == 202, body
        # Nothing sent: each is closed once the head timeout has passed (and the next
        # sweep, within a second); 10 s more is for a loaded machine, not a measurement.
        while time.monotonic() - opened < HEAD_SECONDS + 10:
            still_open = [conn for conn in crowd if not closed_by_server(conn)]
            if not still_open:
                break
            time.sleep(0.5)
        closed_after = time.monotonic() - opened
    assert not still_open, f"{len(still_open)} of {CROWD} still open after {closed_after:.0f} s"
    assert closed_after >= HEAD_SECONDS - 1  # not before the timeout (1 s: opening the crowd)
    line = f"that sent nothing for {HEAD_SECONDS} s"
    assert line in journal_since(host, since, line)


def test_a_head_over_16_kib_is_a_431_and_a_64_mb_one_stalls_nobody(host: Host) -> None:
    assert [answer.status for answer in exchange(host.url, head_of(HEAD_LIMIT))] == [200]
    answers = exchange(host.url, head_of(HEAD_LIMIT + 1))
    assert [answer.status for answer in answers] == [431]
    assert answers[0].problem()["status"] == 431

    served_in, _ = probes_during_a_huge_head(host.url, 64)
    # The stall this guards against was 5 s for one 64 MB head; 1 s is far above a probe's
    # time on a loaded 2-core machine.
    assert max(served_in) < 1.0, served_in


def test_a_restart_logs_every_worker_to_its_end(host: Host) -> None:
    since = host.run("date +%s").strip()
    host.run("systemctl restart cqrs-demo", timeout=120)
    last = "stopped; workers' exit codes: worker-0 0"
    journal = journal_since(host, since, last)
    # Each worker's last lines reach the journal (they were lost when uvicorn's re-raised
    # SIGTERM ended the worker), then the main process names every worker's exit code.
    assert "Application shutdown complete." in journal, journal
    assert "worker stopped: in-flight requests answered, pool closed" in journal, journal
    assert last in journal, journal
    status, body = post_order(host, unique("after_restart"))
    assert status == 202, body
