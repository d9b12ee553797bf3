"""When a month view made from a state read earlier still stands (`State.holds_for`): the
same periods, and every hour it read from the rollup marked and rolled as then. Hours it
read raw may change; so may hours outside the range it read from the rollup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from query.params import TimeRange
from query.rollup import KnownStates, State, plan

H = timedelta(hours=1)
T0 = datetime(2026, 10, 1, tzinfo=UTC)
EPOCH = datetime.fromtimestamp(0, UTC)
PERIODS = [(T0 - 10 * H, T0 + 100 * H)]
SPAN = TimeRange(T0, T0 + 6 * H)


def _marks(rolled: range, stale: range) -> dict[datetime, tuple[datetime, datetime]]:
    marks = {}
    for i in rolled:
        marks[T0 + i * H] = (T0 + (i + 1) * H, T0 + (i + 2) * H)  # rolled after its mark
    for i in stale:
        marks[T0 + i * H] = (T0 + (i + 3) * H, T0 + (i + 2) * H)  # marked again since
    return marks


def _state(marks: dict[datetime, tuple[datetime, datetime]], periods: object = None) -> State:
    return State(list(periods or PERIODS), marks)  # type: ignore[call-overload]


def _rollup_ranges(state: State) -> list[tuple[datetime, datetime]]:
    return plan(SPAN, state.periods, state.rolled())[0]


def test_rolled_means_marked_and_rolled_up_since() -> None:
    marks = _marks(range(0, 4), range(4, 6))
    marks[T0 + 7 * H] = (EPOCH, EPOCH)  # never marked: nothing to roll up
    assert _state(marks).rolled() == [T0 + i * H for i in range(4)]


def test_an_unchanged_state_holds() -> None:
    earlier = _state(_marks(range(0, 4), range(4, 6)))
    assert earlier.holds_for(earlier, _rollup_ranges(earlier))
    assert _state(_marks(range(0, 4), range(4, 6))).holds_for(earlier, _rollup_ranges(earlier))


def test_an_hour_read_from_the_rollup_marked_again_does_not_hold() -> None:
    earlier = _state(_marks(range(0, 4), range(4, 6)))
    later = _state(_marks(range(0, 2), range(2, 6)))  # hours 2 and 3: new samples since
    assert not later.holds_for(earlier, _rollup_ranges(earlier))
    # rolled up again since (the rollup's rows were rewritten): a new mark all the same
    again = _marks(range(0, 4), range(4, 6))
    again[T0 + 3 * H] = (T0 + 9 * H, T0 + 10 * H)
    assert not _state(again).holds_for(earlier, _rollup_ranges(earlier))


def test_an_hour_read_raw_may_change_and_the_plan_still_holds() -> None:
    earlier = _state(_marks(range(0, 4), range(4, 6)))
    later = _marks(range(0, 4), range(4, 6))
    later[T0 + 5 * H] = (T0 + 20 * H, T0 + 21 * H)  # hour 5: rolled up since; read raw then
    later[T0 + 6 * H] = (T0 + 20 * H, EPOCH)  # a new hour after the range's end
    assert _state(later).holds_for(earlier, _rollup_ranges(earlier))


def test_other_periods_do_not_hold() -> None:
    earlier = _state(_marks(range(0, 6), range(0)))
    sold = [(T0 - 10 * H, T0 + 3 * H)]
    assert not _state(earlier.marks, sold).holds_for(earlier, _rollup_ranges(earlier))


def test_known_states_keep_the_newest_within_their_budget_of_hours() -> None:
    known = KnownStates()
    known.MOST_HOURS = 10
    four = _state(_marks(range(0, 4), range(0)))
    for key in ("a", "b", "c"):
        known.put((key,), four)
    assert known.get(("a",)) is None and known.get(("b",)) is known.get(("c",)) is four
    known.put(("b",), four)  # asked again: the newest now, counted once
    known.put(("d",), four)
    assert known.get(("c",)) is None and known.get(("b",)) is known.get(("d",)) is four
    big = _state(_marks(range(0, 40), range(0)))
    known.put(("e",), big)  # more than the budget alone: kept, the only one
    assert known.get(("e",)) is big and known.get(("d",)) is None
