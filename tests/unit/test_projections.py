"""The projections as pure functions: rows and events in, changed rows out, no database."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cqrs_demo.domain.errors import UnreadableEvent
from cqrs_demo.domain.ids import uuid7
from cqrs_demo.domain.orders import OrderCancelled, OrderCreated, OrderEvent
from cqrs_demo.domain.projections import (
    ORDERS,
    PROJECTIONS,
    USER_ORDER_SUMMARIES,
    VERIFICATION_PREFIX,
    OpenOrder,
    OrderRow,
    Projection,
    ReadRow,
    RowKey,
    UserSummary,
    batch_keys,
    fold_batch,
    fold_until,
    is_verification,
    load_every_row,
)

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def created(order: str, user: str = "u1", price: str = "10.50", minute: int = 0) -> OrderCreated:
    return OrderCreated(
        uuid7(), order, user, "p1", 2, Decimal(price), T0 + timedelta(minutes=minute)
    )


def cancelled(order: str, user: str = "u1", minute: int = 1) -> OrderCancelled:
    return OrderCancelled(uuid7(), order, user, "changed my mind", T0 + timedelta(minutes=minute))


def run(projection: Projection, events: list[OrderEvent], batch: int) -> dict[RowKey, ReadRow]:
    """What a projector would leave in the tables: batches folded over the rows so far."""
    table: dict[RowKey, ReadRow] = {}
    for start in range(0, len(events), batch):
        chunk = events[start : start + batch]
        keys = {key for event in chunk for key in projection.keys(event)}
        changed = fold_batch(projection, {key: table.get(key) for key in keys}, chunk)
        for key, row in changed.items():
            if row is None:
                table.pop(key, None)
            else:
                table[key] = row
    return table


def test_an_order_is_placed_then_cancelled_with_its_reason() -> None:
    rows = run(ORDERS, [created("o1"), cancelled("o1", minute=5)], batch=10)
    assert rows == {
        ("order", "o1"): OrderRow(
            "o1",
            "u1",
            "p1",
            2,
            Decimal("10.50"),
            "cancelled",
            T0,
            T0 + timedelta(minutes=5),
            "changed my mind",
        )
    }


def test_a_summary_counts_orders_and_totals_the_open_ones_exactly() -> None:
    events: list[OrderEvent] = [
        created("o1", price="0.10", minute=1),
        created("o2", price="0.20", minute=3),
        created("o3", price="1E+2", minute=2),
        cancelled("o2", minute=4),
    ]
    rows = run(USER_ORDER_SUMMARIES, events, batch=10)
    summary = rows[("user_summary", "u1")]
    last = T0 + timedelta(minutes=3)
    assert summary == UserSummary("u1", 3, 1, 2, Decimal("100.10"), last)
    assert set(rows) == {("user_summary", "u1"), ("open_order", "o1"), ("open_order", "o3")}
    assert rows[("open_order", "o3")] == OpenOrder("o3", "u1", Decimal("1E+2"))


@pytest.mark.parametrize("projection", [ORDERS, USER_ORDER_SUMMARIES], ids=lambda p: p.name)
def test_an_order_cancelled_twice_or_never_placed_is_refused(projection: Projection) -> None:
    twice = cancelled("o1")
    with pytest.raises(UnreadableEvent, match=f"stored event {twice.event_id}.*cancels order o1"):
        run(projection, [created("o1"), cancelled("o1"), twice], batch=2)
    with pytest.raises(UnreadableEvent, match="cancels order o9"):
        run(projection, [cancelled("o9")], batch=1)


@pytest.mark.parametrize("projection", [ORDERS, USER_ORDER_SUMMARIES], ids=lambda p: p.name)
def test_an_order_placed_twice_is_refused(projection: Projection) -> None:
    with pytest.raises(UnreadableEvent, match="places order o1"):
        run(projection, [created("o1"), created("o1")], batch=1)


def test_the_fold_stops_at_the_first_bad_event_with_the_rows_before_it() -> None:
    bad = cancelled("o7")
    events: list[OrderEvent] = [created("o1"), bad, created("o2")]
    keys = {key for event in events for key in ORDERS.keys(event)}
    changed, failure = fold_until(ORDERS, dict.fromkeys(keys), events)
    assert set(changed) == {("order", "o1")}
    assert failure is not None
    index, error = failure
    assert index == 1
    assert isinstance(error, UnreadableEvent)
    assert error.event_id == bad.event_id


def test_a_failing_projection_function_stops_the_fold_at_that_event() -> None:
    def broken(rows: object, event: OrderEvent) -> dict[RowKey, ReadRow | None]:
        raise KeyError("a bug")

    projection = Projection("broken", ORDERS.keys, broken)
    changed, failure = fold_until(projection, {}, [created("o1")])
    assert changed == {}
    assert failure is not None
    assert isinstance(failure[1], KeyError)


def test_the_fold_does_not_change_the_rows_it_was_given() -> None:
    given_rows: dict[RowKey, ReadRow | None] = {("order", "o1"): None}
    fold_batch(ORDERS, given_rows, [created("o1")])
    assert given_rows == {("order", "o1"): None}


def test_the_projections_are_named_as_their_tables() -> None:
    assert set(PROJECTIONS) == {"orders", "user_order_summaries"}


# A random history: orders of a few users, each cancelled or not, in a random order that
# keeps a cancel after its order.
histories = st.lists(
    st.tuples(
        st.sampled_from(["u1", "u2", "u3"]),
        st.decimals(min_value=0, max_value=10**6, places=2),
        st.booleans(),
    ),
    max_size=30,
)


def history(orders: list[tuple[str, Decimal, bool]]) -> list[OrderEvent]:
    events: list[OrderEvent] = []
    for number, (user, price, cancel) in enumerate(orders):
        events.append(created(f"o{number}", user, str(price), minute=number))
        if cancel:
            events.insert(len(events) // 2 + 1, cancelled(f"o{number}", user, minute=99))
    # a cancel inserted before its order is moved right after it
    ordered: list[OrderEvent] = []
    waiting: dict[str, OrderCancelled] = {}
    placed: set[str] = set()
    for event in events:
        if isinstance(event, OrderCancelled) and event.order_id not in placed:
            waiting[event.order_id] = event
            continue
        ordered.append(event)
        placed.add(event.order_id)
        if event.order_id in waiting:
            ordered.append(waiting.pop(event.order_id))
    return ordered


def recomputed_summaries(events: list[OrderEvent]) -> dict[str, UserSummary]:
    """The summaries counted straight from the whole history, not event by event."""
    prices = {e.order_id: e.total_price for e in events if isinstance(e, OrderCreated)}
    cancelled_ids = {e.order_id for e in events if isinstance(e, OrderCancelled)}
    summaries = {}
    for user in {event.user_id for event in events}:
        placed = [e for e in events if isinstance(e, OrderCreated) and e.user_id == user]
        open_ids = [e.order_id for e in placed if e.order_id not in cancelled_ids]
        summaries[user] = UserSummary(
            user,
            len(placed),
            len(placed) - len(open_ids),
            len(open_ids),
            sum((prices[order] for order in open_ids), Decimal(0)),
            max(e.occurred_on for e in placed),
        )
    return summaries


@given(histories, st.integers(min_value=1, max_value=7))
def test_any_batching_gives_what_the_whole_history_recomputed_gives(
    orders: list[tuple[str, Decimal, bool]], batch: int
) -> None:
    events = history(orders)
    summaries = run(USER_ORDER_SUMMARIES, events, batch)
    assert {
        key[1]: row for key, row in summaries.items() if key[0] == "user_summary"
    } == recomputed_summaries(events)
    order_rows = run(ORDERS, events, batch)
    cancelled_ids = {e.order_id for e in events if isinstance(e, OrderCancelled)}
    assert {key[1]: row.status for key, row in order_rows.items() if isinstance(row, OrderRow)} == {
        e.order_id: ("cancelled" if e.order_id in cancelled_ids else "placed")
        for e in events
        if isinstance(e, OrderCreated)
    }
    assert run(ORDERS, events, 1000) == order_rows


def test_event_ids_name_the_event_in_the_refusal() -> None:
    event = OrderCancelled(UUID(int=7), "o1", "u1", None, T0)
    with pytest.raises(UnreadableEvent) as raised:
        fold_batch(ORDERS, {("order", "o1"): None}, [event])
    assert raised.value.event_id == UUID(int=7)
    assert raised.value.event_type == "OrderCancelled"


@pytest.mark.parametrize("projection", PROJECTIONS.values(), ids=list(PROJECTIONS))
def test_a_verification_stream_changes_no_read_model(projection: Projection) -> None:
    verify = f"{VERIFICATION_PREFIX}deb13-20261130T043512123456"
    business: list[OrderEvent] = [created("o1"), created("o2", minute=2), cancelled("o1", minute=3)]
    # Placed, placed again and cancelled twice: refused on a business stream, passed over here.
    checks: list[OrderEvent] = [created("v1", verify), created("v1", verify)]
    checks += [cancelled("v1", verify), cancelled("v1", verify, minute=4)]
    mixed: list[OrderEvent] = [business[0], *checks[:2], business[1], *checks[2:], business[2]]
    assert all(projection.keys(event) == () for event in checks)
    assert run(projection, mixed, batch=2) == run(projection, business, batch=2)
    assert fold_batch(projection, {}, checks) == {}


def test_only_the_reserved_prefix_is_passed_over() -> None:
    assert is_verification(created("o1", f"{VERIFICATION_PREFIX}x"))
    for user in ("verify-deb13-20261130", "cqrs-verify", f"x{VERIFICATION_PREFIX}"):
        assert not is_verification(created("o1", user))
        assert ORDERS.keys(created("o1", user)) == (("order", "o1"),)


def test_the_rows_a_new_order_creates_are_not_loaded_unless_an_earlier_event_names_them() -> None:
    events: list[OrderEvent] = [
        created("o1", "u1"),
        cancelled("o1", "u1"),
        cancelled("o2", "u2"),
        created("o2"),
    ]
    orders = batch_keys(ORDERS, events)
    assert orders.assumed_absent == {("order", "o1")}
    assert orders.load == {("order", "o2")}  # cancelled before it is placed: loaded
    summaries = batch_keys(USER_ORDER_SUMMARIES, events)
    assert summaries.assumed_absent == {("open_order", "o1")}
    assert summaries.load == {
        ("user_summary", "u1"),
        ("user_summary", "u2"),
        ("open_order", "o2"),
    }
    for projection in (ORDERS, USER_ORDER_SUMMARIES):
        every = load_every_row(projection, events)
        assert every.assumed_absent == set()
        split = batch_keys(projection, events)
        assert every.load == split.load | split.assumed_absent


def test_a_verification_order_creates_no_row() -> None:
    event = created("o-v", f"{VERIFICATION_PREFIX}host-1")
    for projection in (ORDERS, USER_ORDER_SUMMARIES):
        assert projection.creates(event) == ()
        assert batch_keys(projection, [event]) == batch_keys(projection, [])
