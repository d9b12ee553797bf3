"""Tagging: each kept sample gets its owner (at its event time), category and sensitivity.

Pure: valid frames in, column lists for the `samples` insert out (clickhouse-connect takes
columns without building a dict per row). Category and sensitivity come from the signal
catalog, never from code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from processors.batch.ownership import NO_OWNER, OwnershipBook
from processors.batch.quality import JumpDetector
from processors.batch.records import ValidFrame
from processors.batch.validate import MAPS
from schemas.catalog import Catalog
from schemas.tables import SAMPLES


@dataclass
class SampleColumns:
    """Column-oriented rows for `samples`, in the table contract's order."""

    columns: list[list[Any]] = field(default_factory=SAMPLES.empty)
    unowned: int = 0  # samples tagged with no owner (kept, never served)
    flagged: int = 0  # samples with a quality flag

    def __len__(self) -> int:
        return len(self.columns[0])


class Tagger:
    def __init__(self, catalog: Catalog, book: OwnershipBook) -> None:
        self.book = book
        self.jumps = JumpDetector()
        self._labels = {s.name: (s.category, s.sensitivity) for s in catalog}

    def tag(self, frames: Iterable[ValidFrame]) -> SampleColumns:
        out = SampleColumns()
        (owners, vins, categories, signals, times, seqs, nums, strs, quality, sens, topics,
         partitions, offsets) = out.columns  # fmt: skip
        labels = self._labels
        for valid in frames:
            frame, record, rejected = valid.frame, valid.record, valid.rejected
            vin, seq, event_time = frame["vin"], frame["seq"], frame["event_time"]
            owner = self.book.owner_at(vin, event_time)
            doubles = frame["doubles"]
            if rejected:
                doubles = {k: v for k, v in doubles.items() if k not in rejected}
            flags = self.jumps.flags(vin, event_time, doubles)
            before = len(signals)
            for field_name in MAPS:
                values = doubles if field_name == "doubles" else frame[field_name]
                is_str = field_name == "strings"
                for name, value in values.items():
                    if rejected and name in rejected:
                        continue
                    category, sensitivity = labels[name]
                    signals.append(name)
                    categories.append(category)
                    sens.append(sensitivity)
                    if is_str:
                        nums.append(None)
                        strs.append(value)
                    else:
                        nums.append(float(value))
                        strs.append(None)
                    quality.append(flags.get(name, 0) if flags else 0)
            n = len(signals) - before
            owners.extend([owner] * n)
            vins.extend([vin] * n)
            times.extend([event_time] * n)
            seqs.extend([seq] * n)
            topics.extend([record.topic] * n)
            partitions.extend([record.partition] * n)
            offsets.extend([record.offset] * n)
            if owner == NO_OWNER:
                out.unowned += n
            if flags:
                out.flagged += len(flags)
        return out
