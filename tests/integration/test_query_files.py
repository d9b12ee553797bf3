"""Exports and incident reports read back with standard readers match the stored rows."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow.parquet as pq
import pytest

from query.models import iso
from tests.conftest import ClickHouseEndpoint
from tests.integration.test_query_data import (
    END,
    SOLD,
    T0,
    T1,
    World,
    build_world,
    sample_rows,
)

RANGE = {"from": (T0 - timedelta(hours=1)).isoformat(), "to": END.isoformat()}
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture(scope="module")
def world(clickhouse_endpoint: ClickHouseEndpoint) -> Iterator[World]:
    yield from build_world(clickhouse_endpoint)


def _expected(owner: str, categories: set[str], start: datetime, end: datetime) -> list[tuple]:
    """What the owner may see, straight from the rows the world inserted."""
    rows = [
        (r[4], r[3], r[5], r[6])
        for r in sample_rows()
        if r[0] == owner
        and r[1] == SOLD
        and r[2] in categories
        and r[5] != 99_999
        and start <= r[4] < end  # type: ignore[operator]
    ]
    return sorted(rows, key=lambda r: (r[0], r[1], r[2]))


def _export(world: World, fmt: str, owner: str = "alice", **params: Any) -> bytes:
    response = world.client.get(
        f"/v1/vehicles/{SOLD}/export",
        headers=world.headers(owner, ["driving", "location"]),
        params=RANGE | {"format": fmt} | params,
    )
    assert response.status_code == 200, response.text
    assert "attachment" in response.headers["content-disposition"]
    return response.content


def _csv_time(text: str) -> datetime:
    assert ISO_TIME.fullmatch(text), text
    return datetime.fromisoformat(text)


def test_csv_export_matches_the_stored_rows(world: World) -> None:
    rows = list(csv.DictReader(io.StringIO(_export(world, "csv").decode())))
    got = [
        (_csv_time(r["event_time"]), r["signal"], int(r["seq"]), float(r["value_num"]))
        for r in rows
    ]
    assert got == _expected("alice", {"driving", "location"}, T0, T1)


def test_jsonl_export_matches_the_stored_rows(world: World) -> None:
    lines = _export(world, "jsonl", owner="bob").decode().splitlines()
    rows = [json.loads(line) for line in lines]
    got = [
        (datetime.fromisoformat(r["event_time"]), r["signal"], r["seq"], r["value_num"])
        for r in rows
    ]
    assert got == _expected("bob", {"driving", "location"}, T1, END)


def test_parquet_export_matches_the_stored_rows_across_windows(world: World) -> None:
    table = pq.read_table(io.BytesIO(_export(world, "parquet", category="driving")))
    got = [(r["event_time"], r["signal"], r["seq"], r["value_num"]) for r in table.to_pylist()]
    assert got == _expected("alice", {"driving"}, T0, T1)
    assert table.schema.field("event_time").type.tz == "UTC"


def test_export_of_an_empty_range_is_a_valid_empty_file(world: World) -> None:
    early = {"from": (T0 - timedelta(days=1)).isoformat(), "to": T0.isoformat()}
    assert pq.read_table(io.BytesIO(_export(world, "parquet", **early))).num_rows == 0
    assert _export(world, "csv", **early).decode().startswith('"event_time"')
    assert _export(world, "jsonl", **early) == b""


def test_an_export_reads_only_windows_that_hold_rows(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = world.app.state.services.repository
    windows: list[tuple[datetime, datetime]] = []
    original = repo.export_text

    def spy(scope: Any, fmt: str) -> Any:
        windows.append((scope.span.start, scope.span.end))
        return original(scope, fmt)

    monkeypatch.setattr(repo, "export_text", spy)
    monkeypatch.setattr(world.settings, "query_export_window_rows", 500)
    a_quarter = {"from": (T0 - timedelta(days=80)).isoformat(), "to": END.isoformat()}
    rows = list(csv.DictReader(io.StringIO(_export(world, "csv", **a_quarter).decode())))
    assert len(rows) == len(_expected("alice", {"driving", "location"}, T0, T1))
    # Alice's 2 hours hold 720 rows each (two signals every 10 s): a few windows of at most
    # 500 rows that cover them end to end, and no query at all for the 80 days before.
    assert windows[0][0] == T0 and windows[-1][1] == T1 and len(windows) <= 8
    assert all(a[1] == b[0] for a, b in zip(windows, windows[1:], strict=False))


def test_incident_report_is_a_zip_whose_digests_verify(world: World) -> None:
    at = T0 + timedelta(minutes=30)
    response = world.client.get(
        f"/v1/vehicles/{SOLD}/incident-report",
        headers=world.headers("alice", ["driving", "adas_camera", "vehicle_state", "diagnostics"]),
        params={"at": at.isoformat(), "before_minutes": 5, "after_minutes": 2},
    )
    assert response.status_code == 200, response.text
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    manifest_bytes = archive.read("manifest.json")
    assert hashlib.sha256(manifest_bytes).hexdigest() == response.headers["x-manifest-sha256"]
    manifest = json.loads(manifest_bytes)
    assert manifest["vin"] == SOLD and manifest["owner_id"] == "alice"
    assert manifest["not_allowed"] == []
    for entry in manifest["files"]:
        assert hashlib.sha256(archive.read(entry["name"])).hexdigest() == entry["sha256"]
    for line in archive.read("SHA256SUMS").decode().splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256(archive.read(name)).hexdigest() == digest
    rows = {e["name"]: e["rows"] for e in manifest["files"]}
    assert rows["samples/driving.csv"] == 7 * 6  # 7 minutes at one sample per 10 s
    assert rows["samples/vehicle_state.csv"] == 42 and rows["samples/adas_camera.csv"] == 0
    events = list(csv.DictReader(io.StringIO(archive.read("events.csv").decode())))
    assert [e["kind"] for e in events] == ["hard_braking"]
    assert "samples/location.csv" not in rows  # not in the token's scope


def _report(world: World, owner: str, at: datetime, cats: list[str] | None = None) -> Any:
    response = world.client.get(
        f"/v1/vehicles/{SOLD}/incident-report",
        headers=world.headers(owner, cats),
        params={"at": at.isoformat(), "before_minutes": 2, "after_minutes": 1},
    )
    assert response.status_code == 200, response.text
    return response


def test_a_complete_report_is_the_same_zip_byte_for_byte_when_asked_again(world: World) -> None:
    at = T0 + timedelta(minutes=30)
    first = _report(world, "alice", at)
    time.sleep(2.1)  # zip entry times have a 2-second resolution
    again = _report(world, "alice", at)
    assert first.content == again.content
    assert first.headers["x-report-complete"] == "true"
    assert "_partial" not in first.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(first.content))
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["complete"] is True and "generated_at" not in manifest
    # Every time in the report is written the one way the API writes times.
    events = list(csv.DictReader(io.StringIO(archive.read("events.csv").decode())))
    assert [(e["kind"], e["event_time"], e["end_time"]) for e in events] == [
        ("hard_braking", iso(at), iso(at + timedelta(seconds=2)))
    ]
    driving = list(csv.DictReader(io.StringIO(archive.read("samples/driving.csv").decode())))
    assert driving and all(ISO_TIME.fullmatch(r["event_time"]) for r in driving)
    assert all(ISO_TIME.fullmatch(manifest[k]) for k in ("at", "from", "to"))


def test_a_report_asked_before_its_window_is_over_is_marked_partial(world: World) -> None:
    now = datetime.now(UTC)
    early = _report(world, "bob", now - timedelta(seconds=20))  # bob owns the car now
    assert early.headers["x-report-complete"] == "false"
    assert early.headers["content-disposition"].endswith('_partial.zip"')
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(early.content)).read("manifest.json"))
    assert manifest["complete"] is False
    assert ISO_TIME.fullmatch(manifest["generated_at"])
    settle = timedelta(seconds=world.settings.query_report_settle_seconds)
    complete_from = datetime.fromisoformat(manifest["complete_from"])
    assert complete_from == datetime.fromisoformat(manifest["to"]) + settle


def test_incident_report_window_limit(world: World) -> None:
    response = world.client.get(
        f"/v1/vehicles/{SOLD}/incident-report",
        headers=world.headers("alice"),
        params={"at": T0.isoformat(), "before_minutes": 600},
    )
    assert response.status_code == 400
