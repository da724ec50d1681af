"""Bodies that once reached a 500 or were stored as they should not be: numbers at the edge
of what a decimal holds, encodings not undone, thousands of unknown keys, control and
bidirectional characters in ids. Each gets a 4xx naming the problem and writes nothing, or
is stored in a form PostgreSQL takes."""

import gzip
import json
import re
import uuid

import psycopg
import pytest

from tests.support import Service, events_table_state

CREATE = "/api/commands/order/create"
JSON = {"content-type": "application/json"}
LETTERS = "abcdefghijklmnopqrstuvwxyz"
OUT_OF_RANGE = "Invalid JSON payload: a number is out of range (its exponent is too large)"


def order(user: str, price: str = "1", extra: str = "") -> bytes:
    return (
        f'{{"user_id": "{user}", "product_id": "p", "quantity": 1, "total_price": {price}{extra}}}'
    ).encode()


def stored_price(database_url: str, user: str) -> str:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT payload->>'total_price' FROM events WHERE aggregate_id = %s", [user]
        ).fetchone()
    assert row is not None
    return str(row[0])


def refused(service: Service, database_url: str, body: bytes, **headers: str) -> dict[str, object]:
    """POST ``body``; assert a 4xx problem and an unchanged table; return the problem."""
    before = events_table_state(database_url)
    with service.client() as client:
        response = client.post(CREATE, content=body, headers={**JSON, **headers})
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert events_table_state(database_url) == before
    problem: dict[str, object] = response.json()
    problem["status_code"] = response.status_code
    return problem


@pytest.mark.parametrize(
    "extra",
    [
        ', "a": 1e1000000000000000000',
        ', "a": -1E+1000000000000000000',
        ', "quantity_x": 0.0e99999999999999999999',
    ],
)
def test_an_exponent_beyond_any_decimal_is_a_400_in_any_field(
    service: Service, database_url: str, extra: str
) -> None:
    problem = refused(service, database_url, order(f"exp_{uuid.uuid4().hex}", extra=extra))
    assert problem["status_code"] == 400
    assert problem["detail"] == OUT_OF_RANGE


@pytest.mark.parametrize(
    ("price", "detail"),
    [
        ("1e1000000000000000000", "Invalid JSON payload: a number is out of range"),
        ("1e999999999999999999", "total_price must be less than 1000000000000000"),
        ("1e-999999999999999999", "total_price must have at most 6 decimal places"),
        ("0e-999999999999999999", None),  # zero: stored, see below
    ],
)
def test_a_price_at_the_edge_of_any_decimal_gets_the_answer_its_value_earns(
    service: Service, database_url: str, price: str, detail: str | None
) -> None:
    user = f"exp_{uuid.uuid4().hex}"
    if detail is None:
        with service.client() as client:
            response = client.post(CREATE, content=order(user, price), headers=JSON)
        assert response.status_code == 202
        assert stored_price(database_url, user) == "0.000000"
        return
    problem = refused(service, database_url, order(user, price))
    assert str(problem["detail"]).startswith(detail)


@pytest.mark.parametrize(
    ("price", "stored"),
    [
        ("0E-16384", "0.000000"),  # refused by PostgreSQL as sent (16,384 places)
        ("0E-16383", "0.000000"),  # stored as a 16 KB number as sent
        ("0E+999999", "0"),
        ("0." + "0" * 20_000, "0.000000"),
        ("12.5" + "0" * 20_000, "12.500000"),
        ("1E+14", "100000000000000"),
        ("150.00", "150.00"),
        ("0.1000000", "0.1000000"),
    ],
    ids=[
        "0E-16384",
        "0E-16383",
        "0E+999999",
        "20000 zeros",
        "trailing zeros",
        "1E+14",
        "150.00",
        "7 places",
    ],
)
def test_a_price_in_any_exponent_form_is_stored_as_postgresql_takes_it(
    service: Service, database_url: str, price: str, stored: str
) -> None:
    user = f"price_{uuid.uuid4().hex}"
    with service.client() as client:
        response = client.post(CREATE, content=order(user, price), headers=JSON)
    assert response.status_code == 202, response.text
    assert stored_price(database_url, user) == stored


def test_thousands_of_unknown_keys_get_a_short_answer(service: Service, database_url: str) -> None:
    names = [a + b + c for a in LETTERS for b in LETTERS for c in LETTERS][:8000]
    body = order(f"keys_{uuid.uuid4().hex}", extra="," + ",".join(f'"{n}":0' for n in names))
    assert len(body) <= 65_536  # within the body limit: the answer was 8.7 times this
    before = events_table_state(database_url)
    with service.client() as client:
        response = client.post(CREATE, content=body, headers=JSON)
    assert response.status_code == 400
    assert len(response.content) < 2048, len(response.content)
    problem = response.json()
    assert [error["field"] for error in problem["errors"]] == names[:10]
    assert problem["unlisted_errors"] == 7990
    assert problem["detail"].endswith("; and 7990 more unknown fields")
    assert events_table_state(database_url) == before


@pytest.mark.parametrize("encoding", ["gzip", "GZIP", "br", "deflate, gzip", "compress"])
def test_a_content_encoding_is_refused_by_name(
    service: Service, database_url: str, encoding: str
) -> None:
    # Plain JSON labelled as encoded was once stored; it is refused like the real thing.
    problem = refused(
        service, database_url, order(f"enc_{uuid.uuid4().hex}"), **{"content-encoding": encoding}
    )
    assert problem["status_code"] == 415
    shown = encoding.lower()
    assert problem["detail"] == (
        f"Content-Encoding {shown} is not supported; send the body unencoded"
    )


def test_a_gzipped_body_is_refused_with_what_to_send_instead(
    service: Service, database_url: str
) -> None:
    body = gzip.compress(order(f"enc_{uuid.uuid4().hex}"))
    before = events_table_state(database_url)
    with service.client() as client:
        response = client.post(CREATE, content=body, headers={**JSON, "content-encoding": "gzip"})
    assert response.status_code == 415
    assert response.headers["accept-encoding"] == "identity"
    assert events_table_state(database_url) == before


def test_identity_is_the_one_encoding_accepted(service: Service) -> None:
    with service.client() as client:
        response = client.post(
            CREATE,
            content=order(f"enc_{uuid.uuid4().hex}"),
            headers={**JSON, "content-encoding": "identity"},
        )
    assert response.status_code == 202


@pytest.mark.parametrize(
    ("character", "code"), [("\u0085", "U+0085"), ("\u009b", "U+009B"), ("\u202e", "U+202E")]
)
def test_c1_controls_and_bidi_overrides_are_refused_in_ids(
    service: Service, database_url: str, character: str, code: str
) -> None:
    body = json.dumps(
        {"user_id": f"u{character}x", "product_id": "p", "quantity": 1, "total_price": 1}
    ).encode()
    problem = refused(service, database_url, body)
    assert problem["errors"] == [
        {
            "field": "user_id",
            "message": "user_id must not contain control characters, bidirectional overrides"
            f" or lone surrogates; found {code} at character 2",
        }
    ]


def test_an_id_with_unprintable_characters_is_escaped_in_the_log_line(service: Service) -> None:
    user = f"zw_{uuid.uuid4().hex[:8]}\u200b\u00ad"
    body = json.dumps({"user_id": user, "product_id": "p", "quantity": 1, "total_price": 1})
    with service.client() as client:
        assert client.post(CREATE, content=body, headers=JSON).status_code == 202
    shown = user.replace("\u200b", "\\u200b").replace("\u00ad", "\\xad")
    service.wait_for_log(re.escape(f"aggregate={shown} "))  # written just after the answer
    assert user not in service.log()
