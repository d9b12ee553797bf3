"""Consent at the sample's event time: defaults from the catalog, grants from their start to
their expiry, withdrawals, coarse location, a previous owner's decisions, deletion scopes."""

from __future__ import annotations

from typing import Any

from processors.batch.consent import ConsentBook, Rules, stored_incidents
from processors.batch.ownership import OwnershipBook
from processors.batch.records import RawRecord, ValidFrame
from processors.batch.tag import Tagger
from producers.sim.fleet import OwnershipPeriod, ownership_records
from schemas.catalog import load_catalog
from schemas.codec import consent_codec
from schemas.tables import INCIDENTS, NOT_COLLECTED, SAMPLES

VIN = "LRWABCDE0N1234567"
RAW = RawRecord(VIN.encode(), b"bytes", "telemetry.raw", 0, 1, 0)
LAT, LON = "Vehicle.CurrentLocation.Latitude", "Vehicle.CurrentLocation.Longitude"
HEADING = "Vehicle.CurrentLocation.Heading"
CABIN = "Vehicle.Cabin.HVAC.AmbientAirTemperature"
SPEED = "Vehicle.Speed"
SOLD = 100_000


def frame(seq: int, t: int) -> ValidFrame:
    doubles = {SPEED: 50.0, LAT: 31.234567, LON: 121.476543, HEADING: 90.0, CABIN: 21.0}
    record = {"vin": VIN, "seq": seq, "event_time": t, "doubles": doubles, "longs": {},
              "booleans": {}, "strings": {}}  # fmt: skip
    return ValidFrame(RAW, record)


def books(*decisions: dict[str, Any], deletions: tuple[dict[str, Any], ...] = ()) -> ConsentBook:
    ownership = OwnershipBook()
    timeline = [OwnershipPeriod("alice", "delivered", 0), OwnershipPeriod("bob", "sold", SOLD)]
    ownership.apply(ownership_records(VIN, timeline)[-1])
    consent = ConsentBook(Rules(load_catalog(), 0.01), ownership)
    event = {
        "vin": VIN,
        "recorded_at": 0,
        "decisions": list(decisions),
        "deletions": list(deletions),
    }
    # Through the wire format, as the reader gets it.
    consent.apply(consent_codec().decode(consent_codec().encode(event)))
    return consent


def grant(
    id: str, category: str, mode: str, start: int, end: int | None, owner: str = "alice"
) -> dict[str, Any]:
    return {"id": id, "owner_id": owner, "category": category, "mode": mode,
            "effective_from": start, "expires_at": end, "recorded_at": start}  # fmt: skip


def stored(consent: ConsentBook, times: list[int]) -> tuple[list[dict[str, Any]], list[Any]]:
    out = Tagger(load_catalog(), consent.ownership, consent).tag(
        [frame(i, t) for i, t in enumerate(times)]
    )
    samples = [dict(zip(SAMPLES.columns, r, strict=True)) for r in zip(*out.columns, strict=True)]
    counted = [dict(zip(NOT_COLLECTED.columns, r, strict=True))
               for r in zip(*out.not_collected, strict=True)]  # fmt: skip
    return samples, counted


def signals_at(samples: list[dict[str, Any]], t: int) -> set[str]:
    return {s["signal"] for s in samples if s["event_time"] == t}


def test_without_a_decision_only_the_categories_collected_by_default_are_stored() -> None:
    samples, counted = stored(books(), [1_000])
    assert signals_at(samples, 1_000) == {SPEED}
    assert {(c["category"], c["samples"]) for c in counted} == {("location", 3), ("cabin", 1)}
    assert {c["owner_id"] for c in counted} == {"alice"}


def test_a_precise_grant_stores_location_from_its_start_until_its_expiry() -> None:
    consent = books(grant("g1", "location", "precise", 10_000, 50_000))
    samples, counted = stored(consent, [9_999, 10_000, 49_999, 50_000])
    assert LAT not in signals_at(samples, 9_999)
    assert {LAT, LON, HEADING} <= signals_at(samples, 10_000)
    assert {LAT, LON, HEADING} <= signals_at(samples, 49_999)
    assert LAT not in signals_at(samples, 50_000)  # expired: back to the default
    refused = sorted(c["event_time"] for c in counted if c["category"] == "location")
    assert refused == [9_999, 50_000]


def test_a_coarse_grant_stores_the_position_rounded_and_drops_heading_and_altitude() -> None:
    samples, counted = stored(books(grant("g1", "location", "coarse", 0, 90_000)), [1_000])
    values = {s["signal"]: s["value_num"] for s in samples}
    assert values[LAT] == 31.23 and values[LON] == 121.48
    assert HEADING not in values
    assert not [c for c in counted if c["category"] == "location"]  # granted: not "refused"


def test_a_withdrawal_stops_collection_from_its_time() -> None:
    consent = books(
        grant("g1", "location", "precise", 0, 90_000), grant("w1", "location", "off", 20_000, None)
    )
    samples, _ = stored(consent, [19_999, 20_000])
    assert LAT in signals_at(samples, 19_999) and LAT not in signals_at(samples, 20_000)


def test_a_refusal_of_a_default_category_stops_it() -> None:
    samples, counted = stored(books(grant("r1", "driving", "off", 0, None)), [1_000])
    assert SPEED not in signals_at(samples, 1_000)
    assert ("driving", 1) in {(c["category"], c["samples"]) for c in counted}


def test_the_previous_owners_grant_does_not_apply_to_the_next_owner() -> None:
    consent = books(grant("g1", "location", "precise", 0, 200_000))
    samples, counted = stored(consent, [SOLD - 1, SOLD])
    assert LAT in signals_at(samples, SOLD - 1)
    assert LAT not in signals_at(samples, SOLD)
    assert {c["owner_id"] for c in counted if c["category"] == "location"} == {"bob"}


def test_a_deletion_scope_drops_its_samples_uncounted_and_a_replayed_event_keeps_it() -> None:
    scope = {"request_id": "d1", "owner_id": "alice", "categories": ["driving"],
             "time_from": 5_000, "time_to": 6_000, "requested_at": 7_000}  # fmt: skip
    consent = books(deletions=(scope,))
    consent.apply({"vin": VIN, "recorded_at": 8_000, "decisions": [], "deletions": [scope]})
    samples, counted = stored(consent, [4_999, 5_000, 5_999, 6_000])
    speeds = sorted(s["event_time"] for s in samples if s["signal"] == SPEED)
    assert speeds == [4_999, 6_000]
    assert not [c for c in counted if c["category"] == "driving"]


def test_with_no_known_owner_only_default_categories_are_stored() -> None:
    consent = ConsentBook(Rules(load_catalog(), 0.01), OwnershipBook())
    samples, counted = stored(consent, [1_000])
    assert signals_at(samples, 1_000) == {SPEED}
    assert {c["owner_id"] for c in counted} == {""}


def test_a_later_ownership_event_recuts_the_stretches() -> None:
    consent = books(grant("g1", "location", "precise", 0, 500_000))
    assert consent.policy(VIN, 200_000).owner == "bob"
    timeline = [OwnershipPeriod("alice", "delivered", 0), OwnershipPeriod("alice", "sold", SOLD)]
    consent.ownership.apply(ownership_records(VIN, timeline)[-1])
    assert consent.policy(VIN, 200_000).stores("location")  # alice again: her grant holds


def test_incidents_of_a_category_not_stored_at_their_time_are_left_out() -> None:
    consent = books(grant("r1", "driving", "off", 10_000, None))
    columns = INCIDENTS.empty()
    for t in (5_000, 15_000):
        row = {"owner_id": "alice", "vin": VIN, "category": "driving", "event_time": t}
        for column, name in zip(columns, INCIDENTS.columns, strict=True):
            column.append(row.get(name))
    kept = stored_incidents(columns, consent)
    assert kept[INCIDENTS.columns.index("event_time")] == [5_000]


def test_the_not_collected_counts_reach_the_metrics_by_category() -> None:
    from processors.batch.metrics import Metrics

    metrics = Metrics()
    _, counted = stored(books(), [1_000, 2_000])
    columns = [[row[c] for row in counted] for c in NOT_COLLECTED.columns]
    metrics.count_not_collected(columns)
    text = metrics.exposition().decode()
    assert 'vdp_process_samples_not_collected_total{category="location"} 6.0' in text
    assert 'vdp_process_samples_not_collected_total{category="cabin"} 2.0' in text
