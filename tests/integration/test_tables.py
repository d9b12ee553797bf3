"""The table contract (`schemas/tables.py`) against the live tables the migrations create:
the columns code writes exist, the ones it leaves out have defaults, the open-interval end
is the DDL's, and the per-category TTLs are the catalog's retention."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from schemas.catalog import load_catalog, parse_catalog
from schemas.migrate import (
    DEFAULT_RETENTION_DAYS,
    MIGRATIONS_DIR,
    generate_ttl_migration,
    migrate,
    placeholders,
    render,
    split_statements,
)
from schemas.tables import OPEN_END, OWNERSHIP_INTERVALS, TABLES, Table
from tests.catalogs import with_towing


@pytest.fixture
def migrated(clickhouse_client: Client, clickhouse_db: str) -> Client:
    migrate(clickhouse_client, clickhouse_db)
    return clickhouse_client


def _columns(client: Client, database: str, table: str) -> dict[str, str]:
    rows = client.query(
        "SELECT name, default_kind FROM system.columns WHERE database = {db:String} "
        "AND table = {t:String}",
        parameters={"db": database, "t": table},
    ).result_rows
    return dict(rows)


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_the_contract_names_live_columns_and_the_rest_have_defaults(
    migrated: Client, clickhouse_db: str, table: Table
) -> None:
    live = _columns(migrated, clickhouse_db, table.name)
    assert live, f"{table.name} does not exist"
    assert set(table.columns) <= set(live), set(table.columns) - set(live)
    left_out = {name: kind for name, kind in live.items() if name not in table.columns}
    assert all(kind for kind in left_out.values()), left_out


def test_an_open_interval_ends_where_the_ddl_default_ends_it(
    migrated: Client, clickhouse_db: str
) -> None:
    columns = [c for c in OWNERSHIP_INTERVALS.columns if c != "valid_to"]
    row = {"vin": "V", "owner_id": "o", "kind": "delivery", "valid_from": 0}
    row |= {"event_partition": 0, "event_offset": 1}
    migrated.insert(
        f"{clickhouse_db}.{OWNERSHIP_INTERVALS.name}",
        [[row[c] for c in columns]],
        column_names=columns,
        settings={"async_insert": 0},
    )
    [(valid_to,)] = migrated.query(
        f"SELECT valid_to FROM {clickhouse_db}.ownership_intervals"  # noqa: S608
    ).result_rows
    assert valid_to.replace(tzinfo=OPEN_END.tzinfo) == OPEN_END


def _ttl(client: Client, database: str, table: str) -> str:
    [(query,)] = client.query(
        "SELECT create_table_query FROM system.tables WHERE database = {db:String} "
        "AND name = {t:String}",
        parameters={"db": database, "t": table},
    ).result_rows
    return str(query).split(" TTL ", 1)[1]


@pytest.mark.parametrize("table", [t for t in TABLES if t.by_category], ids=lambda t: t.name)
def test_each_category_is_kept_as_long_as_the_catalog_says(
    migrated: Client, clickhouse_db: str, table: Table
) -> None:
    ttl = _ttl(migrated, clickhouse_db, table.name)
    for name, category in load_catalog().categories.items():
        assert f"category = '{name}', {category.retention_days}" in ttl, (name, ttl)


def test_a_generated_ttl_migration_runs_on_the_engine(
    migrated: Client, clickhouse_db: str, tmp_path: Path
) -> None:
    shutil.copytree(MIGRATIONS_DIR, tmp_path / "ddl")
    path = generate_ttl_migration(tmp_path / "ddl", parse_catalog(with_towing()))
    assert path is not None
    values = placeholders(clickhouse_db) | {"retention_towing_days": "60"}
    for statement in split_statements(path.read_text()):
        migrated.command(render(statement, values))
    for table in ("samples", "incidents"):
        ttl = _ttl(migrated, clickhouse_db, table)
        assert "category = 'towing', 60" in ttl
        assert f"category = 'cabin', {DEFAULT_RETENTION_DAYS['cabin']}" in ttl
