"""Orders without I/O: the decisions, ``evolve`` and its fold, reading stored events back."""

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count
from uuid import UUID

import pytest

from cqrs_demo.domain.errors import (
    InvalidCommand,
    OrderAlreadyCancelled,
    OrderNotFound,
    UnreadableEvent,
)
from cqrs_demo.domain.events import decode_event
from cqrs_demo.domain.fields import MAX_TEXT_LENGTH, fingerprint, parse
from cqrs_demo.domain.orders import (
    EVENT_TYPES,
    CancelOrder,
    CreateOrder,
    Order,
    OrderCancelled,
    OrderCreated,
    OrderEvent,
    UserOrders,
    cancel_order,
    create_order,
    evolve,
    fold,
)

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
_numbers = count(1)


def new_id() -> UUID:
    return UUID(int=next(_numbers))


def placed(user: str = "alice", *, at: datetime = T0) -> OrderCreated:
    command = CreateOrder(user, "prod_456", 2, Decimal("150.00"))
    (event,) = create_order(command, now=at, new_id=new_id)
    return event


def cancelled(order: OrderCreated, *, at: datetime, reason: str | None = None) -> OrderCancelled:
    return OrderCancelled(new_id(), order.order_id, order.user_id, reason, at)


def decoded(event: OrderCreated | OrderCancelled) -> object:
    """``event`` written as the store writes it and read back as the store returns it."""
    return decode_event(
        EVENT_TYPES, event.event_type, event.event_id, event.occurred_on, event.payload()
    )


def test_placing_an_order_is_one_order_created_with_a_new_order_id() -> None:
    command = CreateOrder("alice", "prod_456", 3, Decimal("9.99"))
    (event,) = create_order(command, now=T0, new_id=new_id)
    assert (event.user_id, event.product_id, event.quantity) == ("alice", "prod_456", 3)
    assert (event.total_price, event.occurred_on) == (Decimal("9.99"), T0)
    assert event.order_id != str(event.event_id)


def test_the_fold_of_a_stream_is_its_orders_and_its_version() -> None:
    first, second = placed(), placed(at=T0 + timedelta(minutes=1))
    later = T0 + timedelta(hours=1)
    state = fold([first, second, cancelled(first, at=later)])
    assert state.version == 3
    assert state.orders[first.order_id] == Order(
        first.order_id, "prod_456", 2, Decimal("150.00"), placed_on=T0, cancelled_on=later
    )
    assert state.orders[second.order_id].cancelled_on is None


def test_evolve_leaves_the_state_it_was_given_unchanged() -> None:
    before = fold([placed()])
    after = evolve(before, placed())
    assert (len(before.orders), before.version) == (1, 1)
    assert (len(after.orders), after.version) == (2, 2)


def test_cancelling_an_open_order_is_one_order_cancelled() -> None:
    order = placed()
    command = CancelOrder("alice", order.order_id, reason="changed my mind")
    (event,) = cancel_order(fold([order]), command, now=T0, new_id=new_id)
    assert (event.order_id, event.user_id, event.reason) == (
        order.order_id,
        "alice",
        "changed my mind",
    )
    assert event.occurred_on == T0
    assert event.payload()["cancelled_on"] == T0.isoformat()


def test_an_order_the_stream_does_not_hold_is_not_found_naming_order_and_user() -> None:
    command = CancelOrder("alice", "no-such-order")
    with pytest.raises(OrderNotFound) as refused:
        cancel_order(fold([placed()]), command, now=T0, new_id=new_id)
    assert str(refused.value) == "order 'no-such-order' is not an order of user 'alice'"


def test_another_users_order_is_not_found_in_this_users_state() -> None:
    bobs = placed("bob")
    alices_state = fold([placed("alice")])
    with pytest.raises(OrderNotFound):
        cancel_order(alices_state, CancelOrder("alice", bobs.order_id), now=T0, new_id=new_id)


def test_a_second_cancel_is_refused_saying_when_the_first_was() -> None:
    order = placed()
    first = T0 + timedelta(minutes=5)
    state = fold([order, cancelled(order, at=first)])
    with pytest.raises(OrderAlreadyCancelled) as refused:
        cancel_order(state, CancelOrder("alice", order.order_id), now=T0, new_id=new_id)
    assert refused.value.cancelled_on == first
    assert first.isoformat() in str(refused.value)


def test_an_empty_stream_has_no_orders_at_version_zero() -> None:
    assert fold([]) == UserOrders({}, 0)


def test_both_events_read_back_equal_to_what_was_written() -> None:
    order = placed()
    for event in (order, cancelled(order, at=T0, reason="late"), cancelled(order, at=T0)):
        assert decoded(event) == event


def test_an_unknown_event_type_is_an_error_naming_it_and_the_event() -> None:
    event_id = new_id()
    with pytest.raises(UnreadableEvent) as caught:
        decode_event(EVENT_TYPES, "OrderShipped", event_id, T0, {})
    message = str(caught.value)
    assert "OrderShipped" in message
    assert str(event_id) in message
    assert "unknown event type (known: OrderCancelled, OrderCreated)" in message


@pytest.mark.parametrize(
    ("field", "value", "complaint"),
    [
        ("quantity", None, "payload field 'quantity' is not an integer"),
        ("quantity", "2", "payload field 'quantity' is not an integer"),
        ("total_price", "150", "payload field 'total_price' is not a number"),
        ("order_id", 7, "payload field 'order_id' is not a string"),
    ],
)
def test_a_payload_without_a_field_it_needs_is_an_error_naming_the_field(
    field: str, value: object, complaint: str
) -> None:
    payload: Mapping[str, object] = {**placed().payload(), field: value}
    with pytest.raises(UnreadableEvent, match=complaint):
        decode_event(EVENT_TYPES, "OrderCreated", new_id(), T0, payload)


def test_a_cancel_of_an_order_the_stream_never_placed_is_unreadable() -> None:
    stray = cancelled(placed(), at=T0)
    with pytest.raises(UnreadableEvent, match="which the stream never placed"):
        fold([placed(), stray])


def test_the_seeds_payload_without_occurred_on_reads_with_the_rows_time() -> None:
    payload = {k: v for k, v in placed().payload().items() if k != "occurred_on"}
    event = decode_event(EVENT_TYPES, "OrderCreated", new_id(), T0, payload)
    assert isinstance(event, OrderCreated)
    assert event.occurred_on == T0


def test_a_cancel_reads_user_order_reason_and_nothing_else() -> None:
    command = parse(CancelOrder, {"user_id": "alice", "order_id": "o-1", "reason": "late"})
    assert command == CancelOrder("alice", "o-1", "late")
    assert parse(CancelOrder, {"user_id": "alice", "order_id": "o-1"}).reason is None


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("x" * (MAX_TEXT_LENGTH + 1), "reason must be at most 500 characters, got 501"),
        ("", "reason must not be empty: leave it out (or null) for none"),
        ("   ", "reason must not be blank"),
        (" late", "reason must not start or end with white space"),
        ("late\n", "reason must not contain control characters"),
        (5, "reason must be a string"),
    ],
)
def test_a_bad_reason_is_refused_naming_it(reason: object, message: str) -> None:
    with pytest.raises(InvalidCommand) as refused:
        parse(CancelOrder, {"user_id": "alice", "order_id": "o-1", "reason": reason})
    [error] = refused.value.errors
    assert error.field == "reason"
    assert error.message.startswith(message)


def test_a_reason_of_the_limit_with_spaces_inside_is_kept() -> None:
    reason = "a b" * (MAX_TEXT_LENGTH // 3) + "c" * (MAX_TEXT_LENGTH % 3)
    assert parse(CancelOrder, {"user_id": "u", "order_id": "o", "reason": reason}).reason == reason


def test_fingerprints_differ_between_commands_and_not_between_spellings() -> None:
    cancel = CancelOrder("alice", "o-1")
    assert fingerprint(cancel) == fingerprint(CancelOrder("alice", "o-1", None))
    assert fingerprint(cancel) != fingerprint(CancelOrder("alice", "o-1", "late"))
    create = CreateOrder("alice", "o-1", 1, Decimal("1.0"))
    assert fingerprint(create) == fingerprint(CreateOrder("alice", "o-1", 1, Decimal("1.00")))
    assert fingerprint(create) != fingerprint(cancel)


def test_fold_equals_evolve_applied_event_by_event() -> None:
    first, second = placed(), placed(at=T0 + timedelta(minutes=1))
    events: list[OrderEvent] = [first, second, cancelled(second, at=T0 + timedelta(hours=2))]
    by_evolve = UserOrders()
    for event in events:
        by_evolve = evolve(by_evolve, event)
    assert fold(events) == by_evolve
    with pytest.raises(UnreadableEvent):
        evolve(UserOrders(), cancelled(first, at=T0))
