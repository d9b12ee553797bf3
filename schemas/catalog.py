"""The signal catalog (`signals.json`) as typed, validated, cached objects.

The catalog is the one place a signal's type, unit, valid range, data category and
sensitivity are defined; code asks it rather than hard-coding any of them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from vdp.errors import ConfigurationError

CATALOG_PATH = Path(__file__).resolve().parent / "signals.json"

SENSITIVITIES = ("personal", "sensitive_personal", "service", "important")
AVRO_TYPES = ("double", "long", "boolean", "string")
# Which ClickHouse column types can hold each Avro type without loss of meaning.
_CLICKHOUSE_FAMILIES = {
    "double": re.compile(r"^Float(32|64)$"),
    "long": re.compile(r"^U?Int(8|16|32|64)$"),
    "boolean": re.compile(r"^Bool$"),
    "string": re.compile(r"^(LowCardinality\()?String\)?$"),
}
# The frame schema carries one map per Avro type; this names each type's map field.
FRAME_FIELD = {"double": "doubles", "long": "longs", "boolean": "booleans", "string": "strings"}
# How a category may be granted; "off" (refused, withdrawn) is always possible.
GRANT_MODES = ("on", "precise", "coarse")


def to_grid(value: float, grid_degrees: float) -> float:
    """A coarse coordinate: `value` rounded to the grid, then to the decimals the grid has,
    so 31.23 is 31.23 and not 31.230000000000004. The one rounding the processors store
    and the simulator's manifest expects."""
    digits = max(0, math.ceil(-math.log10(grid_degrees))) + 1
    return round(round(value / grid_degrees) * grid_degrees, digits)


class CatalogError(ConfigurationError):
    """The catalog file is inconsistent; the platform must not start with it."""


@dataclass(frozen=True, slots=True)
class Signal:
    name: str
    type: str
    clickhouse_type: str
    unit: str | None
    min: float | None
    max: float | None
    category: str
    sensitivity: str
    description: str
    vss: bool = True
    allowed: tuple[str, ...] | None = None
    pattern: str | None = None
    _regex: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def accepts(self, value: object) -> bool:
        """True when `value` has this signal's type and lies in its valid range or set."""
        if self.type == "boolean":
            return type(value) is bool
        if self.type == "string":
            if not isinstance(value, str):
                return False
            if self.allowed is not None and value not in self.allowed:
                return False
            # fullmatch: with match(), a pattern's `$` also matches before a final newline,
            # so "P0420\n" would pass a trouble-code pattern.
            return self._regex is None or self._regex.fullmatch(value) is not None
        # bool is an int in Python, but True is not a speed.
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.type == "long" and not isinstance(value, int):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        assert self.min is not None and self.max is not None  # checked at load
        return self.min <= value <= self.max

    @property
    def frame_field(self) -> str:
        """The frame map (`doubles`, `longs`, …) this signal's samples travel in."""
        return FRAME_FIELD[self.type]


@dataclass(frozen=True, slots=True)
class Category:
    """A data category: what owners grant per token scope, how long its data is kept, and
    whether it is collected before the owner decides (GB/T 41871: sensitive personal
    information only after a separate consent)."""

    name: str
    retention_days: int
    description: str
    collected_by_default: bool = False  # absent in the file: not collected until granted
    modes: tuple[str, ...] = ("on",)  # how it may be granted ("precise"/"coarse" for location)
    coarse_grid: tuple[str, ...] = ()  # signals a coarse grant keeps, rounded to the grid


@dataclass(frozen=True)
class Catalog:
    signals: Mapping[str, Signal]
    version: int
    vss_version: str
    categories: Mapping[str, Category]

    def __getitem__(self, name: str) -> Signal:
        return self.signals[name]

    def __contains__(self, name: object) -> bool:
        return name in self.signals

    def __iter__(self) -> Iterator[Signal]:
        return iter(self.signals.values())

    def __len__(self) -> int:
        return len(self.signals)

    def get(self, name: str) -> Signal | None:
        return self.signals.get(name)

    def in_category(self, category: str) -> list[Signal]:
        if category not in self.categories:
            raise KeyError(f"unknown category {category!r}")
        return [s for s in self.signals.values() if s.category == category]


def _category(entry: Mapping[str, Any]) -> Category:
    name, days = entry.get("name"), entry.get("retention_days")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise CatalogError(f"category name must be lower_snake_case: {name!r}")
    if isinstance(days, bool) or not isinstance(days, int) or days <= 0:
        raise CatalogError(f"category {name}: retention_days must be a positive whole number")
    default = entry.get("collected_by_default", False)
    if not isinstance(default, bool):
        raise CatalogError(f"category {name}: collected_by_default must be true or false")
    modes = tuple(entry.get("modes", ("on",)))
    if not modes or any(mode not in GRANT_MODES for mode in modes):
        raise CatalogError(f"category {name}: modes must be some of {GRANT_MODES}")
    grid = tuple(entry.get("coarse_grid", ()))
    if grid and "coarse" not in modes:
        raise CatalogError(f"category {name}: coarse_grid without a coarse mode")
    return Category(name, days, str(entry.get("description", "")), default, modes, grid)


def _signal(entry: Mapping[str, Any], categories: Mapping[str, Category]) -> Signal:
    name = entry.get("name")
    if not isinstance(name, str) or not name.startswith("Vehicle."):
        raise CatalogError(f"signal name must be a VSS path starting 'Vehicle.': {name!r}")
    typ, ch = entry.get("type"), entry.get("clickhouse_type", "")
    if typ not in AVRO_TYPES:
        raise CatalogError(f"{name}: type {typ!r} is not one of {AVRO_TYPES}")
    if not _CLICKHOUSE_FAMILIES[typ].match(ch):
        raise CatalogError(f"{name}: ClickHouse type {ch!r} cannot hold Avro {typ}")
    if entry.get("category") not in categories:
        known = tuple(categories)
        raise CatalogError(f"{name}: category {entry.get('category')!r} not in {known}")
    if entry.get("sensitivity") not in SENSITIVITIES:
        raise CatalogError(f"{name}: sensitivity {entry.get('sensitivity')!r} unknown")
    lo, hi = entry.get("min"), entry.get("max")
    if typ in ("double", "long"):
        if not isinstance(lo, int | float) or not isinstance(hi, int | float) or lo > hi:
            raise CatalogError(f"{name}: numeric signal needs min <= max, got {lo}..{hi}")
    elif lo is not None or hi is not None:
        raise CatalogError(f"{name}: only numeric signals have a min/max")
    allowed, pattern = entry.get("allowed"), entry.get("pattern")
    if (allowed is not None or pattern is not None) and typ != "string":
        raise CatalogError(f"{name}: allowed/pattern apply to string signals only")
    return Signal(
        name=name,
        type=typ,
        clickhouse_type=ch,
        unit=entry.get("unit"),
        min=lo,
        max=hi,
        category=entry["category"],
        sensitivity=entry["sensitivity"],
        description=entry.get("description", ""),
        vss=bool(entry.get("vss", True)),
        allowed=tuple(allowed) if allowed is not None else None,
        pattern=pattern,
        _regex=re.compile(pattern) if pattern else None,
    )


def parse_catalog(document: Mapping[str, Any]) -> Catalog:
    """Validate a catalog document (the parsed JSON) and build the `Catalog`."""
    categories: dict[str, Category] = {}
    for entry in document.get("categories", []):
        category = _category(entry)
        if category.name in categories:
            raise CatalogError(f"category {category.name} is defined twice")
        categories[category.name] = category
    if not categories:
        raise CatalogError("the catalog defines no categories")
    signals: dict[str, Signal] = {}
    for entry in document.get("signals", []):
        signal = _signal(entry, categories)
        if signal.name in signals:
            raise CatalogError(f"signal {signal.name} is defined twice")
        signals[signal.name] = signal
    for category in categories.values():
        strays = [n for n in category.coarse_grid if n not in signals or signals[n].type != "double"
                  or signals[n].category != category.name]  # fmt: skip
        if strays:
            raise CatalogError(
                f"category {category.name}: coarse_grid {strays} are not its doubles"
            )
    missing = set(categories) - {s.category for s in signals.values()}
    if missing:
        raise CatalogError(f"no signal in categories {sorted(missing)}")
    return Catalog(
        MappingProxyType(signals),
        int(document["version"]),
        document["vss_version"],
        MappingProxyType(categories),
    )


def load_catalog(path: Path = CATALOG_PATH) -> Catalog:
    """Load and validate a catalog file (cached per path: it is read once per process)."""
    return _load(path.resolve())


@cache
def _load(path: Path) -> Catalog:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CatalogError(f"cannot read the signal catalog {path}: {e}") from e
    return parse_catalog(document)


# The data categories, in catalog order: read from the catalog file, never written in code.
CATEGORIES: tuple[str, ...] = tuple(load_catalog().categories)
