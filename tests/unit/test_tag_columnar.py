"""The columnar tagger (one plan per frame shape and label set) stores exactly what the
sample-by-sample tagger stores: same columns in the same order, same not-collected counts,
same unowned, flagged and refused tallies, on generated batches of several cars with
ownership changes, consent decisions of every mode, deletion scopes, rejected samples,
quality jumps and shapes that repeat (the plans are reused) or not."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.batch.consent import ConsentBook, Rules
from processors.batch.ownership import OwnershipBook
from processors.batch.records import RawRecord, ValidFrame
from processors.batch.tag import SampleColumns, Tagger
from producers.sim.fleet import OwnershipPeriod, ownership_records
from schemas.catalog import load_catalog

CATALOG = load_catalog()
VINS = ("LRWABCDE0N1234567", "LSV8AE4M5K1260401")
BY_MAP: dict[str, list[str]] = {}
for _signal in CATALOG:
    BY_MAP.setdefault(_signal.frame_field, []).append(_signal.name)
MODES = ("off", "on", "precise", "coarse")
SPEED, LAT, LON = (
    "Vehicle.Speed",
    "Vehicle.CurrentLocation.Latitude",
    "Vehicle.CurrentLocation.Longitude",
)


def _value(field: str, draw: Any) -> Any:
    if field == "doubles":
        return draw(st.floats(-500, 500, allow_nan=False))
    if field == "longs":
        return draw(st.integers(-(2**40), 2**40))
    if field == "booleans":
        return draw(st.booleans())
    return draw(st.text(max_size=5))


@st.composite
def frames(draw: Any) -> list[ValidFrame]:
    # A few shapes per batch, so plans are made and then reused.
    shapes = [
        {f: draw(st.lists(st.sampled_from(BY_MAP[f]), unique=True, max_size=6)) for f in BY_MAP}
        for _ in range(draw(st.integers(1, 4)))
    ]
    for shape in shapes:  # jumps need speed and position now and then
        if draw(st.booleans()):
            shape["doubles"] = list(dict.fromkeys([SPEED, LAT, LON, *shape["doubles"]]))
    out = []
    for i in range(draw(st.integers(0, 30))):
        shape = draw(st.sampled_from(shapes))
        maps = {f: {n: _value(f, draw) for n in names} for f, names in shape.items()}
        frame = {"vin": draw(st.sampled_from(VINS)), "seq": i,
                 "event_time": draw(st.integers(0, 200_000)), **maps}  # fmt: skip
        names = [n for names in shape.values() for n in names]
        rejected = frozenset(draw(st.lists(st.sampled_from(names), max_size=2))) if names and (
            draw(st.integers(0, 4)) == 0) else frozenset()  # fmt: skip
        record = RawRecord(None, b"", "telemetry.raw", i % 3, 1_000 + i, 0)
        out.append(ValidFrame(record, frame, rejected))
    return out


@st.composite
def consent_events(draw: Any) -> list[dict[str, Any]]:
    events = []
    for vin in VINS:
        decisions = [
            {
                "id": f"d{i}",
                "owner_id": draw(st.sampled_from(("alice", "bob", "carol"))),
                "category": draw(st.sampled_from(sorted(CATALOG.categories))),
                "mode": (mode := draw(st.sampled_from(MODES))),
                "effective_from": draw(st.integers(0, 200_000)),
                "expires_at": None if mode == "off" else draw(st.integers(0, 300_000)),
                "recorded_at": i,
            }  # fmt: skip
            for i in range(draw(st.integers(0, 6)))
        ]
        # and a coarse location grant of the car's first owner over part of its time
        decisions.append({"id": "c", "owner_id": "alice" if vin == VINS[0] else "carol",
                          "category": "location", "mode": "coarse",
                          "effective_from": draw(st.integers(0, 150_000)),
                          "expires_at": 400_000, "recorded_at": -1})  # fmt: skip
        deletions = [
            {
                "request_id": f"r{i}",
                "owner_id": "alice",
                "categories": draw(
                    st.lists(st.sampled_from(sorted(CATALOG.categories)), min_size=1, unique=True)
                ),
                "time_from": (start := draw(st.integers(0, 200_000))),
                "time_to": start + draw(st.integers(1, 50_000)),
            }  # fmt: skip
            for i in range(draw(st.integers(0, 2)))
        ]
        events.append({"vin": vin, "decisions": decisions, "deletions": deletions})
    return events


def _taggers(events: list[dict[str, Any]] | None) -> tuple[Tagger, Tagger]:
    ownership = OwnershipBook()
    ownership.apply(
        ownership_records(
            VINS[0],
            [OwnershipPeriod("alice", "delivered", 0), OwnershipPeriod("bob", "sold", 100_000)],
        )[-1]
    )
    ownership.apply(ownership_records(VINS[1], [OwnershipPeriod("carol", "delivered", 50_000)])[-1])
    consent = None
    if events is not None:
        consent = ConsentBook(Rules(CATALOG, 0.01), ownership)
        for event in events:
            consent.apply(event)
    columnar, reference = (Tagger(CATALOG, ownership, consent) for _ in range(2))
    reference.columnar = False
    return columnar, reference


def _same(a: SampleColumns, b: SampleColumns) -> None:
    assert a.columns == b.columns
    # float() keeps a double's type: the columns hold the very same kinds of value
    assert [list(map(type, c)) for c in a.columns] == [list(map(type, c)) for c in b.columns]
    assert a.not_collected == b.not_collected
    assert (a.unowned, a.flagged, a.refused) == (b.unowned, b.flagged, b.refused)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(frames(), min_size=1, max_size=3), events=st.none() | consent_events())
def test_the_columnar_tagger_stores_what_the_sample_by_sample_one_stores(
    batches: list[list[ValidFrame]], events: list[dict[str, Any]] | None
) -> None:
    columnar, reference = _taggers(events)
    for batch in batches:  # state (jumps, plans) carries over from batch to batch
        _same(columnar.tag(batch), reference.tag(batch))


def test_the_plans_are_reused_for_frames_of_one_shape() -> None:
    columnar, _ = _taggers(None)
    frame = {"vin": VINS[0], "seq": 1, "event_time": 5, "doubles": {SPEED: 1.0},
             "longs": {}, "booleans": {}, "strings": {}}  # fmt: skip
    record = RawRecord(None, b"", "t", 0, 0, 0)
    columnar.tag([ValidFrame(record, frame), ValidFrame(record, {**frame, "seq": 2})])
    [(_, _, plans)] = columnar._plans.values()
    assert len(plans) == 1
