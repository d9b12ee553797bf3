"""`vdp migrate` against the real engine: the DDL runs, keys are as designed, duplicates
collapse, the daily materialized view adds up, and the analysts' README queries run."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from schemas.migrate import MIGRATIONS_DIR, MigrationError, discover, migrate
from tests.conftest import ClickHouseEndpoint

VIN = "WVWZZZ1JZXW000001"
OWNER = "owner-1"
# Recent enough that no TTL has expired (location keeps 90 days).
DAY = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(
    days=2
)
SAMPLE_COLUMNS = [
    "owner_id", "vin", "category", "signal", "event_time", "seq", "value_num", "value_str",
    "quality", "sensitivity", "source_topic", "source_partition", "source_offset",
]  # fmt: skip
SYNC = {"async_insert": 0}  # the sink's setting: dedup tokens are unreliable with async inserts


def at(seconds: float) -> dt.datetime:
    return DAY + dt.timedelta(seconds=seconds)


def sample(
    signal: str, seconds: float, seq: int, value: float, owner: str = OWNER, quality: int = 0
) -> list[object]:
    category = {
        "Vehicle.Speed": "driving",
        "Vehicle.TraveledDistance": "vehicle_state",
        "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current": "battery_charging",
        "Vehicle.Powertrain.TractionBattery.Charging.IsCharging": "battery_charging",
        "Vehicle.CurrentLocation.Latitude": "location",
    }[signal]
    return [
        owner, VIN, category, signal, at(seconds), seq, value, None,
        quality, "personal", "telemetry.raw", 0, seq,
    ]  # fmt: skip


@pytest.fixture
def migrated(clickhouse_client: Client, clickhouse_db: str) -> Client:
    migrate(clickhouse_client, clickhouse_db)
    return clickhouse_client


@pytest.fixture
def fresh_db_name(clickhouse_endpoint: ClickHouseEndpoint) -> Iterator[str]:
    """A database name nobody created yet; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    admin = clickhouse_endpoint.client()
    admin.command(f"DROP DATABASE IF EXISTS {name}")
    admin.close()


def test_migrate_creates_the_database_applies_every_file_then_nothing(
    clickhouse_endpoint: ClickHouseEndpoint, fresh_db_name: str
) -> None:
    client = clickhouse_endpoint.client()
    every_file = [m.name for m in discover()]

    assert migrate(client, fresh_db_name, dry_run=True) == every_file
    assert not client.command(
        "SELECT count() FROM system.databases WHERE name = {d:String}",
        parameters={"d": fresh_db_name},
    ), "a dry run changes nothing"

    assert migrate(client, fresh_db_name) == every_file
    assert migrate(client, fresh_db_name) == []
    recorded = client.query(f"SELECT version FROM {fresh_db_name}.schema_migrations FINAL")
    assert sorted(r[0] for r in recorded.result_rows) == [m.version for m in discover()]


def test_two_migrators_racing_both_succeed_and_leave_one_schema(
    clickhouse_endpoint: ClickHouseEndpoint, fresh_db_name: str
) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        client = clickhouse_endpoint.client()
        try:
            migrate(client, fresh_db_name)
        except BaseException as e:  # noqa: BLE001 (reported by the assertion below)
            errors.append(e)
        finally:
            client.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert migrate(clickhouse_endpoint.client(), fresh_db_name) == []


def test_tables_have_the_designed_engines_keys_and_partitions(migrated: Client) -> None:
    rows = migrated.query(
        "SELECT name, engine, sorting_key, partition_key FROM system.tables "
        "WHERE database = currentDatabase()"
    ).result_rows
    tables = {name: (engine, key, part) for name, engine, key, part in rows}
    assert tables["samples"] == (
        "ReplacingMergeTree",
        "vin, category, signal, event_time, seq",
        "toYYYYMM(event_time)",
    )
    assert tables["incidents"] == (
        "ReplacingMergeTree",
        "vin, category, kind, event_time",
        "toYYYYMM(event_time)",
    )
    assert tables["ownership_intervals"][:2] == ("ReplacingMergeTree", "vin, valid_from")
    assert tables["dead_letters"][:2] == (
        "ReplacingMergeTree",
        "reason, received_time, source_topic, source_partition, source_offset, signal",
    )
    assert tables["daily_vehicle_stats"] == ("AggregatingMergeTree", "vin, day", "toYYYYMM(day)")
    assert tables["query_access_log"][:2] == ("MergeTree", "owner_id, at")
    assert tables["daily_vehicle_stats_samples_mv"][0] == "MaterializedView"
    assert tables["daily_vehicle_stats_incidents_mv"][0] == "MaterializedView"
    assert tables["daily_vehicle_stats_view"][0] == "View"


def test_samples_ttl_is_per_category_with_the_configured_days(
    clickhouse_client: Client, clickhouse_db: str
) -> None:
    migrate(clickhouse_client, clickhouse_db, {"location": 7, "cabin": 3})
    ddl = clickhouse_client.query(
        "SELECT engine_full FROM system.tables WHERE database = currentDatabase() "
        "AND name = 'samples'"
    ).result_rows[0][0]
    assert "category = 'location', 7" in ddl
    assert "category = 'cabin', 3" in ddl
    assert "category = 'driving', 365" in ddl
    assert "'vehicle_state', 365, 730)" in ddl, "an unlisted category keeps the longest"
    assert "non_replicated_deduplication_window = 10000" in ddl


def test_unowned_samples_are_storable(migrated: Client) -> None:
    migrated.insert(
        "samples", [sample("Vehicle.Speed", 1, 1, 50.0, owner="")], SAMPLE_COLUMNS, settings=SYNC
    )
    assert migrated.command("SELECT count() FROM samples WHERE owner_id = ''") == 1


def test_a_replayed_sample_collapses_to_one_row_with_the_newest_owner_tag(
    migrated: Client,
) -> None:
    # A replay after a crash cuts batches differently (no token match) and, with a late
    # ownership event, may tag another owner: the key still identifies the sample.
    first = sample("Vehicle.Speed", 1, 7, 50.0, owner="")
    replay = sample("Vehicle.Speed", 1, 7, 50.0, owner=OWNER)
    other = sample("Vehicle.Speed", 2, 8, 51.0)
    migrated.insert("samples", [first], SAMPLE_COLUMNS, settings=SYNC)
    migrated.insert("samples", [replay, other], SAMPLE_COLUMNS, settings=SYNC)

    assert migrated.command("SELECT count() FROM samples") == 3  # before any merge
    rows = migrated.query("SELECT seq, owner_id FROM samples FINAL ORDER BY seq").result_rows
    assert rows == [(7, OWNER), (8, OWNER)]


def test_a_retried_insert_with_the_same_dedup_token_is_dropped_views_included(
    migrated: Client,
) -> None:
    batch = [sample("Vehicle.Speed", i, i, 40.0 + i) for i in range(1, 6)]
    token = {**SYNC, "insert_deduplication_token": "telemetry.raw-0-1-5"}
    migrated.insert("samples", batch, SAMPLE_COLUMNS, settings=token)
    # The retry carries the token, not the same bytes: rebuilt rows may differ (here a
    # value) and are still dropped, in the table and in the view fed from it.
    retry = [sample("Vehicle.Speed", i, i, 200.0 + i) for i in range(1, 6)]
    migrated.insert("samples", retry, SAMPLE_COLUMNS, settings=token)
    assert migrated.command("SELECT count() FROM samples") == 5  # no FINAL: no part written
    assert migrated.command("SELECT max(max_speed_kmh) FROM daily_vehicle_stats_view") == 45.0

    next_token = {**SYNC, "insert_deduplication_token": "telemetry.raw-0-6-6"}
    migrated.insert(
        "samples", [sample("Vehicle.Speed", 6, 6, 46.0)], SAMPLE_COLUMNS, settings=next_token
    )
    assert migrated.command("SELECT count() FROM samples") == 6
    assert migrated.command("SELECT max(max_speed_kmh) FROM daily_vehicle_stats_view") == 46.0


def _fill_one_day(client: Client) -> None:
    rows = [
        sample("Vehicle.TraveledDistance", 60, 1, 1000.0),
        sample("Vehicle.TraveledDistance", 3600, 2, 1042.5),
        sample("Vehicle.TraveledDistance", 1800, 3, 1020.0),
        sample("Vehicle.Speed", 600, 4, 88.0),
        sample("Vehicle.Speed", 700, 5, 121.5),
        sample("Vehicle.Powertrain.TractionBattery.StateOfCharge.Current", 60, 6, 80.0),
        sample("Vehicle.Powertrain.TractionBattery.StateOfCharge.Current", 3600, 7, 65.0),
        sample("Vehicle.Powertrain.TractionBattery.StateOfCharge.Current", 1800, 8, 60.0),
        # Charging in two distinct minutes (two readings in the first one).
        sample("Vehicle.Powertrain.TractionBattery.Charging.IsCharging", 7200, 9, 1.0),
        sample("Vehicle.Powertrain.TractionBattery.Charging.IsCharging", 7230, 10, 1.0),
        sample("Vehicle.Powertrain.TractionBattery.Charging.IsCharging", 7260, 11, 1.0),
        sample("Vehicle.Powertrain.TractionBattery.Charging.IsCharging", 7320, 12, 0.0),
        sample("Vehicle.CurrentLocation.Latitude", 60, 13, 31.2),
    ]
    client.insert("samples", rows, SAMPLE_COLUMNS, settings=SYNC)
    # The same rows again, in another batch without a token: the view sees them twice.
    client.insert("samples", rows[:6], SAMPLE_COLUMNS, settings=SYNC)
    incidents = [
        [OWNER, VIN, "driving", "hard_braking", at(650), 4, -7.5, ""],
        [OWNER, VIN, "driving", "hard_braking", at(2000), 9, -6.1, ""],
        [OWNER, VIN, "driving", "abs", at(650), 4, 1.0, ""],
    ]
    columns = ["owner_id", "vin", "category", "kind", "event_time", "seq", "value", "detail"]
    client.insert("incidents", incidents, columns, settings=SYNC)
    client.insert("incidents", incidents[:1], columns, settings=SYNC)


def test_daily_vehicle_stats_add_up_and_ignore_reinserted_rows(migrated: Client) -> None:
    _fill_one_day(migrated)
    rows = migrated.query(
        "SELECT vin, day, distance_km, max_speed_kmh, soc_first_pct, soc_last_pct, "
        "soc_min_pct, soc_used_pct, charging_minutes, hard_brakes, incidents "
        "FROM daily_vehicle_stats_view"
    ).result_rows
    assert rows == [(VIN, DAY.date(), 42.5, 121.5, 80.0, 65.0, 60.0, 15.0, 2, 2, 3)]


def test_a_migration_file_changed_after_it_was_applied_is_refused(
    clickhouse_client: Client, clickhouse_db: str, tmp_path: Path
) -> None:
    directory = tmp_path / "clickhouse"
    shutil.copytree(MIGRATIONS_DIR, directory)
    migrate(clickhouse_client, clickhouse_db, directory=directory)

    edited = directory / "002_ownership_intervals.sql"
    edited.write_text(edited.read_text().replace("kind ", "kind_of_event "))
    with pytest.raises(MigrationError, match="002_ownership_intervals.sql changed"):
        migrate(clickhouse_client, clickhouse_db, directory=directory)


def test_a_store_with_rows_takes_the_source_offset_codec_and_keeps_every_value(
    clickhouse_client: Client, clickhouse_db: str, tmp_path: Path
) -> None:
    """A store migrated before 012 runs it with rows in place: the codec changes, and every
    row reads back the same once a merge rewrote the old parts with it."""
    directory = tmp_path / "clickhouse"
    shutil.copytree(MIGRATIONS_DIR, directory)
    later = directory / "012_source_offset_codec.sql"
    text = later.read_text()
    later.unlink()
    migrate(clickhouse_client, clickhouse_db, directory=directory)

    def codec() -> str:
        return str(
            clickhouse_client.command(
                "SELECT compression_codec FROM system.columns WHERE database = currentDatabase() "
                "AND table = 'samples' AND name = 'source_offset'"
            )
        )

    assert codec() == "CODEC(Delta(8), ZSTD(3))"
    rows = [sample("Vehicle.Speed", i * 0.1, i, 50.0 + i / 7) for i in range(3_000)]
    for i, row in enumerate(rows):
        row[-1] = 10_000_000 + i * 17 + i % 5  # offsets climbing by nearly equal steps
    for start in (0, 1_000, 2_000):  # three parts, written with the old codec
        part = rows[start : start + 1_000]
        clickhouse_client.insert("samples", part, SAMPLE_COLUMNS, settings=SYNC)

    later.write_text(text)
    assert migrate(clickhouse_client, clickhouse_db, directory=directory) == [later.name]
    assert codec() == "CODEC(DoubleDelta, ZSTD(3))"
    clickhouse_client.command("OPTIMIZE TABLE samples FINAL")
    stored = clickhouse_client.query(
        "SELECT seq, value_num, source_offset FROM samples ORDER BY seq"
    ).result_rows
    assert stored == [(row[5], row[6], row[-1]) for row in rows]


# The "Analyst queries" of the README, verbatim, with the parameters they take.
def _readme_analyst_queries() -> dict[str, str]:
    """The analyst queries as the README shows them, by the name on their first line."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = re.findall(r"```sql\n-- (\w+): [^\n]*\n(.*?)```", readme, flags=re.S)
    return {name: sql for name, sql in blocks}


ANALYST_QUERIES: dict[str, str] = _readme_analyst_queries()


def test_readme_analyst_queries_run_and_answer(migrated: Client) -> None:
    _fill_one_day(migrated)
    migrated.insert(
        "samples",
        [sample("Vehicle.Speed", 900, 20, 240.0, quality=1)],
        SAMPLE_COLUMNS,
        settings=SYNC,
    )
    now = dt.datetime.now(dt.UTC)
    migrated.insert(
        "dead_letters",
        [
            [now, "bad_magic", "not single-object Avro", "telemetry.raw", 0, 1, VIN, b"\x00"],
            [now, "bad_magic", "not single-object Avro", "telemetry.raw", 0, 2, VIN, b"\x01"],
            [now, "out_of_range", "Vehicle.Speed 900 > 250", "telemetry.raw", 1, 5, VIN, b"x"],
        ],
        [
            "received_time", "reason", "detail", "source_topic", "source_partition",
            "source_offset", "vin", "original",
        ],
        settings=SYNC,
    )  # fmt: skip
    before, transfer = DAY - dt.timedelta(days=400), DAY - dt.timedelta(days=10)
    open_end = dt.datetime(2299, 12, 31, tzinfo=dt.UTC)
    migrated.insert(
        "ownership_intervals",
        [
            [VIN, "owner-0", "delivery", before, transfer, 0, 1],
            [VIN, OWNER, "transfer", transfer, open_end, 0, 2],
        ],
        ["vin", "owner_id", "kind", "valid_from", "valid_to", "event_partition", "event_offset"],
        settings=SYNC,
    )

    def run(name: str, **params: object) -> list[tuple[object, ...]]:
        return [
            tuple(r) for r in migrated.query(ANALYST_QUERIES[name], parameters=params).result_rows
        ]

    speed = run("speed", vin=VIN, owner=OWNER, **{"from": at(0), "to": at(3600)})
    assert [(r[1], r[2]) for r in speed] == [(88.0, 88.0), (121.5, 121.5), (240.0, 240.0)]
    assert run("daily", vin=VIN)[0][:3] == (DAY.date(), 42.5, 240.0)
    assert run("fleet", day=DAY.date())[0][:2] == (VIN, 42.5)
    assert [(r[0], r[1]) for r in run("dlq")] == [("bad_magic", 2), ("out_of_range", 1)]
    assert run("owner_at", vin=VIN, at=DAY)[0][:2] == (OWNER, "transfer")
    assert run("quality", vin=VIN)[0][:2] == ("Vehicle.Speed", 1)
