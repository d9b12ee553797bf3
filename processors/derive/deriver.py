"""The deriver's rounds: find the hours of samples that changed, roll them up, cut the
cars' timelines again where they changed, and record how far each hour is derived.

Exact under the platform's failure model because every row written is a function of what
`samples` holds (FINAL): a batch re-delivered or replayed changes no sample, so it changes
no derived row (the changed hour is derived again to the same rows). The deriver keeps no
state that matters: its progress is in `derive_hours` (marks against coverage), so a
deriver killed mid-round does the round again, and two derivers write the same rows.

Timing rests on one assumption, stated in README: an insert is visible within
`VDP_DERIVE_SETTLE_SECONDS` of the moment its mark was stamped (marks are stamped by the
store's own clock as the insert runs). A round that starts at t0 therefore claims
coverage up to t0 - settle only. The rollup of an hour waits until the hour's last mark
is that old (a live car's current hour is read raw by the query service meanwhile); its
trips are cut again every round it changes, so they show within a round or two.

Deletion: a car with a deletion request pending, or done since the round began, is left
for a later round (its marks stay newer than its coverage), so rows computed from samples
read before the deletion are never written after it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from processors.derive.segments import HOUR_MS, Rules, Segment, cut
from processors.derive.store import DeriveStore, Hour
from processors.derive.window import Dirty, Key, changes, replay_from, settled_at
from vdp.settings import Settings

log = logging.getLogger("vdp.derive")

ROLL_CHUNK = 500  # hours per rollup statement (its parameters travel in the URL)
_CAR_CHUNK = 50  # cars per frames statement


@dataclass
class RoundStats:
    changed_hours: int = 0
    rolled_hours: int = 0
    cars: int = 0
    frames: int = 0
    written: int = 0
    tombstones: int = 0
    deferred_cars: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        return (
            f"{self.changed_hours} changed hours: {self.rolled_hours} rolled up; {self.cars} "
            f"cars cut again ({self.frames} frames, {self.written} segments written, "
            f"{self.tombstones} gone); {self.deferred_cars} cars waiting for a deletion; "
            f"{self.seconds:.2f} s"
        )


def rules_from(settings: Settings) -> Rules:
    return Rules(
        trip_gap_ms=int(settings.derive_trip_gap_seconds * 1000),
        merge_gap_ms=int(settings.derive_charge_merge_seconds * 1000),
        min_capacity_soc=settings.derive_min_capacity_soc,
    )


def _chunks(items: Sequence[Hour], size: int) -> Iterator[Sequence[Hour]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class Deriver:
    def __init__(self, store: DeriveStore, rules: Rules, settle_ms: int) -> None:
        self.store = store
        self.rules = rules
        self.settle_ms = settle_ms
        self.since = 0  # marks newer than this are looked at; 0: every mark, once

    def round(self) -> RoundStats:
        started = time.perf_counter()
        store, stats = self.store, RoundStats()
        t0 = store.now_ms()
        covered = t0 - self.settle_ms
        hours = store.changed_hours(self.since)
        stats.changed_hours = len(hours)
        waiting: list[Hour] = []  # of cars a deletion holds back: found again next round
        settled = [h for h in hours if h.rolled < h.marked <= covered]
        for chunk in _chunks(settled, ROLL_CHUNK):
            ready, held = self._held_back(chunk, covered)
            waiting += held
            store.roll_up(ready, t0)
            store.cover(ready, "rolled_at", covered)
            stats.rolled_hours += len(ready)
        by_car: dict[str, list[Hour]] = defaultdict(list)
        for h in hours:
            if h.marked > h.segmented:
                by_car[h.vin].append(h)
        cars = sorted(by_car)
        for i in range(0, len(cars), _CAR_CHUNK):
            batch = {v: by_car[v] for v in cars[i : i + _CAR_CHUNK]}
            written = self._cut_again(batch, t0, covered, stats)
            store.cover([h for v in written for h in batch[v]], "segmented_at", covered)
            waiting += [h for v in set(batch) - written for h in batch[v]]
        stats.deferred_cars = len({h.vin for h in waiting})
        # Next round: every mark not yet covered (unsettled, or a car held back).
        self.since = min([covered, *(h.marked - 1 for h in waiting)])
        stats.seconds = time.perf_counter() - started
        return stats

    def _held_back(self, hours: Sequence[Hour], covered: int) -> tuple[list[Hour], list[Hour]]:
        """(hours that may be written now, hours of cars a deletion holds back). Asked just
        before each write: the executor deletes only VDP_DELETION_SETTLE_SECONDS after a
        request is recorded, so a write that passed this check lands before it deletes."""
        blocked = self.store.deleting({h.vin for h in hours}, covered) if hours else set()
        return [h for h in hours if h.vin not in blocked], [h for h in hours if h.vin in blocked]

    def _cut_again(
        self, by_car: dict[str, list[Hour]], t0: int, covered: int, stats: RoundStats
    ) -> set[str]:
        """Cut the cars' changed stretches again and write them; the cars written."""
        store, context = self.store, self.rules.context_ms
        dirty = {
            v: Dirty(min(h.hour for h in hs), max(h.hour for h in hs) + HOUR_MS)
            for v, hs in by_car.items()
        }
        old = store.segment_starts(dirty)
        last = store.last_hour(dirty)
        start = {v: replay_from([s for _, s in old[v]], d, context) for v, d in dirty.items()}
        end = {v: d.end + context + HOUR_MS for v, d in dirty.items()}
        keep: dict[str, list[Segment]] = {}
        gone: dict[str, list[Key]] = {}
        todo = set(dirty)
        while todo:
            frames = store.frames({v: (start[v] - context, end[v]) for v in todo})
            for v in sorted(todo):
                new = cut(frames[v], self.rules, t0)
                x = settled_at(new, set(old[v]), dirty[v], context)
                if x is None and end[v] < last.get(v, 0):
                    end[v] += max(2 * (end[v] - start[v]), HOUR_MS)  # not settled yet: more
                    continue
                stats.frames += len(frames[v])
                keep[v], gone[v] = changes(old[v], new, start[v], x)
                todo.discard(v)
        ready, _ = self._held_back([h for v in keep for h in by_car[v]], covered)
        written = {h.vin for h in ready}
        keep = {v: keep[v] for v in written}
        gone = {v: gone[v] for v in written}
        store.write(keep, gone, t0)
        stats.cars += len(written)
        stats.written += sum(len(k) for k in keep.values())
        stats.tombstones += sum(len(g) for g in gone.values())
        return written


class DeriverLoop:
    """Rounds every `poll` seconds until stopped; a failed round is retried at the next."""

    def __init__(self, deriver: Deriver, poll_seconds: float) -> None:
        self.deriver = deriver
        self.poll = poll_seconds
        self.stop = threading.Event()
        self.failures = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                stats = self.deriver.round()
                if stats.changed_hours:
                    log.info("derive round: %s", stats.line())
            except Exception as e:  # noqa: BLE001 - ClickHouse away or refusing: retry
                self.failures += 1
                log.warning("derive round failed, will retry: %s", e)
            self.stop.wait(self.poll)
