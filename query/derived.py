"""Trips, charging sessions, monthly statistics and battery health of an owner's car.

Derived from the stored samples by the deriver (processors/derive/), so consent already
shaped them: places exist only where location was collected, coarse where it was coarse.
The token still rules what is shown: a trip needs `driving`, a session or the battery
`battery_charging`; a figure made from another category is null (and named in
`withheld`) unless the token carries it too: places `location`, distances `vehicle_state`,
energy `battery_charging`. Ownership periods cut everything: a row is served only if it
began and ended inside one of the owner's periods.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response

from query import derived_models as dm
from query import models as m
from query.auth import Principal
from query.deps import Car, CurrentOwner, OwnedCar, Services, Svc
from query.derived_repository import DerivedRepository
from query.json_rows import JsonRows
from query.params import Selection, TimeRange, page_size, time_range
from query.problems import forbidden
from query.repository import Scope
from query.routes import Cursor, From, PageSize, To, json_response, owned_scope, pager, v1_router

router = v1_router()

DRIVING, LOCATION, BATTERY, STATE = "driving", "location", "battery_charging", "vehicle_state"


def derived_range(svc: Svc, start: From, end: To) -> TimeRange:
    """Trips and sessions are few: a request may span `VDP_QUERY_MAX_DERIVED_RANGE_DAYS`."""
    return time_range(start, end, svc.settings.query_max_derived_range_days)


DerivedRange = Annotated[TimeRange, Depends(derived_range)]


def _repo(svc: Services) -> DerivedRepository:
    return DerivedRepository(svc.repository.client)


def _ms(value: int) -> str | None:
    return m.iso(datetime.fromtimestamp(value / 1000, UTC))


def _month(day: date) -> str:
    return day.strftime("%Y-%m")


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


class Shown:
    """What the token lets a derived answer show: `needs` (403 without), and the other
    categories it reads from, shown only when the token carries them."""

    def __init__(self, principal: Principal, needs: tuple[str, ...], extra: tuple[str, ...]):
        if not set(needs) & principal.categories:
            raise forbidden(f"this needs a token allowing {' or '.join(needs)}")
        self.have = principal.categories
        self.categories = tuple(c for c in (*needs, *extra) if c in self.have)
        self.withheld = [c for c in extra if c not in self.have]

    def __contains__(self, category: str) -> bool:
        return category in self.have

    def params(self) -> dict[str, bool]:
        """The query parameters that switch the figures of other categories on."""
        return {"show_location": LOCATION in self, "show_state": STATE in self,
                "show_battery": BATTERY in self}  # fmt: skip


def _scope(car: Car, owner: str, span: TimeRange, shown: Shown) -> Scope | None:
    return owned_scope(car, owner, span, Selection(shown.categories, ()))


Fetch = Callable[[Scope, datetime | None, int], JsonRows]


def _listing(
    request: Request,
    car: Car,
    owner: Principal,
    svc: Services,
    span: TimeRange,
    page: tuple[int | None, str | None],
    shown: Shown,
    key: str,
    fetch: Fetch,
    **head: Any,
) -> Response:
    """One page of a car's trips or sessions (`key`), oldest first, keyset-paginated by
    start; `head` goes into the body before the rows."""
    cfg = svc.settings
    limit = page_size(page[0], cfg.query_default_page_size, cfg.query_max_page_size)
    pages = pager(request, svc, owner.owner_id, car.vin)
    position = pages.position(page[1], ())
    body: dict[str, Any] = {"vin": car.vin, "from": m.iso(span.start), "to": m.iso(span.end),
                            **head, "withheld": shown.withheld, key: [],
                            "next_cursor": None}  # fmt: skip
    scope = _scope(car, owner.owner_id, span, shown)
    if scope is None:
        return json_response(body)
    rows = fetch(scope, position[0] if position else None, limit)
    if len(rows) == limit:
        body["next_cursor"] = pages.after(datetime.fromisoformat(rows.last()["start"]))
    car.access.rows = len(rows)
    return json_response(body, **{key: rows})


@router.get("/vehicles/{vin}/trips", response_model=dm.TripsOut, summary="Trips, oldest first")
def trips(
    request: Request,
    car: OwnedCar,
    owner: CurrentOwner,
    svc: Svc,
    span: DerivedRange,
    page_size_: PageSize = None,
    cursor: Cursor = None,
) -> Response:
    shown = Shown(owner, (DRIVING,), (LOCATION, STATE, BATTERY))
    repo = _repo(svc)
    return _listing(
        request, car, owner, svc, span, (page_size_, cursor), shown, "trips",
        lambda scope, after, limit: repo.trips(scope, after, limit, shown),
    )  # fmt: skip


@router.get(
    "/vehicles/{vin}/charging-sessions",
    response_model=dm.SessionsOut,
    summary="Charging sessions with their cost, oldest first",
)
def sessions(
    request: Request,
    car: OwnedCar,
    owner: CurrentOwner,
    svc: Svc,
    span: DerivedRange,
    page_size_: PageSize = None,
    cursor: Cursor = None,
) -> Response:
    shown = Shown(owner, (BATTERY,), (LOCATION,))
    repo, cfg = _repo(svc), svc.settings
    tariff = (cfg.tariff_prices, cfg.tariff_timezone)
    return _listing(
        request, car, owner, svc, span, (page_size_, cursor), shown, "sessions",
        lambda scope, after, limit: repo.sessions(scope, after, limit, shown, *tariff),
        currency=cfg.tariff_currency,
    )  # fmt: skip


_MONTH_KEYS = ("trips", "driving_s", "distance_km", "energy_wh", "efficiency_wh_per_km",
               "charging_sessions", "charging_s", "charged_kwh", "charging_cost")  # fmt: skip


@router.get(
    "/vehicles/{vin}/stats/monthly",
    response_model=dm.MonthlyOut,
    summary="Per month: distance, energy, efficiency, trips, charging time and cost",
)
def monthly(car: OwnedCar, owner: CurrentOwner, svc: Svc, span: DerivedRange) -> Response:
    shown = Shown(owner, (DRIVING, BATTERY), (STATE,))
    cfg = svc.settings
    body: dict[str, Any] = {"vin": car.vin, "from": m.iso(span.start), "to": m.iso(span.end),
                            "currency": cfg.tariff_currency, "withheld": shown.withheld,
                            "months": []}  # fmt: skip
    scope = _scope(car, owner.owner_id, span, shown)
    if scope is None:
        return json_response(body)
    repo = _repo(svc)
    months: dict[str, dict[str, Any]] = defaultdict(lambda: dict.fromkeys(_MONTH_KEYS))
    if DRIVING in shown:
        for month, n, seconds, km, wh, km_with_wh, wh_with_km in repo.trips_by_month(scope):
            row = months[_month(month)]
            row |= {"trips": n, "driving_s": seconds}
            if STATE in shown:
                row["distance_km"] = km
            if BATTERY in shown:
                row["energy_wh"] = wh
                if STATE in shown:
                    row["efficiency_wh_per_km"] = _ratio(wh_with_km, km_with_wh)
    if BATTERY in shown:
        for month, n, seconds, kwh, cost in repo.sessions_by_month(
            scope, cfg.tariff_prices, cfg.tariff_timezone
        ):
            row = months[_month(month)]
            row |= {"charging_sessions": n, "charging_s": seconds, "charged_kwh": kwh,
                    "charging_cost": cost}  # fmt: skip
    body["months"] = [{"month": k, **v} for k, v in sorted(months.items())]
    car.access.rows = len(body["months"])
    return json_response(body)


@router.get(
    "/vehicles/{vin}/battery",
    response_model=dm.BatteryOut,
    summary="Battery health: usable capacity per charging session and its trend, idle drain",
)
def battery(car: OwnedCar, owner: CurrentOwner, svc: Svc, span: DerivedRange) -> Response:
    shown = Shown(owner, (BATTERY,), ())
    body: dict[str, Any] = {"vin": car.vin, "from": m.iso(span.start), "to": m.iso(span.end),
                            "capacity": [], "capacity_by_month": [], "idle_drain": []}  # fmt: skip
    scope = _scope(car, owner.owner_id, span, shown)
    if scope is None:
        return json_response(body)
    repo = _repo(svc)
    estimates = repo.capacity(scope)
    body["capacity"] = [{"time": _ms(t), "capacity_kwh": kwh} for t, kwh in estimates]
    by_month: dict[str, list[float]] = defaultdict(list)
    for t, kwh in estimates:
        by_month[_month(datetime.fromtimestamp(t / 1000, UTC).date())].append(kwh)
    body["capacity_by_month"] = [
        {"month": k, "median_kwh": statistics.median(v), "sessions": len(v)}
        for k, v in sorted(by_month.items())
    ]
    body["idle_drain"] = [
        {"month": _month(month), "parked_hours": seconds / 3600, "soc_lost_pct": lost,
         "pct_per_day": lost / seconds * 86_400 if seconds else 0.0}
        for month, seconds, lost in repo.idle_by_month(scope)
    ]  # fmt: skip
    car.access.rows = len(estimates)
    return json_response(body)
