"""The data-rights SQL of the owner query service: consent decisions, not-collected counts,
deletion requests, and the deletions themselves. Same rules as `query/repository.py`:
values as server-side parameters, identifiers constants; every owner read filters on the
owner."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from query.params import TimeRange
from schemas.tables import CONSENT_DECISIONS, DELETION_REQUESTS

_T = "DateTime64(3, 'UTC')"
_SCOPES = "{scopes:Array(Tuple(DateTime64(3, 'UTC'), DateTime64(3, 'UTC')))}"
# The car's rows in the scope of a deletion: whoever they were tagged with (a replay may
# have tagged a sample with no owner or a late-known one), since the scopes lie inside
# the requester's own ownership periods.
_IN_SCOPE = (
    "vin = {vin:String} AND category IN {categories:Array(String)} "
    f"AND arrayExists(s -> event_time >= s.1 AND event_time < s.2, {_SCOPES})"
)
# Wait for each mutation to finish on every replica before going on: the receipt says done.
_SYNC = {"mutations_sync": 2}
_TO_TABLE = re.compile(r"\bTO\s+(?:`?\w+`?\.)?`?(\w+)`?", re.IGNORECASE)
ROLLUP_SOURCES = ("samples", "incidents")


@dataclass(frozen=True)
class Request:
    request_id: str
    owner_id: str
    vin: str
    categories: tuple[str, ...]
    time_from: datetime
    time_to: datetime
    scopes: tuple[tuple[datetime, datetime], ...]
    requested_at: datetime
    deadline: datetime
    status: str = "pending"
    done_at: datetime | None = None
    receipt: str = ""
    digest: str = ""

    def row(self, version: int) -> list[Any]:
        values = {**self.__dict__, "categories": list(self.categories),
                  "scopes": [list(s) for s in self.scopes], "version": version}  # fmt: skip
        return [values[c] for c in DELETION_REQUESTS.columns]


@dataclass(frozen=True)
class Rollup:
    """A materialized view from samples or incidents into a table of (vin, day) states."""

    view: str
    target: str
    columns: tuple[str, ...]
    select: str


class RightsRepository:
    def __init__(self, client: Client) -> None:
        self.client = client

    def _rows(self, sql: str, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
        return self.client.query(sql, parameters=params).result_rows

    # -- consent -------------------------------------------------------------------------
    def decisions(self, vin: str) -> Sequence[Sequence[Any]]:
        """Every decision of the car (all owners), oldest first, in the contract's order."""
        return self._rows(
            f"SELECT {', '.join(CONSENT_DECISIONS.columns)} FROM consent_decisions FINAL "  # noqa: S608
            "WHERE vin = {vin:String} ORDER BY effective_from, recorded_at, id",
            {"vin": vin},
        )

    def insert_decision(self, row: list[Any]) -> None:
        self.client.insert(
            CONSENT_DECISIONS.name, [row], column_names=list(CONSENT_DECISIONS.columns)
        )

    def not_collected(self, owner: str, vin: str, span: TimeRange) -> Sequence[Sequence[Any]]:
        return self._rows(
            "SELECT toDate(event_time) AS day, category, sum(samples) FROM not_collected FINAL "  # noqa: S608
            "WHERE vin = {vin:String} AND owner_id = {owner:String} AND owner_id != '' "
            f"AND event_time >= {{start:{_T}}} AND event_time < {{end:{_T}}} "
            "GROUP BY day, category ORDER BY day, category",
            {"vin": vin, "owner": owner, "start": span.start, "end": span.end},
        )

    # -- deletion requests ---------------------------------------------------------------
    def insert_request(self, request: Request, version: int) -> None:
        self.client.insert(
            DELETION_REQUESTS.name,
            [request.row(version)],
            column_names=list(DELETION_REQUESTS.columns),
        )

    def requests(self, owner: str, request_id: str = "", vin: str = "") -> list[Request]:
        rows = self._rows(
            f"SELECT {', '.join(DELETION_REQUESTS.columns)} FROM deletion_requests FINAL "  # noqa: S608
            "WHERE owner_id = {owner:String} "
            "AND (empty({id:String}) OR request_id = {id:String}) "
            "AND (empty({vin:String}) OR vin = {vin:String}) ORDER BY requested_at DESC",
            {"owner": owner, "id": request_id, "vin": vin},
        )
        return [_request(row) for row in rows]

    def car_scopes(self, vin: str) -> list[Request]:
        """Every deletion request of the car (all owners): its facts on the consent topic."""
        rows = self._rows(
            f"SELECT {', '.join(DELETION_REQUESTS.columns)} FROM deletion_requests FINAL "  # noqa: S608
            "WHERE vin = {vin:String} ORDER BY requested_at",
            {"vin": vin},
        )
        return [_request(row) for row in rows]

    def pending(self, before: datetime) -> list[Request]:
        rows = self._rows(
            f"SELECT {', '.join(DELETION_REQUESTS.columns)} FROM deletion_requests FINAL "  # noqa: S608
            f"WHERE status = 'pending' AND requested_at <= {{before:{_T}}} ORDER BY requested_at",
            {"before": before},
        )
        return [_request(row) for row in rows]

    # -- deleting ------------------------------------------------------------------------
    def count_in_scope(self, table: str, request: Request) -> dict[str, int]:
        """Rows of `table` (samples or incidents) in the request's scope, by category, as
        queries see them (FINAL: a re-inserted duplicate is one row)."""
        rows = self._rows(
            f"SELECT category, count() FROM {table} FINAL WHERE {_IN_SCOPE} GROUP BY category",  # noqa: S608
            _params(request),
        )
        return {str(c): int(n) for c, n in rows}

    def delete_in_scope(self, table: str, request: Request) -> None:
        # A mutation rather than a lightweight DELETE: it rewrites the parts without the
        # rows, so once it is done they are gone from disk too (a lightweight DELETE only
        # masks them until the next merge), which is what "unrecoverable" asks.
        self.client.command(
            f"ALTER TABLE {table} DELETE WHERE {_IN_SCOPE}",
            parameters=_params(request),
            settings=_SYNC,
        )

    def delete_dead_letters(self, request: Request) -> int:
        """Dead letters of the car in the scopes' time: their original bytes hold every
        category of the frame, so the whole record goes."""
        where = (
            "vin = {vin:String} AND arrayExists(s -> received_time >= s.1 AND "
            f"received_time < s.2, {_SCOPES})"
        )
        params = _params(request)
        count = int(self._rows(f"SELECT count() FROM dead_letters WHERE {where}", params)[0][0])  # noqa: S608
        if count:
            self.client.command(
                f"ALTER TABLE dead_letters DELETE WHERE {where}", parameters=params, settings=_SYNC
            )
        return count

    def rollups(self) -> list[Rollup]:
        """The materialized views that roll samples or incidents up per (vin, day)."""
        rows = self._rows(
            "SELECT name, create_table_query, as_select FROM system.tables "
            "WHERE database = currentDatabase() AND engine = 'MaterializedView'",
            {},
        )
        found = []
        for name, create, select in rows:
            target = _TO_TABLE.search(create)
            sources = re.findall(r"FROM\s+(?:`?\w+`?\.)?`?(\w+)`?", select, re.IGNORECASE)
            if target is None or not set(sources) & set(ROLLUP_SOURCES):
                continue
            columns = self._rows(
                "SELECT name FROM system.columns WHERE database = currentDatabase() "
                "AND table = {t:String} ORDER BY position",
                {"t": name},
            )
            found.append(Rollup(name, target.group(1), tuple(c for (c,) in columns), select))
        return found

    def rebuild(self, target: str, views: list[Rollup], vin: str, days: list[Any]) -> None:
        """Recompute the car's rows of `target` for `days` from what samples and incidents
        still hold. The states are idempotent (min/max/argMin/argMax/uniqExact), so a row
        a processor adds meanwhile is harmless twice."""
        params = {"vin": vin, "days": days}
        in_days = "vin = {vin:String} AND day IN {days:Array(Date)}"
        self.client.command(
            f"ALTER TABLE {target} DELETE WHERE {in_days}",
            parameters=params,
            settings=_SYNC,
        )
        for view in views:
            columns = ", ".join(view.columns)
            self.client.command(
                f"INSERT INTO {target} ({columns}) SELECT {columns} FROM ({view.select}) "  # noqa: S608
                f"WHERE {in_days}",
                parameters=params,
                # An identical block inserted before must not be dropped as a duplicate.
                settings={"insert_deduplicate": 0},
            )


def _params(request: Request) -> dict[str, Any]:
    return {
        "vin": request.vin,
        "categories": list(request.categories),
        "scopes": [tuple(s) for s in request.scopes],
    }


def _request(row: Sequence[Any]) -> Request:
    values = dict(zip(DELETION_REQUESTS.columns, row, strict=True))
    values.pop("version")
    values["categories"] = tuple(values["categories"])
    values["scopes"] = tuple((_utc(a), _utc(b)) for a, b in values["scopes"])
    for key in ("time_from", "time_to", "requested_at", "deadline", "done_at"):
        if values[key] is not None:
            values[key] = _utc(values[key])
    return Request(**values)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
