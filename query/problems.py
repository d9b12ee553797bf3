"""Errors as `application/problem+json` (RFC 9457): type, title, status, detail.

Routes raise `Problem`; FastAPI's own validation errors and HTTP exceptions are turned into
the same shape, so a client has one error format to read.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException

PROBLEM_TYPE = "application/problem+json"
# Relative URI references (RFC 9457 allows them), resolved against the service's address.
_TYPE_BASE = "/problems/"


class ProblemModel(BaseModel):
    """The body of every error response (for the OpenAPI schema)."""

    type: str
    title: str
    status: int
    detail: str


class Problem(Exception):
    """An error a client caused or may see: becomes a problem+json response."""

    def __init__(
        self, status: int, slug: str, title: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.slug, self.title, self.detail = status, slug, title, detail
        self.headers = headers or {}


def bad_request(slug: str, detail: str) -> Problem:
    return Problem(400, slug, slug.replace("-", " ").capitalize(), detail)


def unauthorized(detail: str) -> Problem:
    # RFC 6750 §3: every 401 names the scheme; invalid_token tells the app to sign in again.
    description = detail.replace('"', "'").replace("\\", "/")
    header = f'Bearer realm="vdp", error="invalid_token", error_description="{description}"'
    return Problem(401, "unauthorized", "Unauthorized", detail, {"WWW-Authenticate": header})


def forbidden(detail: str) -> Problem:
    header = 'Bearer realm="vdp", error="insufficient_scope"'
    return Problem(403, "insufficient-scope", "Forbidden", detail, {"WWW-Authenticate": header})


def not_found(detail: str = "no such vehicle among this owner's vehicles") -> Problem:
    return Problem(404, "not-found", "Not found", detail)


class NewlineJSONResponse(JSONResponse):
    """JSON ending in a newline, like every body of this service: a body pasted from curl
    then leaves the shell prompt on a line of its own."""

    def render(self, content: Any) -> bytes:
        return super().render(content) + b"\n"


def problem_response(
    status: int, slug: str, title: str, detail: str, headers: dict[str, str] | None = None
) -> Response:
    body = {"type": _TYPE_BASE + slug, "title": title, "status": status, "detail": detail}
    text = json.dumps(body) + "\n"
    return Response(text, status_code=status, media_type=PROBLEM_TYPE, headers=headers)


def _validation_detail(errors: Any) -> str:
    parts = []
    for error in errors:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("query", "path"))
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else error.get("msg", ""))
    return "; ".join(parts) or "invalid request"


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc.status, exc.slug, exc.title, exc.detail, exc.headers)


async def _on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return problem_response(
        422, "validation-error", "Invalid request", _validation_detail(exc.errors())
    )


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
    return problem_response(
        exc.status_code, "http-error", title, str(exc.detail), dict(exc.headers or {})
    )


def install(app: FastAPI) -> None:
    """Route every error the app can raise through problem+json."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(HTTPException, _on_http)


# For `responses=` on routes: the OpenAPI schema documents the problem bodies.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ProblemModel, "content": {PROBLEM_TYPE: {}}, "description": text}
    for status, text in (
        (400, "Bad request"),
        (401, "Missing or invalid token"),
        (403, "Category outside the token's scope"),
        (404, "No such vehicle among the owner's vehicles"),
        (422, "Invalid parameters"),
    )
}
