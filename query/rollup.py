"""The month views from the minute rollup: `/series?resolution=` in whole minutes.

`samples_1m` holds, per car, owner, signal and minute, the min, max, sum and count of the
samples (kept by the deriver, processors/derive/). A request is cut into two parts that
together are exactly its range, each counted once:

- whole minutes wholly inside one of the owner's ownership periods, in hours the rollup
  holds completely (`derive_hours`: marked, and rolled up since its last mark), come from
  the rollup: one row per minute instead of up to 600 samples;
- everything else (the partial minutes at the range's ends and at a change of owner,
  hours still changing or never rolled up) is read raw with the very filter of the raw
  query.

The plan is made from the state: the owner's periods and the marks of the range's hours
(`State`). A state already read for the same owner, car and days is used at once, while
the state is read again beside the answer's query; the answer stands if the fresh state
holds for its plan (`State.holds_for`), else it is made again from the fresh one (`KnownStates`).

Then each bucket's figures are combined: min of mins, max of maxes, sums and counts added,
avg = sum / count. So the answer is the raw query's: min, max and count exactly, avg up
to the rounding of a sum taken in another order (a relative 1e-15, as two runs of the raw
query on several threads differ by). `tests/integration/test_derived.py` holds it to that,
after a crash replay and after a deletion too.
"""

from __future__ import annotations

from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from threading import Lock
from typing import TYPE_CHECKING, Any

from query.params import TimeRange

if TYPE_CHECKING:
    from query.json_rows import JsonRows
    from query.repository import Repository, Scope

Ranges = list[tuple[datetime, datetime]]
_MINUTE, _HOUR = timedelta(minutes=1), timedelta(hours=1)
# More pieces than this and the plan's SQL would cost more than it saves: read it raw.
MAX_PIECES = 48
_T = "DateTime64(3, 'UTC')"
# The owner's periods with the car, and the range's hours with their marks: when samples
# of the hour were last inserted, and when it was last rolled up (see `rolled`).
_STATE = (
    "SELECT (SELECT groupArray((valid_from, valid_to)) FROM ownership_intervals FINAL "
    "WHERE vin = {vin:String} AND owner_id = {owner:String}), "
    "(SELECT groupArray((hour, marked, rolled)) FROM (SELECT hour, max(marked_at) AS marked, "
    "max(rolled_at) AS rolled FROM derive_hours WHERE vin = {vin:String} "
    "AND day >= toDate({start:DateTime64(3, 'UTC')}) "
    "AND day <= toDate({end:DateTime64(3, 'UTC')}) GROUP BY hour))"
)
_NEVER = datetime.fromtimestamp(0, UTC)
Marks = dict[datetime, tuple[datetime, datetime]]


@dataclass(frozen=True)
class State:
    """What a plan is made from: the owner's periods with the car, and the marks of the
    range's hours (both only ever grow: a mark is a latest time)."""

    periods: Ranges
    marks: Marks

    def rolled(self) -> list[datetime]:
        """The hours the rollup holds whole: marked (samples were inserted) and rolled up
        since the last mark."""
        return [h for h, (m, r) in self.marks.items() if _utc(m) > _NEVER and r >= m]

    def holds_for(self, earlier: State, from_rollup: Ranges) -> bool:
        """Whether a plan made from `earlier` is still this state's: the same periods, and
        the hours it reads from the rollup marked and rolled as they were. Marks only
        grow, so equal marks then and now mean unchanged in between; an hour read raw
        may change at will (raw is always right)."""
        if self.periods != earlier.periods:
            return False
        hours = [h for h in earlier.rolled() if _touches(h, from_rollup)]
        return all(self.marks.get(h) == earlier.marks[h] for h in hours)


def _touches(hour: datetime, ranges: Ranges) -> bool:
    start = _utc(hour)
    return any(a < start + _HOUR and start < b for a, b in ranges)


def read_state(repo: Repository, scope: Scope) -> State:
    periods, hours = repo.client.query(_STATE, parameters=scope.params()).result_rows[0]
    return State([(a, b) for a, b in periods], {h: (m, r) for h, m, r in hours})


class KnownStates:
    """The state last read per owner, car and days, shared by the service's threads. A
    request whose state is known is answered from it while the state is read again beside
    the answer's query (two statements at once instead of one after the other); if the
    fresh state does not hold for the plan (`State.holds_for`), the answer is made again
    from it. So an answer's plan always held at a state read while or after its query was
    sent: never staler than reading the state first, as a request with no state known does."""

    # Hours kept in all (a state holds one entry per hour of its days, ~250 bytes each):
    # a few hundred month views, or a few dozen of a year, in ~25 MB.
    MOST_HOURS = 100_000

    def __init__(self) -> None:
        self._known: OrderedDict[tuple[Any, ...], State] = OrderedDict()
        self._hours = 0
        self._lock = Lock()
        self._pool: ThreadPoolExecutor | None = None

    def get(self, key: tuple[Any, ...]) -> State | None:
        with self._lock:
            return self._known.get(key)

    def put(self, key: tuple[Any, ...], state: State) -> None:
        with self._lock:
            if (before := self._known.pop(key, None)) is not None:
                self._hours -= len(before.marks)
            self._known[key] = state
            self._hours += len(state.marks)
            while self._hours > self.MOST_HOURS and len(self._known) > 1:
                self._hours -= len(self._known.popitem(last=False)[1].marks)

    def submit(self, repo: Repository, scope: Scope) -> Future[State]:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(4, thread_name_prefix="rollup-state")
            return self._pool.submit(read_state, repo, scope)


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def _floor(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def _ceil(t: datetime) -> datetime:
    floor = _floor(t)
    return floor if floor == t else floor + _MINUTE


def merged(ranges: Ranges) -> Ranges:
    out: Ranges = []
    for a, b in sorted(r for r in ranges if r[0] < r[1]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def intersected(x: Ranges, y: Ranges) -> Ranges:
    return merged([(max(a, c), min(b, d)) for a, b in x for c, d in y])


def subtracted(whole: tuple[datetime, datetime], holes: Ranges) -> Ranges:
    out: Ranges = []
    cursor = whole[0]
    for a, b in merged(holes):
        if a > cursor:
            out.append((cursor, min(a, whole[1])))
        cursor = max(cursor, b)
    if cursor < whole[1]:
        out.append((cursor, whole[1]))
    return [r for r in out if r[0] < r[1]]


def plan(span: TimeRange, periods: Ranges, rolled: list[datetime]) -> tuple[Ranges, Ranges]:
    """(ranges read from the rollup, ranges read raw): a partition of `span`. Rollup
    ranges are in whole minutes, inside a period, in hours rolled up whole."""
    minutes = [(_ceil(span.start), _floor(span.end))]
    inside = [(_ceil(_utc(a)), _floor(_utc(b))) for a, b in periods]
    hours = merged([(_utc(h), _utc(h) + _HOUR) for h in rolled])
    from_rollup = intersected(intersected(minutes, merged(inside)), hours)
    return from_rollup, subtracted((span.start, span.end), from_rollup)


def _any_of(ranges: Ranges, prefix: str, params: dict[str, Any]) -> str:
    """`event_time` in any of `ranges`, as ORed comparisons the primary key can use."""
    terms = []
    for i, (a, b) in enumerate(ranges):
        params[f"{prefix}{i}a"], params[f"{prefix}{i}b"] = a, b
        terms.append(
            f"(event_time >= {{{prefix}{i}a:{_T}}} AND event_time < {{{prefix}{i}b:{_T}}})"
        )
    return "(" + " OR ".join(terms) + ")" if terms else "0"


def downsampled_from_rollup(
    repo: Repository, scope: Scope, resolution_s: int, columns: bool = False
) -> JsonRows:
    span = scope.span
    key = (scope.owner, scope.vin, _utc(span.start).date(), _utc(span.end).date())
    known = repo.rollup_states.get(key) if repo.concurrent else None
    if known is None:
        state = read_state(repo, scope)
        answer, _ = _answer(repo, scope, resolution_s, columns, state)
    else:
        fresh = repo.rollup_states.submit(repo, scope)
        answer, from_rollup = _answer(repo, scope, resolution_s, columns, known)
        state = fresh.result()
        if not state.holds_for(known, from_rollup):
            answer, _ = _answer(repo, scope, resolution_s, columns, state)
    repo.rollup_states.put(key, state)
    return answer


def _answer(
    repo: Repository, scope: Scope, resolution_s: int, columns: bool, state: State
) -> tuple[JsonRows, Ranges]:
    """The buckets as planned from `state`, and the ranges read from the rollup."""
    from query.repository import OWNED, SELECTED, bucket_time

    from_rollup, raw = plan(scope.span, state.periods, state.rolled())
    if not from_rollup or len(from_rollup) + len(raw) > MAX_PIECES:
        return repo.raw_downsampled(scope, resolution_s, columns), []
    params = scope.params() | {"res": resolution_s}
    bucket = (
        "toDateTime64(toStartOfInterval(event_time, toIntervalSecond({res:UInt32}), 'UTC'), "
        "3, 'UTC')"
    )
    rollup = (
        "FROM samples_1m FINAL WHERE vin = {vin:String} AND owner_id = {owner:String} "
        f"AND owner_id != '' {SELECTED} AND {_any_of(from_rollup, 'u', params)}"
    )
    samples = (
        f"FROM samples FINAL WHERE {OWNED} {SELECTED} AND value_num IS NOT NULL "
        f"AND {_any_of(raw, 'r', params)}"
    )
    if resolution_s == 60:
        # A bucket is a minute, and a minute comes from the rollup or from the samples,
        # never both: each rollup row is a bucket already, only the raw part is grouped.
        parts = [
            f"SELECT signal, {bucket} AS bucket, lo AS min, total / n AS avg, hi AS max, "  # noqa: S608
            f"toUInt64(n) AS count {rollup}"
        ]
        if raw:
            parts.append(
                f"SELECT signal, {bucket} AS bucket, min(value_num) AS min, "  # noqa: S608
                f"avg(value_num) AS avg, max(value_num) AS max, count() AS count {samples} "
                "GROUP BY signal, bucket"
            )
        sql = (
            f"SELECT signal, {bucket_time('bucket', columns)} AS time, min, avg, max, count "  # noqa: S608
            f"FROM ({' UNION ALL '.join(parts)}) ORDER BY signal, bucket"
        )
        return repo.bucket_lines(sql, params, columns), from_rollup
    parts = [f"SELECT signal, {bucket} AS bucket, lo, hi, total, n {rollup}"]
    if raw:
        parts.append(
            f"SELECT signal, {bucket} AS bucket, value_num AS lo, value_num AS hi, "  # noqa: S608
            f"value_num AS total, 1 AS n {samples}"
        )
    sql = (
        f"SELECT signal, {bucket_time('bucket', columns)} AS time, "  # noqa: S608
        "min(lo) AS min, sum(total) / sum(n) AS avg, max(hi) AS max, sum(n) AS count "
        f"FROM ({' UNION ALL '.join(parts)}) GROUP BY signal, bucket ORDER BY signal, bucket"
    )
    return repo.bucket_lines(sql, params, columns), from_rollup
