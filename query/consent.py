"""The owner's consent: read the car's state and history, grant, change, withdraw a
category (writes need the `consent:write` scope), and what was not collected for want of
it. Decisions take effect from the moment they are recorded, for this owner only, and
only while they own the car."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from query import models as m
from query.auth import CONSENT_WRITE, DATA_DELETE
from query.deletion import new_request, request_out
from query.deps import CurrentOwner, OwnedCar, Svc
from query.params import time_range, utc
from query.problems import PROBLEM_RESPONSES, bad_request
from query.rights import Decision
from query.rights_deps import RightsDep, current_car, known_categories, require
from query.rights_repository import RightsRepository
from query.routes import json_response

router = APIRouter(prefix="/v1", responses=PROBLEM_RESPONSES, tags=["data rights"])


class ConsentIn(BaseModel):
    mode: str = Field(description="on; for location precise or coarse")
    expires_at: datetime | None = Field(None, description="end of the grant (ISO 8601)")
    days: int | None = Field(None, gt=0, description="or: how many days from now")


def decision_out(d: Decision) -> dict[str, Any]:
    return {"id": d.id, "category": d.category, "mode": d.mode,
            "from": m.iso(d.effective_from), "expires_at": m.iso(d.expires_at),
            "recorded_at": m.iso(d.recorded_at)}  # fmt: skip


def in_force(decisions: list[Decision], category: str, now: datetime) -> Decision | None:
    """The decision that holds for `category` now (None: the catalog default holds)."""
    begun = [d for d in decisions if d.category == category and d.effective_from <= now]
    if not begun:
        return None
    latest = max(begun, key=lambda d: (d.effective_from, d.recorded_at, d.id))
    if latest.mode != "off" and latest.expires_at is not None and now >= latest.expires_at:
        return None  # expired: back to the default
    return latest


@router.get("/vehicles/{vin}/consent", summary="What is collected about the car, and why")
def consent_state(car: OwnedCar, owner: CurrentOwner, svc: Svc, r: RightsDep) -> Response:
    now = datetime.now(UTC)
    mine = [d for d in r.decisions(car.vin) if d.owner_id == owner.owner_id]
    states = []
    for name, category in svc.catalog.categories.items():
        default = "on" if category.collected_by_default else "off"
        held = in_force(mine, name, now)
        mode = held.mode if held else default
        states.append({"category": name, "collected_by_default": category.collected_by_default,
                       "modes": list(category.modes), "mode": mode, "collected": mode != "off",
                       "decision": decision_out(held) if held else None})  # fmt: skip
    car.access.rows = len(mine)
    return json_response({"vin": car.vin, "categories": states,
                          "history": [decision_out(d) for d in mine]})  # fmt: skip


@router.put("/vehicles/{vin}/consent/{category}", summary="Grant or change a category's consent")
def grant(
    category: str, body: ConsentIn, car: OwnedCar, owner: CurrentOwner, svc: Svc, r: RightsDep
) -> Response:
    require(owner, CONSENT_WRITE)
    current_car(car)
    known_categories(svc, (category,))
    car.access.categories = (category,)
    modes = svc.catalog.categories[category].modes
    if body.mode not in modes:
        raise bad_request("bad-mode", f"{category} may be granted {', '.join(modes)}")
    now = datetime.now(UTC)
    if (body.expires_at is None) == (body.days is None):
        raise bad_request("no-expiry", "a grant needs exactly one of expires_at or days")
    expires = utc(body.expires_at) if body.expires_at else now + timedelta(days=body.days or 0)
    longest = svc.settings.consent_max_days
    if expires <= now or expires - now > timedelta(days=longest):
        raise bad_request("bad-expiry", f"a grant ends in the future, within {longest} days")
    decision = r.decide(owner.owner_id, car.vin, category, body.mode, expires)
    return json_response({"vin": car.vin, "decision": decision_out(decision)})


@router.delete("/vehicles/{vin}/consent/{category}", summary="Withdraw (or refuse) a category")
def withdraw(
    category: str,
    car: OwnedCar,
    owner: CurrentOwner,
    svc: Svc,
    r: RightsDep,
    delete_collected: Annotated[
        bool, Query(description="also ask to delete what was collected in this category")
    ] = False,
) -> Response:
    require(owner, CONSENT_WRITE)
    if delete_collected:
        require(owner, DATA_DELETE)
    current_car(car)
    known_categories(svc, (category,))
    car.access.categories = (category,)
    decision = r.decide(owner.owner_id, car.vin, category, "off", None)
    body: dict[str, Any] = {"vin": car.vin, "decision": decision_out(decision), "deletion": None}
    if delete_collected:
        start = car.periods[0].start
        deletion = new_request(svc, owner.owner_id, car, (category,), start, decision.recorded_at)
        r.request_deletion(deletion)
        body["deletion"] = request_out(deletion)
    return json_response(body)


@router.get("/vehicles/{vin}/not-collected", summary="Samples not collected: no consent")
def not_collected(
    car: OwnedCar,
    owner: CurrentOwner,
    svc: Svc,
    start: Annotated[datetime, Query(alias="from")],
    end: Annotated[datetime, Query(alias="to")],
) -> Response:
    span = time_range(start, end, svc.settings.query_max_range_days)
    car.access.start, car.access.end = span.start, span.end
    rows = RightsRepository(svc.repository.client).not_collected(owner.owner_id, car.vin, span)
    car.access.rows = len(rows)
    days = [{"day": str(day), "category": c, "samples": int(n), "reason": "no consent"}
            for day, c, n in rows]  # fmt: skip
    return json_response({"vin": car.vin, "days": days, "total": sum(d["samples"] for d in days)})
