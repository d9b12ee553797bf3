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
from itertools import compress
from typing import Any

from processors.batch.consent import ConsentBook, Policy, Rules, Unrestricted
from processors.batch.ownership import NO_OWNER, OwnershipBook
from processors.batch.quality import JumpDetector
from processors.batch.records import Shape, ValidFrame, shape_of
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
        # Off: every frame sample by sample (the reference the equivalence test compares
        # the columnar way with).
        self.columnar = True
        self._plans: dict[int, tuple[object, frozenset[str], dict[Shape, _Plan]]] = {}

    def tag(self, frames: Iterable[ValidFrame]) -> SampleColumns:
        out = SampleColumns()
        policy_at, flags_of = self.rights.policy, self.jumps.flags
        columnar, plan_for = self.columnar, self._plan_for
        (owners, vins, categories, signals, times, seqs, nums, strs, quality, sens, topics,
         partitions, offsets) = out.columns  # fmt: skip
        for valid in frames:
            frame, record = valid.frame, valid.record
            vin, event_time = frame["vin"], frame["event_time"]
            policy = policy_at(vin, event_time)
            if valid.rejected or not columnar:
                self._tag_samples(out, valid, policy)
                continue
            doubles, longs, booleans, strings = (
                frame["doubles"], frame["longs"], frame["booleans"], frame["strings"]
            )  # fmt: skip
            plan = plan_for(policy, valid.shape or shape_of(frame))
            flags = flags_of(vin, event_time, doubles)
            n = len(plan.signals)
            before = len(signals)
            signals.extend(plan.signals)
            categories.extend(plan.categories)
            sens.extend(plan.sens)
            # Numbers first (doubles, longs, booleans as floats), then strings: the order
            # the maps are walked in sample by sample.
            if plan.numbers is None:
                nums.extend(map(float, doubles.values()))
                if longs:
                    nums.extend(map(float, longs.values()))
                if booleans:
                    nums.extend(map(float, booleans.values()))
            else:
                values = [*map(float, doubles.values()), *map(float, longs.values()),
                          *map(float, booleans.values())]  # fmt: skip
                nums.extend(compress(values, plan.numbers))
            nums.extend(plan.string_gaps)
            strs.extend(plan.number_gaps)
            if plan.strings is None:
                strs.extend(strings.values())
            else:
                strs.extend(compress(strings.values(), plan.strings))
            if flags:
                quality.extend([flags.get(name, 0) for name in plan.signals])
                out.flagged += len(flags)
            else:
                quality.extend(plan.zeros)
            for i in plan.coarse:
                nums[before + i] = self._round(nums[before + i])
            owner = policy.owner
            owners.extend([owner] * n)
            vins.extend([vin] * n)
            times.extend([event_time] * n)
            seqs.extend([frame["seq"]] * n)
            topics.extend([record.topic] * n)
            partitions.extend([record.partition] * n)
            offsets.extend([record.offset] * n)
            if owner == NO_OWNER:
                out.unowned += n
            if plan.refused:
                _count_refused(out, owner, vin, event_time, frame["seq"], plan.refused)
        return out

    def _plan_for(self, policy: Policy, shape: Shape) -> _Plan:
        """The plan for frames of `shape` under `policy`'s labels, made once per pair."""
        labels = policy.labels
        entry = self._plans.get(id(labels))
        if entry is None or entry[0] is not labels or entry[1] is not policy.coarse:
            if len(self._plans) > _MOST_PLANS:
                self._plans.clear()
            entry = self._plans[id(labels)] = (labels, policy.coarse, {})
        plans = entry[2]
        plan = plans.get(shape)
        if plan is None:
            if len(plans) > _MOST_PLANS:
                plans.clear()
            plan = plans[shape] = _Plan.make(policy, shape)
        return plan

    def _tag_samples(self, out: SampleColumns, valid: ValidFrame, policy: Policy) -> None:
        """One frame, sample by sample: frames with rejected samples take this way (and,
        with `columnar` off, every frame: the reference the columnar way is tested against)."""
        (owners, vins, categories, signals, times, seqs, nums, strs, quality, sens, topics,
         partitions, offsets) = out.columns  # fmt: skip
        frame, record, rejected = valid.frame, valid.record, valid.rejected
        vin, seq, event_time = frame["vin"], frame["seq"], frame["event_time"]
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
                    nums[i] = self._round(nums[i])
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


_MOST_PLANS = 4096  # shapes per label set (a fleet sends a handful), and label sets


@dataclass(frozen=True, slots=True)
class _Plan:
    """What tagging makes of a frame with one shape (the signal names of its doubles,
    longs, booleans and strings, in order) under one label set: the columns that depend
    on the names only, worked out once instead of per sample."""

    signals: list[str]  # the kept samples' names, in the order they are stored
    categories: list[str]
    sens: list[str]
    numbers: tuple[bool, ...] | None  # which numeric samples are kept; None: all
    strings: tuple[bool, ...] | None  # which string samples are kept; None: all
    string_gaps: list[None]  # value_num of the kept string samples
    number_gaps: list[None]  # value_str of the kept numeric samples
    zeros: list[int]  # quality of a frame with no flags
    coarse: tuple[int, ...]  # positions (among the kept) rounded to the coarse grid
    refused: dict[str, int]  # not collected, per category (in the order first met)

    @classmethod
    def make(cls, policy: Policy, shape: Shape) -> _Plan:
        labels, coarse = policy.labels, policy.coarse
        signals: list[str] = []
        categories: list[str] = []
        sens: list[str] = []
        keep: list[list[bool]] = [[], []]  # numeric, string
        refused: dict[str, int] = {}
        for field_name, names in zip(MAPS, shape, strict=True):
            kept = keep[field_name == "strings"]
            for name in names:
                category, sensitivity = labels[name]
                kept.append(bool(sensitivity))
                if not sensitivity:
                    if sensitivity is None:
                        refused[category] = refused.get(category, 0) + 1
                    continue
                signals.append(name)
                categories.append(category)
                sens.append(sensitivity)
        numbers, strings = (None if all(k) else tuple(k) for k in keep)
        kept_strings, kept_numbers = sum(keep[1]), sum(keep[0])
        return cls(
            signals, categories, sens, numbers, strings, [None] * kept_strings,
            [None] * kept_numbers, [0] * len(signals),
            tuple(i for i, name in enumerate(signals) if name in coarse), refused,
        )  # fmt: skip


def _count_refused(
    out: SampleColumns, owner: str, vin: str, event_time: int, seq: int, counts: dict[str, int]
) -> None:
    for category, n in counts.items():
        for column, value in zip(
            out.not_collected, (owner, vin, category, event_time, seq, n), strict=True
        ):
            column.append(value)
        out.refused += n
