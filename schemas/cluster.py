"""The ClickHouse DDL for a cluster, generated from the single-node migration files.

`vdp migrate` with `VDP_CLICKHOUSE_CLUSTER` set runs this form of every file instead of the
file's own statements; the embedded single-node store keeps those. Nothing here is written
by hand per table: each statement of `schemas/clickhouse/NNN_*.sql` (rendered, so with the
database and retention filled in) is rewritten by one rule per kind of statement:

- `CREATE TABLE t … ENGINE = XMergeTree(args)` becomes two tables, both `ON CLUSTER`:
  `t_local` on every node, `ReplicatedXMergeTree('/clickhouse/tables/{shard}/<db>/t_local',
  '{replica}', args)` with the same columns, keys, partitions and TTL, its dedup window as
  `replicated_deduplication_window` (the replicated engine keeps the sink's
  `insert_deduplication_token`s in Keeper, per shard); and `t` itself, a `Distributed`
  table over `t_local` sharded by `cityHash64(<shard key>)`. Code keeps using `t`.
- The shard key is `vin` unless `SHARD_KEYS` names another, and it must be part of the
  table's ORDER BY (its dedup key): every copy of a row then lands on one shard, where
  `FINAL` and the replacing merge collapse it. One car is on one shard, so an owner's
  question about a car is answered by one shard.
- `CREATE MATERIALIZED VIEW v TO t AS SELECT … FROM s` runs per shard: it reads `s_local`
  and writes `t_local` (a car's rows and their rollup stay on the car's shard).
- `CREATE VIEW` gets `ON CLUSTER` and reads the Distributed tables.
- `ALTER TABLE t …` goes to `t_local`; its column changes (ADD/DROP/MODIFY/RENAME/COMMENT
  COLUMN) also to `t`, whose columns must stay those of `t_local`.
Anything else is refused with the statement named, so a new kind of migration cannot slip
through with no cluster form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from vdp.errors import ConfigurationError

LOCAL = "_local"
# Tables whose ORDER BY has no `vin`: their shard key, a part of that ORDER BY.
SHARD_KEYS: Mapping[str, tuple[str, ...]] = {
    "query_access_log": ("owner_id",),  # an owner reads their own log: one shard
    "dead_letters": ("source_topic", "source_partition", "source_offset"),
}
DEFAULT_SHARD_KEY = ("vin",)
# Column changes, which the Distributed table in front must follow.
_COLUMN_OPS = re.compile(r"^(ADD|DROP|MODIFY|RENAME|COMMENT)\s+COLUMN\b", re.I)
_CLUSTER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")

_CREATE_TABLE = re.compile(r"^CREATE TABLE IF NOT EXISTS (\w+)\.(\w+)\s*\(", re.S)
_CREATE_MV = re.compile(
    r"^CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+)\.(\w+)\s+TO\s+(\w+)\.(\w+)\s+AS\s", re.S
)
_CREATE_VIEW = re.compile(r"^CREATE VIEW IF NOT EXISTS (\w+)\.(\w+)\s+AS\s", re.S)
_ALTER = re.compile(r"^ALTER TABLE (\w+)\.(\w+)\s+(.*)$", re.S)
_ENGINE = re.compile(r"ENGINE\s*=\s*(\w+)(?:\(([^()]*)\))?")
_ORDER_BY = re.compile(r"\bORDER BY\s+(\([^()]*\)|\w+)")


class ClusterDDLError(ConfigurationError):
    """A migration statement has no cluster form (or the cluster name is unusable)."""


@dataclass(frozen=True)
class Sharded:
    """A table of the single-node DDL that became `<name>_local` + a Distributed `<name>`."""

    name: str
    order_by: tuple[str, ...]
    shard_key: tuple[str, ...]


def validate_cluster(name: str) -> str:
    if not _CLUSTER_NAME.match(name):
        raise ClusterDDLError(
            f"invalid ClickHouse cluster name {name!r} (letters, digits, _ and -, as in "
            "the servers' remote_servers)"
        )
    return name


def _code(statement: str) -> str:
    """The statement without its `--` comment lines (as `split_statements` defines them)."""
    lines = [line for line in statement.split("\n") if not line.lstrip().startswith("--")]
    return "\n".join(lines).strip()


def _scan(text: str, start: int = 0) -> Iterator[tuple[int, str, int]]:
    """(index, character, parenthesis depth after it) of each character of `text` from
    `start` that is outside a quoted string or identifier."""
    depth, quote, i = 0, "", start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1  # an escaped character, a quote among them
            elif ch == quote:
                quote = ""
        elif ch in "'`\"":
            quote = ch
        else:
            depth += (ch == "(") - (ch == ")")
            yield i, ch, depth
        i += 1


def _closing(text: str, start: int) -> int:
    """Index of the `)` closing the `(` at `start`."""
    for i, ch, depth in _scan(text, start):
        if ch == ")" and depth == 0:
            return i
    raise ClusterDDLError(f"unbalanced parentheses in: {text[:120]}")


def split_top_level(text: str) -> list[str]:
    """`text` cut at the commas outside parentheses and quotes (an ALTER's operations)."""
    parts, start = [], 0
    for i, ch, depth in _scan(text):
        if ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


class ClusterSchema:
    """Rewrites the statements of the migrations, in order, for `cluster`.

    It remembers the tables it has seen, so a later ALTER or view finds them; feed it every
    migration from the first, also those a database already has.
    """

    def __init__(self, database: str, cluster: str) -> None:
        self.database = database
        self.cluster = validate_cluster(cluster)
        self.on = f"ON CLUSTER '{cluster}'"
        self.tables: dict[str, Sharded] = {}
        self.views: set[str] = set()

    def statements(self, statements: Iterable[str]) -> list[str]:
        out: list[str] = []
        for statement in statements:
            out.extend(self.statement(_code(statement)))
        return out

    def statement(self, code: str) -> list[str]:
        for pattern, rewrite in (
            (_CREATE_TABLE, self._table),
            (_CREATE_MV, self._materialized_view),
            (_CREATE_VIEW, self._view),
            (_ALTER, self._alter),
        ):
            match = pattern.match(code)
            if match:
                self._check_database(match.group(1), code)
                return rewrite(match, code)
        raise ClusterDDLError(
            f"no cluster form for this statement (add a rule to schemas/cluster.py): {code[:160]}"
        )

    def _check_database(self, database: str, code: str) -> None:
        if database != self.database:
            raise ClusterDDLError(f"statement names database {database}, not {self.database}")

    # -- CREATE TABLE ----------------------------------------------------------------------

    def _table(self, match: re.Match[str], code: str) -> list[str]:
        name = match.group(2)
        columns_end = _closing(code, match.end() - 1)
        columns, rest = code[match.end() - 1 : columns_end + 1], code[columns_end + 1 :]
        engine = _ENGINE.search(rest)
        if engine is None or not engine.group(1).endswith("MergeTree"):
            raise ClusterDDLError(f"{name}: only MergeTree-family tables have a cluster form")
        if engine.group(1).startswith("Replicated"):
            raise ClusterDDLError(f"{name}: the single-node DDL must not be replicated already")
        order = _ORDER_BY.search(rest)
        if order is None:
            raise ClusterDDLError(f"{name}: no ORDER BY to shard by")
        order_by = tuple(c.strip() for c in order.group(1).strip("()").split(","))
        key = SHARD_KEYS.get(name, DEFAULT_SHARD_KEY)
        if not set(key) <= set(order_by):
            # Copies of a row (a replay) must meet on one shard to be collapsed there.
            raise ClusterDDLError(
                f"{name}: shard key {key} is not part of ORDER BY {order_by}; name one in "
                "schemas/cluster.py SHARD_KEYS"
            )
        local = name + LOCAL
        path = f"/clickhouse/tables/{{shard}}/{self.database}/{local}"
        args = f"'{path}', '{{replica}}'" + (f", {engine.group(2)}" if engine.group(2) else "")
        replicated = f"ENGINE = Replicated{engine.group(1)}({args})"
        rest = rest[: engine.start()] + replicated + rest[engine.end() :]
        rest = re.sub(
            r"\bnon_replicated_deduplication_window\b", "replicated_deduplication_window", rest
        )
        self.tables[name] = Sharded(name, order_by, key)
        db = self.database
        return [
            f"CREATE TABLE IF NOT EXISTS {db}.{local} {self.on}\n{columns}{rest}",
            f"CREATE TABLE IF NOT EXISTS {db}.{name} {self.on} AS {db}.{local}\n"
            f"ENGINE = Distributed('{self.cluster}', '{db}', '{local}', "
            f"cityHash64({', '.join(key)}))",
        ]

    # -- views -----------------------------------------------------------------------------

    def _materialized_view(self, match: re.Match[str], code: str) -> list[str]:
        name, target = match.group(2), match.group(4)
        self._check_database(match.group(3), code)
        if target not in self.tables:
            raise ClusterDDLError(f"{name}: its target {target} is not a table of the DDL")
        select = code[match.end() :]
        # Every table the view reads, as its shard's local table.
        qualified = re.compile(rf"\b{self.database}\.(\w+)\b")
        select = qualified.sub(lambda m: f"{self.database}.{self._local(m.group(1))}", select)
        self.views.add(name)
        db = self.database
        return [
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{name} {self.on}\n"
            f"TO {db}.{target}{LOCAL}\nAS {select}"
        ]

    def _local(self, name: str) -> str:
        return name + LOCAL if name in self.tables else name

    def _view(self, match: re.Match[str], code: str) -> list[str]:
        name = match.group(2)
        self.views.add(name)
        return [
            f"CREATE VIEW IF NOT EXISTS {self.database}.{name} {self.on}\nAS {code[match.end() :]}"
        ]

    # -- ALTER -----------------------------------------------------------------------------

    def _alter(self, match: re.Match[str], code: str) -> list[str]:
        name, operations = match.group(2), match.group(3)
        if name not in self.tables:
            raise ClusterDDLError(f"ALTER of {name}, which is not a table of the DDL")
        db = self.database
        out = [f"ALTER TABLE {db}.{name}{LOCAL} {self.on}\n{operations}"]
        columns = [op for op in split_top_level(operations) if _COLUMN_OPS.match(op)]
        if columns:
            out.append(f"ALTER TABLE {db}.{name} {self.on}\n" + ",\n".join(columns))
        return out


def database_ddl(database: str, cluster: str) -> str:
    return f"CREATE DATABASE IF NOT EXISTS {database} ON CLUSTER '{validate_cluster(cluster)}'"


def unsharded(statement: str, database: str, cluster: str) -> str:
    """A `CREATE TABLE … ENGINE = XMergeTree(args)` replicated to every node of the cluster
    (one Keeper path for all, no Distributed): `schema_migrations`, which every node must
    read whole. Replica names `{shard}-{replica}` are unique across the whole cluster."""
    code = _code(statement)
    match = _CREATE_TABLE.match(code)
    engine = _ENGINE.search(code)
    if match is None or engine is None or not engine.group(1).endswith("MergeTree"):
        raise ClusterDDLError(f"no unsharded cluster form for: {code[:120]}")
    name = match.group(2)
    path = f"/clickhouse/tables/all/{database}/{name}"
    args = f"'{path}', '{{shard}}-{{replica}}'" + (
        f", {engine.group(2)}" if engine.group(2) else ""
    )
    head = f"CREATE TABLE IF NOT EXISTS {database}.{name} ON CLUSTER '{validate_cluster(cluster)}'"
    body = code[match.end() - 1 : engine.start()]
    tail = code[engine.end() :]
    return f"{head}\n{body}ENGINE = Replicated{engine.group(1)}({args}){tail}"


def cluster_migrations(
    rendered: Sequence[tuple[int, Sequence[str]]], database: str, cluster: str
) -> dict[int, list[str]]:
    """Each migration's cluster statements, by version; `rendered` holds every migration
    from the first, each as the statements the single node would run."""
    schema = ClusterSchema(database, cluster)
    return {version: schema.statements(statements) for version, statements in rendered}
