"""Tagging: each kept sample gets its owner (at its event time), category and sensitivity,
and only what that owner allowed then is kept.

Pure: valid frames in, column lists for the `samples` insert out (clickhouse-connect takes
columns without building a dict per row). Category and sensitivity come from the signal
catalog, never from code. Consent is applied here, where data enters the store: a sample
of a category not granted at its event time is not stored but counted (`not_collected`,
per frame and category), a coarse location grant keeps only the rounded position, and a
sample inside a deletion scope is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from processors.batch.consent import ConsentBook, Rules, Unrestricted
from processors.batch.ownership import NO_OWNER, OwnershipBook
from processors.batch.quality import JumpDetector
from processors.batch.records import ValidFrame
from processors.batch.validate import MAPS
from schemas.catalog import Catalog
from schemas.tables import NOT_COLLECTED, SAMPLES


@dataclass
class SampleColumns:
    """Column-oriented rows for `samples`, in the table contract's order."""

    columns: list[list[Any]] = field(default_factory=SAMPLES.empty)
    not_collected: list[list[Any]] = field(default_factory=NOT_COLLECTED.empty)
    unowned: int = 0  # samples tagged with no owner (kept, never served)
    flagged: int = 0  # samples with a quality flag
    refused: int = 0  # samples not stored for want of consent (counted in not_collected)

    def __len__(self) -> int:
        return len(self.columns[0])


class Tagger:
    """`consent` None stores every category (`Unrestricted`): only for the benchmark's
    side-by-side run and for tests of the other stages."""

    def __init__(
        self, catalog: Catalog, book: OwnershipBook, consent: ConsentBook | None = None
    ) -> None:
        self.book = book
        self.jumps = JumpDetector()
        self.rights = consent if consent is not None else Unrestricted(Rules(catalog, 1.0), book)
        self._round = self.rights.rules.round

    def tag(self, frames: Iterable[ValidFrame]) -> SampleColumns:
        out = SampleColumns()
        (owners, vins, categories, signals, times, seqs, nums, strs, quality, sens, topics,
         partitions, offsets) = out.columns  # fmt: skip
        policy_at, rounded = self.rights.policy, self._round
        for valid in frames:
            frame, record, rejected = valid.frame, valid.record, valid.rejected
            vin, seq, event_time = frame["vin"], frame["seq"], frame["event_time"]
            policy = policy_at(vin, event_time)
            owner, labels = policy.owner, policy.labels
            counts: dict[str, int] | None = None
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
                    if not sensitivity:  # not granted (None: counted), or dropped ("")
                        if sensitivity is None:
                            counts = counts or {}
                            counts[category] = counts.get(category, 0) + 1
                        continue
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
            if policy.coarse:  # off the per-sample path: only coarse grants pay for it
                for i in range(before, len(signals)):
                    if signals[i] in policy.coarse:
                        nums[i] = rounded(nums[i])
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
            if counts:
                _count_refused(out, owner, vin, event_time, seq, counts)
        return out


def _count_refused(
    out: SampleColumns, owner: str, vin: str, event_time: int, seq: int, counts: dict[str, int]
) -> None:
    for category, n in counts.items():
        for column, value in zip(
            out.not_collected, (owner, vin, category, event_time, seq, n), strict=True
        ):
            column.append(value)
        out.refused += n
