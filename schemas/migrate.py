"""`vdp migrate`: apply the versioned ClickHouse DDL in `schemas/clickhouse/` in order.

Each `NNN_name.sql` file is applied once per database and recorded, with a checksum of
its text, in `<database>.schema_migrations`. A file whose text changed after it was
applied is refused: the database would no longer match the file, so the change belongs in
a new, higher-numbered file. Every statement in the files is idempotent (`IF NOT EXISTS`),
so two migrators racing on the same database both succeed and the schema ends the same;
a second run finds everything recorded and applies nothing.

The pure helpers (`discover`, `split_statements`, `render`, …) hold the rules and are
unit-tested without a server; `migrate` only wires them to a client.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from schemas.catalog import Catalog, load_catalog
from schemas.cluster import cluster_migrations, database_ddl, unsharded
from schemas.tables import RETENTION_KEYS, TABLES
from vdp.clickhouse import clickhouse_client
from vdp.errors import ConfigurationError, TransientError
from vdp.settings import Settings

log = logging.getLogger("vdp.migrate")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "clickhouse"


def default_retention_days(catalog: Catalog | None = None) -> dict[str, int]:
    """Days each kind of data is kept (the TTLs): every catalog category's, then the two
    operational tables that hold personal data too (`VDP_RETENTION_DAYS` overrides)."""
    categories = (catalog or load_catalog()).categories
    days = {name: category.retention_days for name, category in categories.items()}
    for key, table in RETENTION_KEYS.items():
        assert table.retention_days is not None
        days[key] = table.retention_days
    return days


DEFAULT_RETENTION_DAYS: dict[str, int] = default_retention_days()

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FILE_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
# `{name}` only: ClickHouse query parameters (`{name:Type}`) and other braces pass through.
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
# A statement ends at a `;` that ends a line (outside a `--` comment line).
_STATEMENT_END = re.compile(r";[ \t]*$")

_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS {database}.schema_migrations
(
    version    UInt32,
    name       String,
    checksum   String COMMENT 'sha256 of the file as written, placeholders unfilled',
    rendered_checksum String COMMENT 'sha256 of the statements as run, retention filled in',
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version
"""


class MigrationError(ConfigurationError):
    """The database's schema history and the migration files disagree, or a file is bad."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str  # the file name, e.g. "001_samples.sql"
    text: str

    @property
    def checksum(self) -> str:
        return checksum(self.text)


@dataclass(frozen=True)
class Applied:
    version: int
    name: str
    checksum: str
    rendered_checksum: str


def checksum(text: str) -> str:
    """sha256 of a file's text; line endings normalized so a Windows checkout matches."""
    return hashlib.sha256(text.replace("\r\n", "\n").encode()).hexdigest()


def validate_identifier(name: str) -> str:
    """`name` if it is a plain ClickHouse identifier, else MigrationError.

    The database name is spliced into DDL (identifiers cannot be query parameters), so it
    is held to the one form that needs no quoting and cannot carry SQL.
    """
    if not _IDENTIFIER.match(name):
        raise MigrationError(
            f"invalid database name {name!r}: use letters, digits and _ (not first a digit)"
        )
    return name


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files in `directory`, in version order; refuses stray or duplicate names."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files are named NNN_lower_snake.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(
                f"{path.name} and {found[version].name} have the same version {version:03d}"
            )
        found[version] = Migration(version, path.name, path.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def split_statements(text: str) -> list[str]:
    """Statements of a file: each ends with `;` at the end of a line.

    No SQL parsing beyond that, on purpose: a `;` inside a string or in the middle of a
    line does not split. Lines that are only `--` comments never end a statement, and
    chunks holding nothing but comments are dropped.
    """
    statements: list[str] = []
    current: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        current.append(line)
        if not line.lstrip().startswith("--") and _STATEMENT_END.search(line):
            current[-1] = _STATEMENT_END.sub("", line)
            statements.append("\n".join(current))
            current = []
    statements.append("\n".join(current))
    return [s.strip() for s in statements if _has_code(s)]


def _has_code(chunk: str) -> bool:
    return any(line.strip() and not line.lstrip().startswith("--") for line in chunk.split("\n"))


def retention_days(overrides: Mapping[str, int] | None = None) -> dict[str, int]:
    """The defaults with `overrides` applied; refuses unknown keys and non-positive days."""
    days = dict(DEFAULT_RETENTION_DAYS)
    for key, value in (overrides or {}).items():
        if key not in DEFAULT_RETENTION_DAYS:
            known = ", ".join(sorted(DEFAULT_RETENTION_DAYS))
            raise MigrationError(f"unknown retention key {key!r} (known: {known})")
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise MigrationError(f"retention for {key!r} must be a positive number of days")
        days[key] = value
    return days


def placeholders(database: str, retention: Mapping[str, int] | None = None) -> dict[str, str]:
    """Every value a migration file may name as `{placeholder}`."""
    days = retention_days(retention)
    values = {"database": validate_identifier(database)}
    values.update({f"retention_{key}_days": str(n) for key, n in days.items()})
    # For a category the TTL expression does not list yet: keep it as long as the longest
    # retention, never shorter; deleting data must be a deliberate choice.
    longest = max(n for key, n in days.items() if key not in RETENTION_KEYS)
    values["retention_default_days"] = str(longest)
    return values


def render(text: str, values: Mapping[str, str]) -> str:
    """`text` with each `{name}` replaced; an unknown name is an error, not a silent hole."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise MigrationError(f"unknown placeholder {{{name}}} in a migration file")
        return values[name]

    return _PLACEHOLDER.sub(fill, text)


# A statement that sets a table's TTL: its CREATE, or a later ALTER … MODIFY TTL.
_TTL_STATEMENT = re.compile(
    r"^(?:CREATE TABLE IF NOT EXISTS|ALTER TABLE) \{database\}\.(\w+)\b.*?\bTTL\b", re.S | re.M
)
_TTL_CATEGORY = re.compile(r"category = '(\w+)'")


def category_ttl(time_column: str, categories: Iterable[str]) -> str:
    """A per-category TTL: each category's `{retention_<name>_days}`, the longest for others.

    One expression rather than one TTL rule per category, so a row of a category the
    expression does not list yet still gets the longest retention instead of none.
    """
    cases = "".join(f"\n    category = '{name}', {{retention_{name}_days}}," for name in categories)
    return (
        f"toDateTime({time_column}) + toIntervalDay(multiIf({cases}"
        "\n    {retention_default_days}))"
    )


def ttl_categories(migrations: Iterable[Migration]) -> dict[str, tuple[str, ...]]:
    """The categories each table's newest TTL statement lists, by table name."""
    found: dict[str, tuple[str, ...]] = {}
    for migration in migrations:
        for statement in split_statements(migration.text):
            match = _TTL_STATEMENT.search(statement)
            if match:
                ttl = statement[match.end() :]
                found[match.group(1)] = tuple(_TTL_CATEGORY.findall(ttl))
    return found


def ttl_drift(migrations: Iterable[Migration], catalog: Catalog | None = None) -> list[str]:
    """The tables kept per category whose TTL does not list exactly the catalog's categories."""
    categories = tuple((catalog or load_catalog()).categories)
    listed = ttl_categories(migrations)
    return [
        table.name
        for table in TABLES
        if table.by_category and set(listed.get(table.name, ())) != set(categories)
    ]


def generate_ttl_migration(
    directory: Path = MIGRATIONS_DIR, catalog: Catalog | None = None
) -> Path | None:
    """Write the next migration file setting every per-category table's TTL from the catalog;
    None when the TTLs already list exactly the catalog's categories."""
    migrations = discover(directory)
    drifted = ttl_drift(migrations, catalog)
    if not drifted:
        return None
    categories = tuple((catalog or load_catalog()).categories)
    version = max((m.version for m in migrations), default=0) + 1
    path = directory / f"{version:03d}_category_retention.sql"
    lines = [
        f"-- Generated by `vdp migrate --generate-ttl` from the catalog's categories "
        f"({', '.join(categories)}).",
        "-- Never edit once applied: a later catalog change generates a new file.",
    ]
    for table in TABLES:
        if table.name in drifted:
            ttl = category_ttl("event_time", categories)
            lines.append(f"ALTER TABLE {{database}}.{table.name} MODIFY TTL {ttl};")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def plan(migrations: list[Migration], applied: Mapping[int, Applied]) -> list[Migration]:
    """The migrations still to apply, after checking the history agrees with the files."""
    by_version = {m.version: m for m in migrations}
    for version, record in sorted(applied.items()):
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {record.name} which is not among the files; "
                "is this an older version of the platform?"
            )
        if migration.checksum != record.checksum:
            raise MigrationError(
                f"{migration.name} changed after it was applied (checksum {record.checksum[:12]}"
                f" recorded, {migration.checksum[:12]} now); restore it and put the change in "
                "a new migration file"
            )
    pending = [m for m in migrations if m.version not in applied]
    newest = max(applied, default=0)
    for migration in pending:
        if migration.version < newest:
            raise MigrationError(
                f"{migration.name} is new but numbered below the applied "
                f"{applied[newest].name}; give it a higher number"
            )
    return pending


def applied_migrations(client: Client, database: str) -> dict[int, Applied]:
    """What `database.schema_migrations` records; empty when the database or table is new."""
    db = validate_identifier(database)
    exists = client.query(
        "SELECT count() FROM system.tables WHERE database = {db:String} "
        "AND name = 'schema_migrations'",
        parameters={"db": db},
    ).result_rows[0][0]
    if not exists:
        return {}
    # argMax, not FINAL: two racing migrators may both have recorded a version.
    result = client.query(
        f"SELECT version, argMax(name, applied_at), argMax(checksum, applied_at), "  # noqa: S608
        f"argMax(rendered_checksum, applied_at) FROM {db}.schema_migrations GROUP BY version"
    )
    return {int(row[0]): Applied(int(row[0]), *row[1:]) for row in result.result_rows}


def migrate(
    client: Client,
    database: str,
    retention: Mapping[str, int] | None = None,
    *,
    dry_run: bool = False,
    directory: Path = MIGRATIONS_DIR,
    on_applied: Callable[[str], None] | None = None,
    cluster: str = "",
) -> list[str]:
    """Apply the pending migrations to `database` (created if missing); their file names.

    With `dry_run`, check and report what would be applied and change nothing. With
    `cluster`, every statement runs in its cluster form (`schemas/cluster.py`).
    `on_applied(name)` is called as each file is recorded, for progress.
    A server that cannot be reached raises TransientError; a statement the server
    rejects raises MigrationError naming the file (the files before it stay applied,
    and the next run resumes with it: every statement is idempotent).
    """
    try:
        return _migrate(client, database, retention, dry_run, directory, on_applied, cluster)
    except OperationalError as e:
        raise TransientError(f"ClickHouse unreachable while migrating: {e}") from e


def _migrate(
    client: Client,
    database: str,
    retention: Mapping[str, int] | None,
    dry_run: bool,
    directory: Path,
    on_applied: Callable[[str], None] | None,
    cluster: str = "",
) -> list[str]:
    values = placeholders(database, retention)
    migrations = discover(directory)
    drifted = ttl_drift(migrations)
    if drifted:
        raise MigrationError(
            f"the TTLs of {', '.join(drifted)} do not list the catalog's categories; "
            "run `vdp migrate --generate-ttl` and commit the new migration file"
        )
    applied = applied_migrations(client, database)
    pending = plan(migrations, applied)
    _warn_retention_drift(migrations, applied, values)
    if dry_run or not pending:
        return [m.name for m in pending]
    # On a cluster the statements run in their cluster form; the record keeps the checksum
    # of the file's own statements, so one history reads the same on either.
    cluster_run = cluster_form(migrations, values, cluster) if cluster else {}
    for statement in ddl_preamble(values, cluster):
        client.command(statement)
    for migration in pending:
        statements = [render(s, values) for s in split_statements(migration.text)]
        log.info("applying %s (%d statements)", migration.name, len(statements))
        for number, statement in enumerate(cluster_run.get(migration.version, statements), 1):
            try:
                client.command(statement)
            except OperationalError:
                raise
            except DatabaseError as e:
                raise MigrationError(f"{migration.name}, statement {number}: {e}") from e
        record = [
            migration.version,
            migration.name,
            migration.checksum,
            checksum("\n".join(statements)),
        ]
        client.insert(
            f"{values['database']}.schema_migrations",
            [record],
            column_names=["version", "name", "checksum", "rendered_checksum"],
            # A synchronous insert: the record must be there when migrate returns.
            settings={"async_insert": 0},
        )
        if on_applied:
            on_applied(migration.name)
    return [m.name for m in pending]


def ddl_preamble(values: Mapping[str, str], cluster: str = "") -> list[str]:
    """The database and the migration history table, before any migration."""
    db, table = values["database"], render(_MIGRATIONS_TABLE, values)
    if cluster:
        return [database_ddl(db, cluster), unsharded(table, db, cluster)]
    return [f"CREATE DATABASE IF NOT EXISTS {db}", table]


def cluster_form(
    migrations: Iterable[Migration], values: Mapping[str, str], cluster: str
) -> dict[int, list[str]]:
    """Every migration's statements as a cluster runs them, by version."""
    rendered = [
        (m.version, [render(s, values) for s in split_statements(m.text)]) for m in migrations
    ]
    return cluster_migrations(rendered, values["database"], cluster)


def ddl(database: str, retention: Mapping[str, int] | None = None, cluster: str = "") -> list[str]:
    """Every statement a new database gets, in order (`vdp migrate --print-ddl`)."""
    values, migrations = placeholders(database, retention), discover()
    if cluster:
        by_version = cluster_form(migrations, values, cluster)
    else:
        by_version = {
            m.version: [render(s, values) for s in split_statements(m.text)] for m in migrations
        }
    return [*ddl_preamble(values, cluster), *(s for m in migrations for s in by_version[m.version])]


def _warn_retention_drift(
    migrations: list[Migration], applied: Mapping[int, Applied], values: Mapping[str, str]
) -> None:
    # Retention is filled in when a file is applied; a changed setting later does not
    # change a table's TTL. Say so rather than pretend: that takes an ALTER … MODIFY TTL
    # in a new migration file.
    for migration in migrations:
        record = applied.get(migration.version)
        if record is None or not record.rendered_checksum:
            continue
        rendered = [render(s, values) for s in split_statements(migration.text)]
        if checksum("\n".join(rendered)) != record.rendered_checksum:
            log.warning(
                "%s was applied with other retention settings than the current ones; "
                "existing TTLs are unchanged (add a migration with ALTER TABLE … MODIFY TTL)",
                migration.name,
            )


def apply_migrations(settings: Settings) -> list[str]:
    """Apply what is pending to the configured database (what `vdp process`, `vdp demo` and
    the benchmarks do at start: idempotent, and race-safe)."""
    client = clickhouse_client(settings)
    try:
        return migrate(
            client,
            settings.clickhouse_database,
            settings.retention_days,
            cluster=settings.clickhouse_cluster,
        )
    finally:
        client.close()
