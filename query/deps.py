"""FastAPI dependencies: who is asking (from the token, never from parameters) and which car.

Like full-stack-fastapi-template's `CurrentUser`: a route that touches owner data takes
`CurrentOwner` and, for one car, `OwnedCar`, and cannot get at an owner id any other way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from query.auth import Principal, TokenError, TokenVerifier
from query.cursors import CursorSigner
from query.params import Selection, TimeRange, vin_or_400
from query.problems import not_found, unauthorized
from query.repository import Period, Repository
from schemas.catalog import Catalog
from schemas.tables import OPEN_END
from vdp.settings import Settings


@dataclass
class Access:
    """What one request read, filled in as it goes; the access log records it at the end."""

    owner_id: str
    endpoint: str = ""
    vin: str = ""
    categories: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    rows: int = 0  # rows produced so far; the access log counts those really sent
    stop: bool = False  # no more body wanted (client gone, or HEAD): a stream ends early

    def selected(self, sel: Selection, span: TimeRange | None = None) -> None:
        self.categories = sel.categories
        if span is not None:
            self.start, self.end = span.start, span.end


class PeriodCache:
    """Ownership periods per (owner, VIN) for a few seconds, saving a ClickHouse round trip
    per request. Safe to serve slightly stale: it only decides 404 and narrows the range;
    every SQL read still checks the intervals in `ownership_intervals` itself."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._entries: dict[tuple[str, str], tuple[float, list[Period]]] = {}

    def get(self, repo: Repository, owner: str, vin: str) -> list[Period]:
        now = time.monotonic()
        hit = self._entries.get((owner, vin))
        if hit is not None and now - hit[0] < self.seconds:
            return hit[1]
        periods = repo.periods(owner, vin)
        if len(self._entries) > 100_000:  # bounded: forget everything rather than grow
            self._entries.clear()
        self._entries[(owner, vin)] = (now, periods)
        return periods


@dataclass
class Services:
    """Everything a request needs, built once by the app factory."""

    settings: Settings
    catalog: Catalog
    verifier: TokenVerifier
    repository: Repository
    periods: PeriodCache
    cursors: CursorSigner


def services(request: Request) -> Services:
    state: Services = request.app.state.services
    return state


# auto_error=False: a missing header must be our 401 problem, not FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, description="Owner token (JWT) from the owner app")


def current_principal(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if creds is None or creds.scheme.lower() != "bearer":
        raise unauthorized("a bearer token is required")
    try:
        principal = svc.verifier.verify(creds.credentials)
    except TokenError as e:
        raise unauthorized(str(e)) from e
    route = request.scope.get("route")
    request.state.access = Access(principal.owner_id, getattr(route, "path", request.url.path))
    return principal


CurrentOwner = Annotated[Principal, Depends(current_principal)]
Svc = Annotated[Services, Depends(services)]


@dataclass(frozen=True)
class Car:
    vin: str
    periods: list[Period]
    access: Access

    def owned_span(self) -> TimeRange:
        """From the first period's start to the last one's end (or the far future)."""
        end = self.periods[-1].end or OPEN_END
        return TimeRange(self.periods[0].start, end)


def owned_car(
    request: Request,
    principal: CurrentOwner,
    svc: Svc,
    vin: Annotated[str, Path(description="17-character VIN", min_length=1, max_length=64)],
) -> Car:
    """The car, if this owner ever owned it; a car they never owned and a car that does not
    exist are the same 404, so existence does not leak."""
    vin_or_400(vin)
    access: Access = request.state.access
    access.vin = vin
    periods = svc.periods.get(svc.repository, principal.owner_id, vin)
    if not periods:
        raise not_found()
    return Car(vin, periods, access)


OwnedCar = Annotated[Car, Depends(owned_car)]
