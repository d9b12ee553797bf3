"""What the owner allowed, and what they asked to delete: the consent book the tagger asks.

Pure: consent-event records in, answers out. Each event on the compacted `consent` topic
carries the car's every consent decision and deletion scope so far (compaction keeps only
a car's latest event), so the book merges them by id; replaying the topic from the start,
or the same event twice, yields the same book — and the deletion scopes come back with it,
which is what keeps a replay of old frames from storing deleted data again.

A sample is judged at its event time, like ownership: the owner then (from the ownership
book), that owner's latest decision for the sample's category begun by then, and whether
it had expired. No decision, or an expired grant, means the category's catalog default.
Decisions of a previous owner never apply to the next one. Per car the answers are cut
into stretches of time with one `Policy` each (between any two moments where an owner, a
decision, an expiry or a deletion scope begins or ends), so the hot path asks one bisect
per frame, as `OwnershipBook.owner_at` does.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from processors.batch.ownership import NO_OWNER, OwnershipBook
from schemas.catalog import Catalog, to_grid
from schemas.consent import ConsentDecision
from schemas.tables import CONSENT_DECISIONS, INCIDENTS

OFF = "off"
_FULL = ("on", "precise")  # granted at full precision
_EARLIEST = -(1 << 62)


@dataclass(frozen=True, slots=True)
class DeletionScope:
    request_id: str
    owner_id: str
    categories: frozenset[str]
    time_from: int  # ms, inclusive
    time_to: int  # ms, exclusive


@dataclass(frozen=True, slots=True)
class Policy:
    """What to do with one car's samples over a stretch of time."""

    owner: str
    # Every signal -> (category, sensitivity) when stored; (category, None) when not
    # collected for want of consent (counted); (category, "") when dropped uncounted (a
    # deletion scope, or what a coarse grant leaves out). One lookup per sample.
    labels: Mapping[str, tuple[str, str | None]]
    coarse: frozenset[str]  # stored signals rounded to the coarse grid
    stored: frozenset[str]  # categories stored (wholly or coarse)

    def stores(self, category: str) -> bool:
        return category in self.stored


_Parts = tuple[dict[str, tuple[str, str | None]], frozenset[str], frozenset[str]]


@dataclass
class _Car:
    decisions: dict[str, ConsentDecision] = field(default_factory=dict)
    deletions: dict[tuple[str, int], DeletionScope] = field(default_factory=dict)


@dataclass
class _Stretches:
    revision: int  # of the car's ownership history they were cut with
    starts: list[int]
    policies: list[Policy]


class Rules:
    """The catalog's side of a policy: each signal's labels, each category's default and
    coarse signals. Policies with the same modes are one shared object."""

    def __init__(self, catalog: Catalog, grid_degrees: float) -> None:
        self.labels = {s.name: (s.category, s.sensitivity) for s in catalog}
        self.categories: dict[str, list[str]] = {name: [] for name in catalog.categories}
        for s in catalog:
            self.categories[s.category].append(s.name)
        self.defaults = {
            name: ("on" if c.collected_by_default else OFF)
            for name, c in catalog.categories.items()
        }
        self.coarse_grid = {
            name: frozenset(c.coarse_grid) for name, c in catalog.categories.items()
        }
        self.grid = grid_degrees
        self._shared: dict[tuple[str, tuple[str, ...]], Policy] = {}
        self._parts: dict[tuple[str, ...], _Parts] = {}

    def round(self, value: float) -> float:
        return to_grid(value, self.grid)

    def policy(self, owner: str, modes: Mapping[str, str]) -> Policy:
        """The policy of `owner` with `modes` per category ("deleted" = in a deletion scope)."""
        key = tuple(modes[c] for c in self.categories)
        policy = self._shared.get((owner, key))
        if policy is None:
            parts = self._parts.get(key) or self._make_parts(key)
            policy = Policy(owner, *parts)
            if len(self._shared) > 100_000:  # bounded: one per owner and mode mix
                self._shared.clear()
            self._shared[(owner, key)] = policy
        return policy

    def _make_parts(self, key: tuple[str, ...]) -> _Parts:
        labels: dict[str, tuple[str, str | None]] = {}
        coarse: set[str] = set()
        stored: set[str] = set()
        for (category, names), mode in zip(self.categories.items(), key, strict=True):
            if mode == OFF:
                labels.update((n, (category, None)) for n in names)
                continue
            # "deleted": dropped, not counted: the owner asked for it to go away.
            labels.update((n, (category, "")) for n in names)
            if mode == "deleted":
                continue
            stored.add(category)
            grid = self.coarse_grid[category]
            kept = names if mode in _FULL else [n for n in names if n in grid]
            labels.update((n, self.labels[n]) for n in kept)
            if mode not in _FULL:
                coarse.update(kept)
        # Shared by every policy with these modes, whoever the owner.
        parts = (labels, frozenset(coarse), frozenset(stored))
        self._parts[key] = parts
        return parts


class ConsentBook:
    """Consent decisions and deletion scopes per car, answered at a sample's event time."""

    def __init__(self, rules: Rules, ownership: OwnershipBook) -> None:
        self.rules = rules
        self.ownership = ownership
        self._cars: dict[str, _Car] = {}
        self._stretches: dict[str, _Stretches] = {}
        self._revisions = ownership.revisions  # read per frame: no method call

    def __len__(self) -> int:
        return len(self._cars)

    def apply(self, event: Mapping[str, Any], partition: int = 0, offset: int = 0) -> str:
        """Merge one consent event (its decisions and deletion scopes); returns its VIN."""
        vin = str(event["vin"])
        car = self._cars.setdefault(vin, _Car())
        for d in event.get("decisions", ()):
            expires = d.get("expires_at")
            car.decisions[str(d["id"])] = ConsentDecision(
                str(d["id"]), str(d["owner_id"]), str(d["category"]), str(d["mode"]),
                int(d["effective_from"]), None if expires is None else int(expires),
                int(d["recorded_at"]),
            )  # fmt: skip
        for s in event.get("deletions", ()):
            scope = DeletionScope(str(s["request_id"]), str(s["owner_id"]),
                                  frozenset(s["categories"]), int(s["time_from"]),
                                  int(s["time_to"]))  # fmt: skip
            car.deletions[(scope.request_id, scope.time_from)] = scope
        self._stretches.pop(vin, None)
        return vin

    def decisions(self, vin: str) -> list[ConsentDecision]:
        car = self._cars.get(vin)
        return sorted(car.decisions.values(), key=_order) if car else []

    def deletions(self, vin: str) -> list[DeletionScope]:
        car = self._cars.get(vin)
        return sorted(car.deletions.values(), key=lambda s: s.time_from) if car else []

    def decision_columns(self, vins: Iterable[str]) -> list[list[Any]]:
        """The `consent_decisions` column lists of the cars `vins`."""
        columns = CONSENT_DECISIONS.empty()
        for vin in vins:
            for decision in self.decisions(vin):
                for column, value in zip(columns, decision.row(vin), strict=True):
                    column.append(value)
        return columns

    def policy(self, vin: str, time_ms: int) -> Policy:
        """The policy for the car's samples taken at `time_ms`."""
        stretches = self._stretches.get(vin)
        if stretches is None or stretches.revision != self._revisions.get(vin, 0):
            stretches = self._cut(vin)
        starts = stretches.starts
        if len(starts) == 1:
            return stretches.policies[0]
        return stretches.policies[bisect_right(starts, time_ms) - 1]

    def mode(self, vin: str, owner: str, category: str, time_ms: int) -> str:
        """The mode that applies to `owner`'s `category` at `time_ms` (consent only)."""
        car = self._cars.get(vin)
        mine = [d for d in car.decisions.values() if d.owner_id == owner] if car else []
        return self._mode(_by_category(mine).get(category, []), owner, category, time_ms)

    def _mode(
        self, decisions: list[ConsentDecision], owner: str, category: str, time_ms: int
    ) -> str:
        """`decisions`: the owner's for the category, in decision order."""
        default = self.rules.defaults[category]
        if owner == NO_OWNER:
            return default
        begun = [d for d in decisions if d.effective_from <= time_ms]
        if not begun:
            return default
        latest = begun[-1]
        if latest.mode != OFF and latest.expires_at is not None and time_ms >= latest.expires_at:
            return default  # an expired grant: back to what holds without one
        return latest.mode

    def _cut(self, vin: str) -> _Stretches:
        car = self._cars.get(vin) or _Car()
        moments = {_EARLIEST, *(row[3] for row in self.ownership.intervals(vin))}
        for d in car.decisions.values():
            moments.add(d.effective_from)
            if d.expires_at is not None:
                moments.add(d.expires_at)
        for s in car.deletions.values():
            moments.update((s.time_from, s.time_to))
        starts: list[int] = []
        policies: list[Policy] = []
        by_owner: dict[str, dict[str, list[ConsentDecision]]] = {}
        for d in sorted(car.decisions.values(), key=_order):
            by_owner.setdefault(d.owner_id, {}).setdefault(d.category, []).append(d)
        for moment in sorted(moments):
            owner = self.ownership.owner_at(vin, moment)
            mine = by_owner.get(owner, {})
            modes = {
                c: self._mode(mine.get(c, []), owner, c, moment) for c in self.rules.categories
            }
            for s in car.deletions.values():
                if s.time_from <= moment < s.time_to:
                    modes.update((c, "deleted") for c in s.categories if c in modes)
            policy = self.rules.policy(owner, modes)
            if policies and policies[-1] is policy:
                continue  # nothing changes here
            starts.append(moment)
            policies.append(policy)
        stretches = _Stretches(self._revisions.get(vin, 0), starts, policies)
        self._stretches[vin] = stretches
        return stretches


class Unrestricted:
    """Every category stored, at full precision: the platform before consent, kept for the
    side-by-side benchmark (`VDP_PROCESS_CONSENT=false`) and for tests of other stages."""

    def __init__(self, rules: Rules, ownership: OwnershipBook) -> None:
        self.ownership = ownership
        self.rules = rules
        self._all = {c: "on" for c in rules.categories}
        self._by_owner: dict[str, Policy] = {}

    def policy(self, vin: str, time_ms: int) -> Policy:
        owner = self.ownership.owner_at(vin, time_ms)
        policy = self._by_owner.get(owner)
        if policy is None:
            policy = self._by_owner.setdefault(owner, self.rules.policy(owner, self._all))
        return policy


def stored_incidents(
    columns: list[list[Any]], rights: ConsentBook | Unrestricted
) -> list[list[Any]]:
    """The incident columns without the rows of a category not stored at their time."""
    vins, categories, times = (columns[INCIDENTS.columns.index(c)]
                               for c in ("vin", "category", "event_time"))  # fmt: skip
    keep = [i for i, (vin, category, t) in enumerate(zip(vins, categories, times, strict=True))
            if rights.policy(vin, t).stores(category)]  # fmt: skip
    if len(keep) == len(vins):
        return columns
    return [[column[i] for i in keep] for column in columns]


def _by_category(decisions: list[ConsentDecision]) -> dict[str, list[ConsentDecision]]:
    out: dict[str, list[ConsentDecision]] = {}
    for d in sorted(decisions, key=_order):
        out.setdefault(d.category, []).append(d)
    return out


def _order(d: ConsentDecision) -> tuple[int, int, str]:
    return (d.effective_from, d.recorded_at, d.id)
