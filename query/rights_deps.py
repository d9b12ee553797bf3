"""Dependencies and checks the data-rights routes share (query/consent.py, query/deletion.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from query.auth import Principal
from query.deps import Car, Svc
from query.problems import bad_request, forbidden, not_found
from query.rights import Rights


def rights(request: Request) -> Rights:
    found: Rights = request.app.state.rights
    return found


RightsDep = Annotated[Rights, Depends(rights)]


def require(principal: Principal, permission: str) -> None:
    """403 unless the token carries `permission` (a write scope, apart from categories)."""
    if permission not in principal.permissions:
        raise forbidden(f"this needs a token with the {permission} scope")


def current_car(car: Car) -> None:
    """Only the owner of the car now decides about it: a previous owner gets the same 404
    as a stranger (their consent ended with their ownership)."""
    if car.periods[-1].end is not None:
        raise not_found()


def known_categories(svc: Svc, categories: tuple[str, ...]) -> None:
    unknown = [c for c in categories if c not in svc.catalog.categories]
    if unknown or not categories:
        raise bad_request("unknown-category", f"unknown or no categories: {unknown}")
