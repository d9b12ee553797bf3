"""Spotting duplicate frames: a second, different message with an already-seen (VIN, seq).

A redelivered message is NOT a duplicate: after a crash the restarted worker re-reads from
the last committed offset, and those records come back with the same topic, partition and
offset. So each remembered seq keeps the coordinates of the message that carried it, and
only a seq seen at other coordinates is a duplicate.

The memory is bounded: per VIN, the `window` most recently accepted seqs. It lives in the
worker's memory only. Trade-off, chosen on purpose: a duplicate whose original was
committed before a restart (or on another worker before a rebalance) is not recognised and
is stored again; that costs no correctness in queries, because the copy has the same
sample identity (vin, category, signal, event_time, seq) and collapses into the original
in ClickHouse's ReplacingMergeTree (read with FINAL). It only misses a dead-letter record.
"""

from __future__ import annotations

from collections import OrderedDict

Coordinates = tuple[str, int, int]  # topic, partition, offset


class DuplicateTracker:
    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError("the duplicate window must hold at least one seq")
        self.window = window
        self._seen: dict[str, OrderedDict[int, Coordinates]] = {}

    def seen_elsewhere(self, vin: str, seq: int, where: Coordinates) -> Coordinates | None:
        """Where (vin, seq) was seen before, when that was another message; else None."""
        seqs = self._seen.get(vin)
        if seqs is None:
            return None
        previous = seqs.get(seq)
        if previous is None or previous == where:
            return None
        return previous

    def remember(self, vin: str, seq: int, where: Coordinates) -> None:
        seqs = self._seen.get(vin)
        if seqs is None:
            seqs = self._seen[vin] = OrderedDict()
        if seq in seqs:
            return
        seqs[seq] = where
        if len(seqs) > self.window:
            seqs.popitem(last=False)

    def __len__(self) -> int:
        return sum(len(s) for s in self._seen.values())
