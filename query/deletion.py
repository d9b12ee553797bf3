"""Deletion on request: an owner asks to delete categories of a car over a range of their
own ownership (`data:delete` scope); the request is recorded at once with its deadline and
published as a fact the processors apply (nothing in its scope is stored again), then
carried out by the executor (`query/deletion_executor.py`), which writes the receipt."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import Response
from pydantic import BaseModel, Field

from query import models as m
from query.auth import DATA_DELETE
from query.deps import Car, CurrentOwner, OwnedCar, Svc
from query.params import utc
from query.problems import PROBLEM_RESPONSES, bad_request, not_found
from query.rights import working_days_after
from query.rights_deps import RightsDep, known_categories, require
from query.rights_repository import Request, RightsRepository
from query.routes import json_response
from schemas.tables import OPEN_END

router = APIRouter(prefix="/v1", responses=PROBLEM_RESPONSES, tags=["data rights"])


class DeletionIn(BaseModel):
    categories: list[str] = Field(description="data categories to delete")
    start: datetime = Field(alias="from", description="start (inclusive), ISO 8601")
    end: datetime = Field(alias="to", description="end (exclusive), ISO 8601")


def new_request(
    svc: Svc, owner: str, car: Car, categories: tuple[str, ...], start: datetime, end: datetime
) -> Request:
    """A pending request for the range cut to the owner's own periods with the car (404 when
    they do not meet: the previous or next owner's data is never theirs to delete)."""
    start, end = utc(start), utc(end)
    if end <= start:
        raise bad_request("bad-range", "`to` must be after `from`")
    scopes = tuple(
        (max(start, p.start), min(end, p.end or OPEN_END))
        for p in car.periods
        if max(start, p.start) < min(end, p.end or OPEN_END)
    )
    if not scopes:
        raise not_found("no data of this owner's in that range")
    now = datetime.now(UTC)
    deadline = working_days_after(now, svc.settings.deletion_deadline_working_days)
    return Request(uuid.uuid4().hex, owner, car.vin, categories, start, end, scopes, now, deadline)


def request_out(r: Request) -> dict[str, Any]:
    return {
        "request_id": r.request_id,
        "vin": r.vin,
        "categories": list(r.categories),
        "from": m.iso(r.time_from),
        "to": m.iso(r.time_to),
        "scopes": [[m.iso(a), m.iso(b)] for a, b in r.scopes],
        "requested_at": m.iso(r.requested_at),
        "deadline": m.iso(r.deadline),
        "status": r.status,
        "done_at": m.iso(r.done_at),
        "receipt": json.loads(r.receipt) if r.receipt else None,
        "digest": r.digest or None,
    }


@router.post(
    "/vehicles/{vin}/deletions", status_code=202, summary="Ask to delete categories over a range"
)
def request_deletion(
    body: DeletionIn, car: OwnedCar, owner: CurrentOwner, svc: Svc, r: RightsDep
) -> Response:
    require(owner, DATA_DELETE)
    categories = tuple(dict.fromkeys(body.categories))
    known_categories(svc, categories)
    request = new_request(svc, owner.owner_id, car, categories, body.start, body.end)
    car.access.categories = categories
    car.access.start, car.access.end = request.time_from, request.time_to
    r.request_deletion(request)
    response = json_response(request_out(request))
    response.status_code = 202
    return response


@router.get("/deletions", summary="The owner's deletion requests, newest first")
def deletions(owner: CurrentOwner, svc: Svc) -> Response:
    found = RightsRepository(svc.repository.client).requests(owner.owner_id)
    return json_response({"requests": [request_out(r) for r in found]})


@router.get("/deletions/{request_id}", summary="One deletion request and its receipt")
def deletion(
    owner: CurrentOwner,
    svc: Svc,
    request_id: Annotated[str, Path(min_length=1, max_length=64, pattern="^[0-9a-f]+$")],
) -> Response:
    found = RightsRepository(svc.repository.client).requests(owner.owner_id, request_id)
    if not found:
        raise not_found("no such deletion request of this owner's")
    return json_response(request_out(found[0]))
