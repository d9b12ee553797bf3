"""The cluster form of the DDL (schemas/cluster.py), checked by the real ClickHouse engine.

No ClickHouse cluster runs here, so: every statement of the cluster form is parsed by the
engine (chDB in-process, `formatQuery`); and the cluster form minus what only a cluster
has (ON CLUSTER, Keeper paths, Distributed's remote shards) is run in the engine beside the
single-node DDL, so the columns of every local and every Distributed table can be compared
with the single-node table of the same name, and the materialized views can be fed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from schemas.cluster import SHARD_KEYS, ClusterDDLError, ClusterSchema, validate_cluster
from schemas.migrate import ddl, discover
from schemas.tables import TABLES

CLUSTER = "vdp_cluster"


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    from chdb import session

    s = session.Session()
    try:
        yield s
    finally:
        s.close()


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _rows(engine: Any, sql: str) -> list[list[str]]:
    out = engine.query(sql, "TSV").bytes().decode()
    return [line.split("\t") for line in out.splitlines()]


def single_replica(statement: str) -> str:
    """What a one-node, one-replica "cluster" runs: no ON CLUSTER, the engines without their
    Keeper path and replica name, and a Merge table over the local one where the cluster
    has a Distributed table (same columns, reads the local table). Test-only."""
    s = re.sub(r" ON CLUSTER '[^']+'", "", statement)
    s = re.sub(r"Replicated(\w*MergeTree)\('[^']*', '[^']*'(?:, )?", r"\1(", s)
    s = s.replace("replicated_deduplication_window", "non_replicated_deduplication_window")
    return re.sub(
        r"ENGINE = Distributed\('[^']+', '(\w+)', '(\w+)', .*\)$",
        r"ENGINE = Merge('\1', '^\2$')",
        s,
        flags=re.S,
    )


@pytest.fixture(scope="module")
def databases(engine: Any) -> tuple[str, str]:
    """`single`: today's DDL; `emulated`: the cluster form on one replica of one shard."""
    for statement in ddl("single"):
        engine.query(statement)
    for statement in ddl("emulated", cluster=CLUSTER):
        engine.query(single_replica(statement))
    return "single", "emulated"


def test_every_cluster_statement_is_parsed_by_the_engine(engine: Any) -> None:
    statements = ddl("vdp", cluster=CLUSTER)
    assert len(statements) > len(ddl("vdp"))
    for statement in statements:
        formatted = _rows(engine, f"SELECT formatQuery({_literal(statement)})")[0][0]
        assert f"ON CLUSTER {CLUSTER}" in formatted, statement[:120]


def _columns(engine: Any, database: str, table: str) -> list[list[str]]:
    return _rows(
        engine,
        "SELECT name, type, default_kind, default_expression, comment FROM system.columns "
        f"WHERE database = '{database}' AND table = '{table}' ORDER BY position",
    )


def _tables(engine: Any, database: str) -> dict[str, str]:
    return dict(
        (name, engine_name)
        for name, engine_name in _rows(
            engine, f"SELECT name, engine FROM system.tables WHERE database = '{database}'"
        )
    )


def test_local_and_distributed_tables_have_the_single_node_tables_columns(
    engine: Any, databases: tuple[str, str]
) -> None:
    single, emulated = databases
    tables = _tables(engine, single)
    merge_trees = [name for name, kind in tables.items() if kind.endswith("MergeTree")]
    assert {t.name for t in TABLES} <= set(merge_trees), "the table contract's tables"
    for name in merge_trees:
        if name == "schema_migrations":
            assert _columns(engine, emulated, name) == _columns(engine, single, name)
            continue
        want = _columns(engine, single, name)
        assert _columns(engine, emulated, f"{name}_local") == want, name
        assert _columns(engine, emulated, name) == want, f"{name} (Distributed)"
    views = [name for name, kind in tables.items() if "View" in kind]
    for name in views:
        assert _columns(engine, emulated, name) == _columns(engine, single, name), name


def test_materialized_views_run_per_shard_and_give_the_single_node_rollup(
    engine: Any, databases: tuple[str, str]
) -> None:
    rows = (
        "SELECT '', concat('VIN', toString(number % 3)), 'driving', signal, "
        "toDateTime64('2026-11-01 00:00:00', 3, 'UTC') + number, number, "
        "toFloat64(number), NULL, 0, 'personal', now64(3), 't', 0, number "
        "FROM numbers(300) ARRAY JOIN ['Vehicle.Speed', 'Vehicle.TraveledDistance'] AS signal"
    )
    single, emulated = databases
    columns = "owner_id, vin, category, signal, event_time, seq, value_num, value_str, " + (
        "quality, sensitivity, ingest_time, source_topic, source_partition, source_offset"
    )
    engine.query(f"INSERT INTO {single}.samples ({columns}) {rows}")
    # On a cluster the Distributed table hands each shard its rows; one shard gets all here.
    engine.query(f"INSERT INTO {emulated}.samples_local ({columns}) {rows}")
    view = (
        "SELECT vin, day, distance_km, max_speed_kmh FROM {}.daily_vehicle_stats_view ORDER BY vin"
    )
    got = _rows(engine, view.format(emulated))
    assert got == _rows(engine, view.format(single))
    assert len(got) == 3 and got[0][3] != "\\N"


def _cluster_ddl() -> str:
    return "\n".join(ddl("vdp", cluster=CLUSTER))


def test_every_table_is_replicated_with_a_distributed_table_sharded_by_its_key() -> None:
    text = _cluster_ddl()
    single = "\n".join(ddl("vdp"))
    names = re.findall(r"CREATE TABLE IF NOT EXISTS vdp\.(\w+)\s*\(", single)
    assert "samples" in names and "daily_vehicle_stats" in names
    for name in (n for n in names if n != "schema_migrations"):
        path = f"'/clickhouse/tables/{{shard}}/vdp/{name}_local', '{{replica}}'"
        assert re.search(
            rf"{name}_local ON CLUSTER .*?ENGINE = Replicated\w*MergeTree\({re.escape(path)}",
            text,
            re.S,
        ), name
        key = ", ".join(SHARD_KEYS.get(name, ("vin",)))
        distributed = (
            f"CREATE TABLE IF NOT EXISTS vdp.{name} ON CLUSTER '{CLUSTER}' AS vdp.{name}_local\n"
            f"ENGINE = Distributed('{CLUSTER}', 'vdp', '{name}_local', cityHash64({key}))"
        )
        assert distributed in text, name
    assert "cityHash64(vin)" in text.split("vdp.samples ON CLUSTER", 1)[1].split(";", 1)[0]


def test_insert_dedup_uses_the_replicated_engines_window_of_the_same_size() -> None:
    single = "\n".join(ddl("vdp"))
    cluster = _cluster_ddl()
    assert "non_replicated_deduplication_window" not in cluster
    want = re.findall(r"non_replicated_deduplication_window = (\d+)", single)
    assert want and re.findall(r"\breplicated_deduplication_window = (\d+)", cluster) == want


def test_views_read_local_tables_per_shard_and_plain_views_the_distributed_ones() -> None:
    text = _cluster_ddl()
    mv = text.split("vdp.daily_vehicle_stats_samples_mv", 1)[1].split("CREATE", 1)[0]
    assert "TO vdp.daily_vehicle_stats_local" in mv and "FROM vdp.samples_local" in mv
    view = text.split("vdp.daily_vehicle_stats_view", 1)[1]
    assert "FROM vdp.daily_vehicle_stats\n" in view


def test_column_changes_reach_the_distributed_table_and_the_rest_only_the_local_one() -> None:
    schema = ClusterSchema("db", "c")
    schema.statement("CREATE TABLE IF NOT EXISTS db.t (vin String) ENGINE = MergeTree ORDER BY vin")
    out = schema.statement(
        "ALTER TABLE db.t ADD COLUMN IF NOT EXISTS x Nullable(DateTime64(3, 'UTC')) "
        "COMMENT 'a, b' AFTER vin, MODIFY TTL toDate('2030-01-01')"
    )
    assert out[0].startswith("ALTER TABLE db.t_local ON CLUSTER 'c'") and "MODIFY TTL" in out[0]
    assert out[1].startswith("ALTER TABLE db.t ON CLUSTER 'c'")
    assert "ADD COLUMN IF NOT EXISTS x" in out[1] and "TTL" not in out[1]
    ttl_only = schema.statement("ALTER TABLE db.t MODIFY TTL toDate('2031-01-01')")
    assert len(ttl_only) == 1


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        ("DROP TABLE IF EXISTS db.t", "no cluster form"),
        ("CREATE TABLE IF NOT EXISTS db.m (a String) ENGINE = Memory", "MergeTree-family"),
        (
            "CREATE TABLE IF NOT EXISTS db.k (a String, b String) ENGINE = MergeTree ORDER BY a",
            "shard key",
        ),
        ("ALTER TABLE db.nosuch ADD COLUMN a String", "not a table"),
        (
            "CREATE TABLE IF NOT EXISTS other.t (vin String) ENGINE = MergeTree ORDER BY vin",
            "database",
        ),
    ],
)
def test_statements_without_a_cluster_form_are_refused(statement: str, reason: str) -> None:
    with pytest.raises(ClusterDDLError, match=reason):
        ClusterSchema("db", "c").statement(statement)


def test_cluster_names_that_are_not_plain_are_refused() -> None:
    assert validate_cluster("prod-cn_1") == "prod-cn_1"
    with pytest.raises(ClusterDDLError):
        validate_cluster("x' ON CLUSTER 'y")


def test_every_migration_file_has_a_cluster_form() -> None:
    # A new migration another change adds must come with its cluster rule.
    assert discover() and ddl("vdp", cluster=CLUSTER)
