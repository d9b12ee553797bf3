"""The migrator's rules, on its pure helpers: no server, no socket."""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.catalog import load_catalog, parse_catalog
from schemas.cli import register
from schemas.migrate import (
    DEFAULT_RETENTION_DAYS,
    MIGRATIONS_DIR,
    Applied,
    Migration,
    MigrationError,
    checksum,
    discover,
    generate_ttl_migration,
    placeholders,
    plan,
    render,
    retention_days,
    split_statements,
    ttl_categories,
    ttl_drift,
    validate_identifier,
)
from schemas.tables import RETENTION_KEYS, TABLES
from tests.catalogs import with_towing
from vdp.settings import Settings


def write(directory: Path, name: str, text: str = "SELECT 1;\n") -> None:
    (directory / name).write_text(text)


def m(version: int, text: str = "SELECT 1;") -> Migration:
    return Migration(version, f"{version:03d}_x.sql", text)


def record(migration: Migration) -> Applied:
    return Applied(migration.version, migration.name, migration.checksum, "")


# --- files ---------------------------------------------------------------------------


def test_discover_orders_by_version_not_by_listing(tmp_path: Path) -> None:
    write(tmp_path, "010_later.sql")
    write(tmp_path, "002_second.sql")
    write(tmp_path, "001_first.sql")
    assert [x.name for x in discover(tmp_path)] == [
        "001_first.sql",
        "002_second.sql",
        "010_later.sql",
    ]


@pytest.mark.parametrize("name", ["1_short.sql", "001-dash.sql", "001_Upper.sql", "samples.sql"])
def test_discover_refuses_misnamed_files(tmp_path: Path, name: str) -> None:
    write(tmp_path, name)
    with pytest.raises(MigrationError, match="NNN_lower_snake"):
        discover(tmp_path)


def test_discover_refuses_two_files_with_one_version(tmp_path: Path) -> None:
    write(tmp_path, "001_a.sql")
    write(tmp_path, "001_b.sql")
    with pytest.raises(MigrationError, match="same version 001"):
        discover(tmp_path)


def test_shipped_files_are_numbered_from_one_without_gaps() -> None:
    versions = [x.version for x in discover()]
    assert versions == list(range(1, len(versions) + 1))
    assert discover()[0].name == "001_samples.sql"


def test_every_shipped_statement_is_idempotent_and_fills_every_placeholder() -> None:
    # Two migrators racing, or a run that died half way through a file, rely on this.
    values = placeholders("vdp")
    for migration in discover():
        statements = split_statements(migration.text)
        assert statements, migration.name
        for statement in statements:
            code = "\n".join(
                line for line in statement.splitlines() if not line.lstrip().startswith("--")
            )
            creates = re.match(r"\s*CREATE (TABLE|MATERIALIZED VIEW|VIEW) IF NOT EXISTS", code)
            # A column added later: idempotent when every ADD COLUMN says IF NOT EXISTS.
            adds = re.match(r"\s*ALTER TABLE \S+\s+ADD COLUMN", code) and len(
                re.findall(r"ADD COLUMN", code)
            ) == len(re.findall(r"ADD COLUMN IF NOT EXISTS", code))
            # New codecs for existing columns: setting a codec again is a no-op.
            operations = re.split(r",\s*\n", code.split("\n", 1)[-1].strip())
            codecs = re.match(r"\s*ALTER TABLE \S+\s+MODIFY COLUMN", code) and all(
                re.fullmatch(r"MODIFY COLUMN \w+ CODEC\([\w(), ]+\)", op.strip())
                for op in operations
            )
            assert creates or adds or codecs, (migration.name, code[:80])
            assert "{database}." in code, "every name qualified: the client may sit elsewhere"
            rendered = render(statement, values)
            assert not re.search(r"\{[a-z_]+\}", rendered)


# --- statement splitting -------------------------------------------------------------


def test_split_on_semicolon_at_line_end_only() -> None:
    text = "CREATE TABLE a (x String DEFAULT ';') ENGINE = Log;\nSELECT 'a;b'  ;  \n\nSELECT 2;"
    assert split_statements(text) == [
        "CREATE TABLE a (x String DEFAULT ';') ENGINE = Log",
        "SELECT 'a;b'",
        "SELECT 2",
    ]


def test_split_keeps_a_last_statement_without_semicolon_and_handles_crlf() -> None:
    assert split_statements("SELECT 1;\r\nSELECT 2\r\n") == ["SELECT 1", "SELECT 2"]


def test_split_drops_comment_only_chunks_and_comment_lines_never_end_a_statement() -> None:
    text = "-- header;\n-- more\nCREATE TABLE t\n-- why: a note;\n(x UInt8) ENGINE = Log;\n-- end\n"
    assert split_statements(text) == [
        "-- header;\n-- more\nCREATE TABLE t\n-- why: a note;\n(x UInt8) ENGINE = Log"
    ]


@given(st.lists(st.from_regex(r"SELECT [a-z0-9 ']{0,20}", fullmatch=True), max_size=6))
def test_split_inverts_joining_statements_one_per_line(statements: list[str]) -> None:
    text = "".join(f"{s};\n" for s in statements)
    assert split_statements(text) == [s.strip() for s in statements]


# --- placeholders and identifiers ----------------------------------------------------


@pytest.mark.parametrize("name", ["vdp", "_x", "t_0123abc", "A9"])
def test_plain_identifiers_are_accepted(name: str) -> None:
    assert validate_identifier(name) == name


@pytest.mark.parametrize("name", ["", "9vdp", "vdp-prod", "vdp.x", "a b", "x;DROP", "`x`", "é"])
def test_anything_else_is_refused_as_a_database_name(name: str) -> None:
    with pytest.raises(MigrationError, match="invalid database name"):
        validate_identifier(name)


def test_placeholders_fill_database_and_retention_with_defaults_and_overrides() -> None:
    values = placeholders("vdp", {"location": 7})
    assert values["database"] == "vdp"
    assert values["retention_location_days"] == "7"
    assert values["retention_cabin_days"] == "30"
    # The fallback for an unlisted category is the longest category retention, and the
    # operational tables (dead letters, access log) do not count as categories.
    assert values["retention_default_days"] == str(DEFAULT_RETENTION_DAYS["diagnostics"])


def test_location_and_cabin_keep_the_shortest_default_retention() -> None:
    sensitive = ("location", "cabin")
    others = ("driving", "battery_charging", "diagnostics", "adas_camera", "vehicle_state")
    shortest_other = min(DEFAULT_RETENTION_DAYS[k] for k in others)
    assert all(DEFAULT_RETENTION_DAYS[k] < shortest_other for k in sensitive)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"locaton": 30}, "unknown retention key"),
        ({"location": 0}, "positive"),
        ({"location": -1}, "positive"),
        ({"location": True}, "positive"),
        ({"location": "30"}, "positive"),
    ],
)
def test_bad_retention_is_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(MigrationError, match=message):
        retention_days(overrides)  # type: ignore[arg-type]


def test_render_fills_known_names_and_leaves_query_parameters_alone() -> None:
    text = "SELECT * FROM {database}.t WHERE vin = {vin:String} AND m = map('a', 1)"
    assert render(text, {"database": "vdp"}) == (
        "SELECT * FROM vdp.t WHERE vin = {vin:String} AND m = map('a', 1)"
    )


def test_render_refuses_an_unknown_placeholder() -> None:
    with pytest.raises(MigrationError, match=r"\{retention_lcoation_days\}"):
        render("TTL x + {retention_lcoation_days}", placeholders("vdp"))


# --- checksums and the plan ----------------------------------------------------------


def test_checksum_ignores_line_ending_style_but_nothing_else() -> None:
    assert checksum("a\r\nb\r\n") == checksum("a\nb\n")
    assert checksum("a\nb\n") != checksum("a\nb \n")


def test_plan_returns_the_unapplied_files_in_order() -> None:
    files = [m(1), m(2), m(3)]
    assert plan(files, {}) == files
    assert plan(files, {1: record(files[0])}) == files[1:]
    assert plan(files, {v: record(f) for v, f in zip((1, 2, 3), files, strict=True)}) == []


def test_plan_refuses_a_file_edited_after_it_was_applied() -> None:
    applied = {1: record(m(1, "SELECT 1;"))}
    with pytest.raises(MigrationError, match="001_x.sql changed after it was applied"):
        plan([m(1, "SELECT 2;")], applied)


def test_plan_refuses_a_history_the_files_do_not_know() -> None:
    with pytest.raises(MigrationError, match="not among the files"):
        plan([m(1)], {1: record(m(1)), 2: record(m(2))})


def test_plan_refuses_a_new_file_numbered_below_an_applied_one() -> None:
    with pytest.raises(MigrationError, match="give it a higher number"):
        plan([m(1), m(2), m(3)], {1: record(m(1)), 3: record(m(3))})


# --- the command ---------------------------------------------------------------------


def test_vdp_migrate_parses_dry_run() -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["migrate", "--dry-run"])
    assert args.dry_run is True
    assert callable(args.handler)
    assert parser.parse_args(["migrate"]).dry_run is False


def test_retention_overrides_come_from_one_json_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VDP_RETENTION_DAYS", '{"cabin": 7}')
    overrides = Settings().retention_days
    assert overrides == {"cabin": 7}
    assert placeholders("vdp", overrides)["retention_cabin_days"] == "7"
    assert DEFAULT_RETENTION_DAYS["cabin"] == 30


def test_retention_keys_are_the_catalog_categories_and_the_operational_tables() -> None:
    catalog = load_catalog()
    assert set(DEFAULT_RETENTION_DAYS) == {*catalog.categories, *RETENTION_KEYS}
    for name, category in catalog.categories.items():
        assert DEFAULT_RETENTION_DAYS[name] == category.retention_days


def test_the_ttls_in_the_ddl_list_exactly_the_catalog_categories() -> None:
    listed = ttl_categories(discover())
    per_category = [t.name for t in TABLES if t.by_category]
    assert {"samples", "incidents"} <= set(per_category)
    for table in per_category:
        assert set(listed[table]) == set(load_catalog().categories), table
    assert ttl_drift(discover()) == []


def test_a_new_category_needs_a_generated_ttl_migration(tmp_path: Path) -> None:
    shutil.copytree(MIGRATIONS_DIR, tmp_path / "ddl")
    catalog = parse_catalog(with_towing())
    per_category = [t.name for t in TABLES if t.by_category]
    assert ttl_drift(discover(tmp_path / "ddl"), catalog) == per_category
    path = generate_ttl_migration(tmp_path / "ddl", catalog)
    assert path is not None and path.name.endswith("_category_retention.sql")
    migrations = discover(tmp_path / "ddl")
    assert migrations[-1].name == path.name
    assert ttl_drift(migrations, catalog) == []
    assert "towing" in ttl_categories(migrations)["samples"]
    assert all("towing" in ttl_categories(migrations)[table] for table in per_category)
    assert generate_ttl_migration(tmp_path / "ddl", catalog) is None  # nothing left to do
    days = {**DEFAULT_RETENTION_DAYS, "towing": 60}
    values = placeholders("vdp", None) | {"retention_towing_days": str(days["towing"])}
    for statement in split_statements(path.read_text()):
        assert "{" not in render(statement, values)
