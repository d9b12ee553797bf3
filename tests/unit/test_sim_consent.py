"""The simulator's consents: a realistic mix per owner, never a grant beyond a year, sent on
the consent topic before the frames they apply to, and the manifest counting what must be
stored and what must be counted as not collected."""

from __future__ import annotations

from collections import Counter
from typing import Any

from producers.publish.faults import FaultInjector
from producers.publish.manifest import ManifestBuilder
from producers.publish.run import Topics, publish_run
from producers.sim.fleet import DAY_MS, FleetConfig
from producers.sim.simulator import Simulator
from schemas.catalog import load_catalog, to_grid
from schemas.codec import consent_codec, telemetry_codec

CONFIG = FleetConfig(cars=200, hz=1, duration_s=30, seed=3, sold_share=0.2)


class ListSink:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    def send(self, topic: str, key: bytes, value: bytes, on_delivery: Any = None) -> None:
        self.sent.append((topic, key, value))
        if on_delivery is not None:
            on_delivery(None, 0, len(self.sent))

    def send_many(self, topic: str, messages: list[dict[str, bytes]]) -> None:
        for message in messages:
            self.send(topic, message["key"], message["value"])

    def send_now(self, topic: str, key: bytes, value: bytes, on_delivery: Any) -> None:
        self.send(topic, key, value, on_delivery)


class LaggingSink(ListSink):
    """Reports come only when polled, one per poll, as a broker's acknowledgements lag."""

    def __init__(self) -> None:
        super().__init__()
        self.unreported: list[Any] = []
        self.frames_sent_past_an_event = 0

    def send(self, topic: str, key: bytes, value: bytes, on_delivery: Any = None) -> None:
        if topic == "raw" and self.unreported:
            self.frames_sent_past_an_event += 1
        self.sent.append((topic, key, value))
        if topic != "raw":
            self.unreported.append(on_delivery)

    def poll(self, timeout: float = 0.0) -> None:
        if self.unreported and (report := self.unreported.pop(0)) is not None:
            report(None, 0, len(self.sent))


def test_frames_wait_until_the_sales_and_decisions_before_them_are_acknowledged() -> None:
    sim = Simulator(CONFIG)
    sink = LaggingSink()
    injector = FaultInjector(telemetry_codec(), load_catalog(), 0.0, 3)
    counts = publish_run(sim, sink, Topics("raw", "own", "consent"), injector)
    assert counts.ownership > 0 and counts.consent > 0 and counts.frames > 0
    assert sink.frames_sent_past_an_event == 0


def test_owners_get_a_realistic_mix_and_no_grant_beyond_a_year() -> None:
    sim = Simulator(CONFIG)
    decisions = [d for ds in sim.consents.values() for d in ds]
    location = Counter(d.mode for d in decisions if d.category == "location")
    assert location["precise"] > 40 and location["coarse"] > 30 and location["off"] > 3
    without = [v for v, ds in sim.consents.items() if not any(d.category == "location" for d in ds)]
    assert len(without) > 30
    for vin, ds in sim.consents.items():
        owners = {p.owner_id for p in sim.timelines[vin]}
        for d in ds:
            assert d.owner_id in owners
            if d.mode != "off":
                assert d.expires_at is not None
                assert 0 < d.expires_at - d.effective_from <= 365 * DAY_MS


def test_consent_events_go_out_before_the_frames_they_apply_to_and_the_manifest_follows() -> None:
    catalog = load_catalog()
    sim = Simulator(CONFIG)
    manifest = ManifestBuilder(catalog, sim.timelines, {}, consents=sim.consents)
    sink = ListSink()
    injector = FaultInjector(telemetry_codec(), catalog, 0.0, 3)
    publish_run(sim, sink, Topics("raw", "own", "consent"), injector, manifest)
    seen: dict[str, int] = {}
    for topic, key, value in sink.sent:
        if topic == "consent":
            event = consent_codec().decode(value)
            seen[key.decode()] = max(d["recorded_at"] for d in event["decisions"])
        elif topic == "raw":
            frame = telemetry_codec().decode(value)
            known = seen.get(frame["vin"], -1)
            later = [d for d in sim.consents[frame["vin"]] if d.recorded_at > known]
            assert all(d.recorded_at > frame["event_time"] for d in later)
    out = manifest.to_dict()
    assert out["consents"] == {"coarse_grid": 0.01}
    counted: Counter[str] = Counter()
    for car in out["cars"].values():
        for categories in car["not_collected"].values():
            counted.update(categories)
        for groups in car["by_owner"].values():
            assert groups  # an owner with nothing stored is not listed
    assert counted["location"] > 0 and counted["cabin"] > 0
    assert to_grid(31.234567, 0.01) == 31.23
