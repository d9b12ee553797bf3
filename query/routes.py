"""The owner API's JSON endpoints under /v1. Thin: check, ask the repository, shape."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.responses import Response

from query import models as m
from query.deps import Car, CurrentOwner, OwnedCar, Services, Svc
from query.json_rows import JsonRows
from query.params import (
    Pager,
    Selection,
    TimeRange,
    bucket_count,
    cursor_context,
    page_size,
    selection,
    time_range,
    utc,
)
from query.problems import PROBLEM_RESPONSES, bad_request
from query.repository import Scope
from schemas.catalog import CATEGORIES
from schemas.tables import EARLIEST, OPEN_END


def _query_names(dependant: Dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def known_parameters(request: Request, owner: CurrentOwner) -> None:
    """400 for a query parameter the endpoint does not take: `signal=` on /events must not
    look as if it had filtered anything. After the token check, so a stranger learns
    nothing and the owner's refused request is in their access log."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    if dependant is None:
        return
    unknown = sorted(set(request.query_params) - _query_names(dependant))
    if unknown:
        taken = ", ".join(sorted(_query_names(dependant))) or "none"
        raise bad_request(
            "unknown-parameter",
            f"{', '.join(u[:40] for u in unknown)[:200]} not taken here; this endpoint "
            f"takes: {taken}",
        )


def v1_router() -> APIRouter:
    """A router of owner endpoints under /v1: problem responses documented, parameters
    checked."""
    return APIRouter(
        prefix="/v1", responses=PROBLEM_RESPONSES, dependencies=[Depends(known_parameters)]
    )


router = v1_router()

From = Annotated[datetime, Query(alias="from", description="start, ISO 8601 (UTC if no zone)")]
To = Annotated[datetime, Query(alias="to", description="end (exclusive), ISO 8601")]
Categories = Annotated[
    list[str] | None, Query(alias="category", description="data categories (repeatable)")
]
Signals = Annotated[
    list[str] | None, Query(alias="signal", description="signal names (repeatable)")
]
PageSize = Annotated[int | None, Query(alias="page_size", description="rows per page")]
Cursor = Annotated[str | None, Query(max_length=512, description="next_cursor of the last page")]


def json_response(body: dict[str, Any], **spliced: JsonRows) -> Response:
    """`body` as JSON, plus rows ClickHouse already wrote as JSON, spliced in as arrays
    without parsing them (a page of 10,000 rows costs a copy, not 10,000 dicts)."""
    head = json.dumps({k: v for k, v in body.items() if k not in spliced}, separators=(",", ":"))
    parts: list[bytes | memoryview] = [head[:-1].encode()]
    for key, rows in spliced.items():
        parts += [b',"', key.encode(), b'":[', rows.array_items(), b"]"]
    # The final newline: a body pasted from curl leaves the prompt on a line of its own.
    parts.append(b"}\n")
    return Response(b"".join(parts), media_type="application/json")


_BUCKETS = re.compile(rb'\{"signal":"(?:[^"\\]|\\.)*","buckets":(\d+)')


def bucket_total(line: bytes) -> int:
    """`buckets` of a signal's columns as ClickHouse wrote them (it comes second)."""
    found = _BUCKETS.match(line)
    if found is None:
        raise ValueError(f"not a line of bucket columns: {line[:80]!r}")
    return int(found.group(1))


def pager(request: Request, svc: Services, owner: str, vin: str = "") -> Pager:
    """Cursors of this list for this owner and car, signed by the service."""
    path = getattr(request.scope.get("route"), "path", request.url.path)
    return Pager(svc.cursors, cursor_context(path, owner, vin))


def requested_range(svc: Svc, start: From, end: To) -> TimeRange:
    return time_range(start, end, svc.settings.query_max_range_days)


Range = Annotated[TimeRange, Depends(requested_range)]


def selected(
    owner: CurrentOwner, svc: Svc, categories: Categories = None, signals: Signals = None
) -> Selection:
    return selection(owner, svc.catalog, categories, signals)


Selected = Annotated[Selection, Depends(selected)]


def owned_scope(car: Car, owner_id: str, span: TimeRange, sel: Selection) -> Scope | None:
    """What to read: the request's range cut to the car's ownership (None when they do not
    meet), recorded for the access log."""
    car.access.selected(sel, span)
    owned = car.owned_span()
    clamped = span.clamp(owned.start, owned.end)
    return Scope(owner_id, car.vin, clamped, sel) if clamped else None


@router.get("/vehicles", response_model=m.VehiclesOut, summary="The owner's vehicles")
def vehicles(request: Request, owner: CurrentOwner, svc: Svc) -> Response:
    found = svc.repository.vehicles(owner.owner_id)
    request.state.access.rows = len(found)
    return json_response(
        {
            "vehicles": [
                {
                    "vin": vin,
                    "periods": [
                        {"kind": p.kind, "start": m.iso(p.start), "end": m.iso(p.end)}
                        for p in periods
                    ],
                }
                for vin, periods in found.items()
            ]
        }
    )


@router.get("/catalog", response_model=m.CatalogOut, summary="Signals, units and categories")
def catalog(owner: CurrentOwner, svc: Svc) -> Response:
    return json_response(
        {
            "version": svc.catalog.version,
            "categories": list(CATEGORIES),
            "signals": [
                {
                    "name": s.name,
                    "type": s.type,
                    "unit": s.unit,
                    "category": s.category,
                    "sensitivity": s.sensitivity,
                    "description": s.description,
                    "min": s.min,
                    "max": s.max,
                }
                for s in svc.catalog
            ],
        }
    )


@router.get(
    "/vehicles/{vin}/coverage",
    response_model=m.VehicleCoverageOut,
    summary="Which categories have data, and for which time span",
)
def coverage(car: OwnedCar, owner: CurrentOwner, svc: Svc, sel: Selected) -> Response:
    span = car.owned_span()
    car.access.selected(sel)
    rows = svc.repository.coverage(Scope(owner.owner_id, car.vin, span, sel))
    car.access.rows = len(rows)
    return json_response(
        {
            "vin": car.vin,
            "categories": [
                {"category": c, "first": m.iso(a), "last": m.iso(b), "samples": n, "signals": k}
                for c, a, b, n, k in rows
            ],
        }
    )


@router.get(
    "/vehicles/{vin}/series",
    response_model=m.SeriesOut,
    summary="Time series: raw rows (paginated) or min/avg/max per bucket",
)
def series(
    request: Request,
    car: OwnedCar,
    owner: CurrentOwner,
    svc: Svc,
    span: Range,
    sel: Selected,
    resolution: Annotated[
        int | None, Query(ge=1, le=31 * 86400, description="bucket seconds; omit for raw rows")
    ] = None,
    shape: Annotated[
        Literal["rows", "columns"],
        Query(
            description="with resolution: `rows` (an object per bucket, in `buckets`) or "
            "`columns` (per signal, an array per figure, in `columns`: what a chart plots, "
            "and half the bytes)"
        ),
    ] = "rows",
    page_size_: PageSize = None,
    cursor: Cursor = None,
) -> Response:
    cfg = svc.settings
    size = page_size(page_size_, cfg.query_default_page_size, cfg.query_max_page_size)
    if resolution is not None:
        bucket_count(span, resolution, sel.signal_count(svc.catalog), cfg.query_max_buckets)
    elif shape == "columns":
        raise bad_request("columns-need-resolution", "shape=columns is for buckets: add resolution")
    pages = pager(request, svc, owner.owner_id, car.vin)
    position = pages.position(cursor, (str, int))
    body: dict[str, Any] = {
        "vin": car.vin,
        "from": m.iso(span.start),
        "to": m.iso(span.end),
        "categories": list(sel.categories),
        "resolution": resolution,
        "rows": [],
        "buckets": [],
        "columns": [],
        "next_cursor": None,
    }
    scope = owned_scope(car, owner.owner_id, span, sel)
    if scope is None:
        return json_response(body)
    repo = svc.repository
    if resolution is not None:
        buckets = repo.downsampled(scope, resolution, shape == "columns")
        if shape == "columns":
            car.access.rows = sum(map(bucket_total, buckets))
            return json_response(body, columns=buckets)
        car.access.rows = len(buckets)
        return json_response(body, buckets=buckets)
    rows = repo.raw_page(scope, position, size)
    if len(rows) == size:
        last = rows.last()
        moment = datetime.fromisoformat(last["time"])
        body["next_cursor"] = pages.after(moment, last["signal"], last["seq"])
    car.access.rows = len(rows)
    return json_response(body, rows=rows)


@router.get(
    "/vehicles/{vin}/events",
    response_model=m.EventsOut,
    summary="Incidents: hard braking, ABS/ESC episodes, trouble codes …",
)
def events(
    request: Request,
    car: OwnedCar,
    owner: CurrentOwner,
    svc: Svc,
    span: Range,
    categories: Categories = None,
    page_size_: PageSize = None,
    cursor: Cursor = None,
) -> Response:
    sel = selection(owner, svc.catalog, categories, None)
    cfg = svc.settings
    size = page_size(page_size_, cfg.query_default_page_size, cfg.query_max_page_size)
    pages = pager(request, svc, owner.owner_id, car.vin)
    position = pages.position(cursor, (str,))
    body: dict[str, Any] = {"vin": car.vin, "events": [], "next_cursor": None}
    scope = owned_scope(car, owner.owner_id, span, sel)
    if scope is None:
        return json_response(body)
    rows = svc.repository.events(scope, position, size)
    body["events"] = [event_json(row) for row in rows]
    if len(rows) == size:
        body["next_cursor"] = pages.after(rows[-1][0], rows[-1][2])
    car.access.rows = len(rows)
    return json_response(body)


def event_json(row: Any) -> dict[str, Any]:
    """An incident row as the API shows it: an episode from `time` to `end`, with `peak`."""
    t, c, k, v, d, q, end, peak = row
    return {
        "time": m.iso(t),
        "end": m.iso(end or t),  # rows from before episodes: a moment
        "category": c,
        "kind": k,
        "value": v,
        "peak": peak,
        "detail": d,
        "seq": q,
    }


_ACCESS_KEYS = (
    "at",
    "request_id",
    "endpoint",
    "vin",
    "categories",
    "from",
    "to",
    "rows",
    "bytes",
    "aborted",
    "status",
    "duration_ms",
)


@router.get(
    "/access-log",
    response_model=m.AccessLogOut,
    summary="Every request made on the owner's data (newest first), paginated",
)
def access_log(
    request: Request,
    owner: CurrentOwner,
    svc: Svc,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    page_size_: PageSize = None,
    cursor: Cursor = None,
) -> Response:
    cfg = svc.settings
    size = page_size(page_size_, cfg.query_default_page_size, cfg.query_max_page_size)
    pages = pager(request, svc, owner.owner_id)
    position = pages.position(cursor, (str,))
    end = utc(end) if end else datetime.now(UTC) + timedelta(minutes=1)
    if not EARLIEST < end <= OPEN_END:  # before the default `from` is taken from it
        raise bad_request("invalid-time-range", f"`to` must lie after {EARLIEST.year}")
    start = start or max(EARLIEST, end - timedelta(days=cfg.query_max_range_days))
    span = time_range(start, end, cfg.query_max_range_days)
    rows = svc.repository.access_log(owner.owner_id, span, position, size)
    request.state.access.rows = len(rows)
    entries = [dict(zip(_ACCESS_KEYS, row, strict=True)) for row in rows]
    for entry in entries:
        for key in ("at", "from", "to"):
            entry[key] = m.iso(entry[key])
        entry["aborted"] = bool(entry["aborted"])
    next_cursor = None
    if len(rows) == size:
        next_cursor = pages.after(rows[-1][0], rows[-1][1])
    return json_response({"entries": entries, "next_cursor": next_cursor})
