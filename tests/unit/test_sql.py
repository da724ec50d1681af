"""The statements shipped beside the store, as they are sent to the server."""

from importlib.resources import files

from cqrs_demo.store.sql import query


def test_a_query_is_sent_without_the_comment_it_starts_with() -> None:
    assert query("append_single_events").startswith(b"WITH command AS (\n")


def test_a_query_without_a_comment_is_sent_as_written() -> None:
    written = files("cqrs_demo.store").joinpath("queries", "stream_version.sql").read_bytes()
    assert query("stream_version") == written
