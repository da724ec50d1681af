"""Settings from the environment: defaults, and one line naming any bad variable."""

from pathlib import Path

import pytest

from cqrs_demo.settings import ConfigError, load_settings
from cqrs_demo.store.conninfo import describe

URL = {"CQRS_DATABASE_URL": "postgresql://app@db.example:5433/cqrs_events"}


def test_defaults() -> None:
    settings = load_settings(URL)
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert (settings.pool_min_size, settings.pool_max_size) == (5, 25)
    assert settings.workers >= 1
    assert settings.body_limit == 65536
    assert (settings.max_connections, settings.head_limit) == (4096, 16384)
    assert settings.head_timeout == 10.0
    assert "host=db.example" in settings.conninfo
    assert (settings.metrics_host, settings.metrics_port) == ("127.0.0.1", None)
    assert settings.projector_metrics_port is None


def test_metrics_ports_are_read() -> None:
    settings = load_settings(
        {
            **URL,
            "CQRS_METRICS_HOST": "10.0.0.5",
            "CQRS_METRICS_PORT": "9464",
            "CQRS_PROJECTOR_METRICS_PORT": "9465",
        }
    )
    assert settings.metrics_host == "10.0.0.5"
    assert (settings.metrics_port, settings.projector_metrics_port) == (9464, 9465)


def test_password_comes_from_the_file_and_never_from_repr(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cr3t'\\ x\n")
    settings = load_settings({**URL, "CQRS_DATABASE_PASSWORD_FILE": str(secret)})
    assert "s3cr3t" in settings.conninfo
    assert "s3cr3t" not in repr(settings)


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({}, "CQRS_DATABASE_URL is not set"),
        ({"CQRS_DATABASE_URL": "postgresql://[bad"}, "CQRS_DATABASE_URL is invalid"),
        ({**URL, "CQRS_PORT": "http"}, "CQRS_PORT='http' is invalid"),
        ({**URL, "CQRS_PORT": "70000"}, "CQRS_PORT='70000' is invalid: must be between"),
        ({**URL, "CQRS_WORKERS": "0"}, "CQRS_WORKERS='0' is invalid"),
        (
            {**URL, "CQRS_GROUP_COMMIT_OVERLAP_MS": "-1"},
            "CQRS_GROUP_COMMIT_OVERLAP_MS='-1' is invalid: must be between 0 and 60000",
        ),
        ({**URL, "CQRS_POOL_MIN_SIZE": "-1"}, "CQRS_POOL_MIN_SIZE='-1' is invalid"),
        ({**URL, "CQRS_POOL_MAX_SIZE": "x"}, "CQRS_POOL_MAX_SIZE='x' is invalid"),
        (
            {**URL, "CQRS_POOL_MIN_SIZE": "9", "CQRS_POOL_MAX_SIZE": "3"},
            "CQRS_POOL_MAX_SIZE (3) must not be less than CQRS_POOL_MIN_SIZE (9)",
        ),
        ({**URL, "CQRS_POOL_TIMEOUT": "0"}, "CQRS_POOL_TIMEOUT='0' is invalid"),
        ({**URL, "CQRS_LOG_LEVEL": "loud"}, "CQRS_LOG_LEVEL='loud' is invalid"),
        ({**URL, "CQRS_HOST": "a b"}, "CQRS_HOST='a b' is invalid"),
        (
            {**URL, "CQRS_MAX_CONNECTIONS": "8"},
            "CQRS_MAX_CONNECTIONS='8' is invalid: must be between 16 and 1000000",
        ),
        (
            {**URL, "CQRS_HEAD_LIMIT": "1024"},
            "CQRS_HEAD_LIMIT='1024' is invalid: must be between 4096 and 1048576",
        ),
        ({**URL, "CQRS_HEAD_TIMEOUT": "soon"}, "CQRS_HEAD_TIMEOUT='soon' is invalid"),
        ({**URL, "CQRS_METRICS_PORT": "9x"}, "CQRS_METRICS_PORT='9x' is invalid: must be a whole"),
        (
            {**URL, "CQRS_METRICS_PORT": "0"},
            "CQRS_METRICS_PORT='0' is invalid: must be between 1 and 65535",
        ),
        (
            {**URL, "CQRS_PORT": "9100", "CQRS_METRICS_PORT": "9100"},
            "CQRS_METRICS_PORT=9100 is invalid: CQRS_PORT is 9100 already",
        ),
        (
            {**URL, "CQRS_PROJECTOR_METRICS_PORT": "70000"},
            "CQRS_PROJECTOR_METRICS_PORT='70000' is invalid: must be between 1 and 65535",
        ),
        (
            {**URL, "CQRS_METRICS_PORT": "9464", "CQRS_PROJECTOR_METRICS_PORT": "9464"},
            "CQRS_PROJECTOR_METRICS_PORT=9464 is invalid: CQRS_METRICS_PORT is 9464 already",
        ),
        ({**URL, "CQRS_METRICS_HOST": "0.0.0.0 x"}, "CQRS_METRICS_HOST='0.0.0.0 x' is invalid"),
        (
            {**URL, "CQRS_DATABASE_PASSWORD_FILE": "/nonexistent/pw"},
            "CQRS_DATABASE_PASSWORD_FILE cannot be read: /nonexistent/pw",
        ),
    ],
)
def test_a_bad_value_names_the_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    assert str(caught.value).startswith(named)
    assert "\n" not in str(caught.value)


def test_an_empty_password_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("\n")
    with pytest.raises(ConfigError, match="CQRS_DATABASE_PASSWORD_FILE is empty"):
        load_settings({**URL, "CQRS_DATABASE_PASSWORD_FILE": str(tmp_path / "pw")})


CLUSTER = "postgresql://app:pw@db1:5432,db2:5433,db3:5432/cqrs_events"
READ = {**URL, "CQRS_READ_DATABASE_URL": f"{CLUSTER}?target_session_attrs=prefer-standby"}


def test_without_a_read_url_the_queries_use_the_database_url() -> None:
    assert load_settings(URL).read_conninfo is None


def test_multi_host_urls_are_taken_for_writes_and_for_reads(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("from-file\n")
    settings = load_settings(
        {
            "CQRS_DATABASE_URL": f"{CLUSTER}?target_session_attrs=read-write",
            "CQRS_READ_DATABASE_URL": f"{CLUSTER}?target_session_attrs=prefer-standby",
            "CQRS_DATABASE_PASSWORD_FILE": str(tmp_path / "pw"),
        }
    )
    for conninfo, role in ((settings.conninfo, "read-write"), (settings.read_conninfo, "prefer")):
        assert conninfo is not None
        assert "host=db1,db2,db3 port=5432,5433,5432" in conninfo
        assert f"target_session_attrs={role}" in conninfo
        assert "password=from-file" in conninfo  # the file's, for both
    assert "from-file" not in repr(settings)


def test_a_key_value_dsn_with_several_hosts_is_taken() -> None:
    dsn = "host=db1,db2 port=5432 dbname=cqrs_events target_session_attrs=primary"
    assert "host=db1,db2" in load_settings({"CQRS_DATABASE_URL": dsn}).conninfo


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        (
            {"CQRS_DATABASE_URL": CLUSTER},
            "CQRS_DATABASE_URL is invalid: names 3 servers without"
            " target_session_attrs=read-write: the first that answers could be a standby",
        ),
        (
            {"CQRS_DATABASE_URL": "postgresql://app@db1/cqrs_events?target_session_attrs=standby"},
            "CQRS_DATABASE_URL is invalid: target_session_attrs=standby would connect to a"
            " standby: use read-write",
        ),
        (
            {"CQRS_DATABASE_URL": "postgresql://app@db1:5432,db2:54x2/cqrs_events"},
            "CQRS_DATABASE_URL is invalid: port 2 ('54x2') is not a number from 1 to 65535",
        ),
        (
            {"CQRS_DATABASE_URL": "host=db1,db2,db3 port=5432,5433 target_session_attrs=primary"},
            "CQRS_DATABASE_URL is invalid: 2 ports for 3 hosts: give one, or one per host",
        ),
        (
            {"CQRS_DATABASE_URL": "postgresql://app@db1,,db3/x?target_session_attrs=read-write"},
            "CQRS_DATABASE_URL is invalid: host 2 of 3 is empty",
        ),
        (
            {**URL, "CQRS_READ_DATABASE_URL": "postgresql://app@db1:5432,db2:99999/cqrs_events"},
            "CQRS_READ_DATABASE_URL is invalid: port 2 ('99999') is not a number from 1 to 65535",
        ),
        (
            {**URL, "CQRS_READ_DATABASE_URL": f"{CLUSTER}?target_session_attrs=prefer_standby"},
            "CQRS_READ_DATABASE_URL is invalid: target_session_attrs='prefer_standby' is not"
            " one of any, read-write, read-only, primary, standby, prefer-standby",
        ),
        (
            {**URL, "CQRS_READ_DATABASE_URL": f"{CLUSTER}?load_balance_hosts=roundrobin"},
            "CQRS_READ_DATABASE_URL is invalid: load_balance_hosts='roundrobin' is not one of",
        ),
        (
            {**URL, "CQRS_READ_DATABASE_URL": "postgresql://[bad"},
            "CQRS_READ_DATABASE_URL is invalid: not a valid libpq URL or DSN",
        ),
        (
            {**READ, "CQRS_DATABASE_PASSWORD_FILE": "/nonexistent/pw"},
            "CQRS_DATABASE_PASSWORD_FILE cannot be read: /nonexistent/pw",
        ),
    ],
)
def test_a_malformed_list_of_servers_is_refused_naming_the_variable(
    environ: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    assert str(caught.value).startswith(named)
    assert "\n" not in str(caught.value)


def test_log_lines_name_every_server_and_never_the_password() -> None:
    settings = load_settings(READ)
    assert settings.read_conninfo is not None
    assert describe(settings.read_conninfo) == "app@db1:5432,db2:5433,db3:5432/cqrs_events"
    assert describe(settings.conninfo) == "app@db.example:5433/cqrs_events"
