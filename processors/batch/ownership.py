"""Who owned which car when: the ownership book the tagger asks, built from ownership events.

Pure: ownership-event records in, answers out. Each event on the compacted `ownership`
topic carries the car's whole timeline so far (compaction keeps only a car's latest event),
so the book merges every event's timeline into the car's history; replaying the topic from
the start, or the same event twice, yields the same book.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas.tables import OPEN_END_MS, OWNERSHIP_INTERVALS

NO_OWNER = ""  # stored for samples taken while nobody (known) owned the car; never served


@dataclass
class _History:
    starts: list[int] = field(default_factory=list)  # effective_from, ascending
    owners: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    partition: int = 0
    offset: int = -1  # of the last event applied


class OwnershipBook:
    def __init__(self) -> None:
        self._cars: dict[str, _History] = {}
        self.revisions: dict[str, int] = {}  # per car, bumped by each event applied

    def __len__(self) -> int:
        return len(self._cars)

    def apply(self, event: Mapping[str, Any], partition: int = 0, offset: int = 0) -> str:
        """Merge one ownership event (and the timeline it carries); returns its VIN."""
        vin = str(event["vin"])
        history = self._cars.get(vin) or _History()
        periods = {
            start: (owner, kind)
            for start, owner, kind in zip(
                history.starts, history.owners, history.kinds, strict=True
            )
        }
        for period in [*event.get("timeline", ()), event]:
            owner = period["owner_id"]
            periods[int(period["effective_from"])] = (owner or NO_OWNER, str(period["kind"]))
        ordered = sorted(periods.items())
        history.starts = [start for start, _ in ordered]
        history.owners = [owner for _, (owner, _) in ordered]
        history.kinds = [kind for _, (_, kind) in ordered]
        if offset >= history.offset:
            history.partition, history.offset = partition, offset
        self._cars[vin] = history
        self.revisions[vin] = self.revisions.get(vin, 0) + 1
        return vin

    def revision(self, vin: str) -> int:
        """How many events the car's history has taken in (0: none): answers derived from
        it (the consent book's stretches) are current while this has not changed."""
        return self.revisions.get(vin, 0)

    def owner_at(self, vin: str, time_ms: int) -> str:
        """The owner at `time_ms` (the latest period begun by then); NO_OWNER if none."""
        history = self._cars.get(vin)
        if history is None:
            return NO_OWNER
        index = bisect_right(history.starts, time_ms) - 1
        return history.owners[index] if index >= 0 else NO_OWNER

    def intervals(self, vin: str) -> list[tuple[str, str, str, int, int, int, int]]:
        """The car's rows for `ownership_intervals`, in the table contract's column order;
        the last one is open (it ends at OPEN_END_MS)."""
        history = self._cars.get(vin)
        if history is None:
            return []
        ends = [*history.starts[1:], OPEN_END_MS]
        return [
            (vin, owner, kind, start, end, history.partition, history.offset)
            for start, end, owner, kind in zip(
                history.starts, ends, history.owners, history.kinds, strict=True
            )
        ]

    def interval_columns(self, vins: Iterable[str]) -> list[list[Any]]:
        """The `ownership_intervals` column lists of the cars `vins`."""
        columns = OWNERSHIP_INTERVALS.empty()
        for vin in vins:
            for row in self.intervals(vin):
                for column, value in zip(columns, row, strict=True):
                    column.append(value)
        return columns
