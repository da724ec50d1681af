"""The SQL files shipped beside the store: statements as they are sent to the server,
function files named after their one function, migrations that never change."""

import re
import tomllib
from importlib.resources import files
from pathlib import Path

from cqrs_demo.store.sql import database_functions, migrations, query

REPO = Path(__file__).resolve().parents[2]
# A migration, once released, is applied as it was: migrate refuses a database whose
# recorded checksum differs from the file. Pinned here so that an edit fails before release.
RELEASED_MIGRATIONS = {
    1: "fb2547ece34bb97b906275f177239bcf214508ea69243a7271dd72e7762a429f",
    2: "1b99b656e1686d4985fc544b1c4467ee983146c6070fb30750d7dd8064c31266",
    3: "10cb28b34df6f98acd06cac2d2343e415625d65be3c1146f35d1bd04a0752949",
    4: "4863e65354e9bb732fcfe3dc7b6d236b7529e5e1b39c446d61162c78502ca008",
    5: "9debe9d3e2bf1d49ab200eadd54f0a59f5315cc044c6409a968b1b9bf23f335f",
    6: "5e7b3f4c06639777391c99e0f70c0c8f42c490ec5118537014b7abbeb608371f",
}


def test_a_query_is_sent_without_the_comment_it_starts_with() -> None:
    assert query("append_single_events").startswith(b"WITH command AS (\n")


def test_a_query_without_a_comment_is_sent_as_written() -> None:
    written = files("cqrs_demo.store").joinpath("queries", "stream_version.sql").read_bytes()
    assert query("stream_version") == written


def test_released_migrations_are_unchanged() -> None:
    shipped = {m.version: m.checksum for m in migrations() if m.version in RELEASED_MIGRATIONS}
    assert shipped == RELEASED_MIGRATIONS


def test_each_function_file_creates_the_one_function_it_is_named_after() -> None:
    assert [f.name for f in database_functions()] == ["append_events", "refuse_event_change"]
    for function in database_functions():
        created = re.findall(rb"(?im)^CREATE (?:OR REPLACE )?FUNCTION (\w+)\(", function.sql)
        assert created == [function.name.encode()], function.name
        assert b"CREATE OR REPLACE FUNCTION" in function.sql, function.name


def test_every_folder_of_store_sql_is_in_the_package_data() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    package_data = set(project["tool"]["setuptools"]["package-data"]["cqrs_demo"])
    folders = {path.parent.name for path in (REPO / "service/cqrs_demo/store").glob("*/*.sql")}
    assert folders == {"functions", "migrations", "queries"}
    assert {f"store/{folder}/*.sql" for folder in folders} <= package_data
