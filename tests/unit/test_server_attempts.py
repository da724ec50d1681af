"""A multi-host string taken apart into one string per server (``server_attempts``)."""

import pytest

from cqrs_demo.store.conninfo import server_attempts


def test_each_host_gets_its_port_and_the_common_settings() -> None:
    params = {
        "host": "db1,db2,db3",
        "port": "5432,5433,5434",
        "dbname": "cqrs_events",
        "user": "cqrs_app",
        "target_session_attrs": "read-write",
        "load_balance_hosts": "random",
        "connect_timeout": "2",
    }
    common = {"dbname": "cqrs_events", "user": "cqrs_app", "connect_timeout": "2"}
    assert server_attempts(params) == [
        {**common, "host": "db1", "port": "5432"},
        {**common, "host": "db2", "port": "5433"},
        {**common, "host": "db3", "port": "5434"},
    ]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {"host": "a,b", "port": "6000"},
            [{"host": "a", "port": "6000"}, {"host": "b", "port": "6000"}],
        ),
        ({"hostaddr": "10.0.0.1,10.0.0.2"}, [{"hostaddr": "10.0.0.1"}, {"hostaddr": "10.0.0.2"}]),
        (
            {"host": "a,b", "hostaddr": "10.0.0.1,10.0.0.2"},
            [{"host": "a", "hostaddr": "10.0.0.1"}, {"host": "b", "hostaddr": "10.0.0.2"}],
        ),
        ({"dbname": "x"}, [{"dbname": "x"}]),
        (
            {"host": "/run/postgresql", "port": "5432"},
            [{"host": "/run/postgresql", "port": "5432"}],
        ),
    ],
)
def test_lists_of_one_port_addresses_and_a_single_server(
    params: dict[str, str], expected: list[dict[str, str]]
) -> None:
    assert server_attempts(params) == expected
