"""The ownership book answers "who owned this car at this instant", across a sale."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from processors.batch.ownership import NO_OWNER, OwnershipBook
from producers.sim.fleet import OwnershipPeriod, owner_at, ownership_records
from schemas.tables import OPEN_END_MS

VIN = "LRWABCDE0N1234567"
TIMELINE = [
    OwnershipPeriod("alice", "delivered", 1_000),
    OwnershipPeriod("bob", "transferred", 5_000),
    OwnershipPeriod(None, "returned", 9_000),
]


def events() -> list[dict[str, Any]]:
    return ownership_records(VIN, TIMELINE)


def test_owner_at_follows_the_timeline_including_a_sale_and_a_return() -> None:
    book = OwnershipBook()
    for offset, event in enumerate(events()):
        book.apply(event, 0, offset)
    assert book.owner_at(VIN, 999) == NO_OWNER
    assert book.owner_at(VIN, 1_000) == "alice"
    assert book.owner_at(VIN, 4_999) == "alice"
    assert book.owner_at(VIN, 5_000) == "bob"
    assert book.owner_at(VIN, 9_000) == NO_OWNER
    assert book.owner_at("LRWUNKNOWN0000000", 5_000) == NO_OWNER


def test_the_latest_event_alone_is_enough_as_after_compaction() -> None:
    book = OwnershipBook()
    book.apply(events()[-1], 0, 2)
    assert book.owner_at(VIN, 2_000) == "alice"
    assert book.owner_at(VIN, 6_000) == "bob"


def test_replaying_events_in_any_order_gives_the_same_book() -> None:
    a, b = OwnershipBook(), OwnershipBook()
    for offset, event in enumerate(events()):
        a.apply(event, 0, offset)
    for offset, event in reversed(list(enumerate(events() * 2))):
        b.apply(event, 0, offset % 3)
    assert a.intervals(VIN) == b.intervals(VIN)


def test_intervals_close_each_period_at_the_next_and_leave_the_last_open() -> None:
    book = OwnershipBook()
    for offset, event in enumerate(events()):
        book.apply(event, 3, 40 + offset)
    assert book.intervals(VIN) == [
        (VIN, "alice", "delivered", 1_000, 5_000, 3, 42),
        (VIN, "bob", "transferred", 5_000, 9_000, 3, 42),
        (VIN, NO_OWNER, "returned", 9_000, OPEN_END_MS, 3, 42),
    ]


@given(st.integers(min_value=0, max_value=12_000))
def test_book_agrees_with_the_simulator_owner_rule(time_ms: int) -> None:
    book = OwnershipBook()
    book.apply(events()[-1])
    assert book.owner_at(VIN, time_ms) == (owner_at(TIMELINE, time_ms) or NO_OWNER)
