"""The owner portal's routes: the page, its static files and vendored assets, its
configuration, and development sign-in. The page itself holds no owner data: it calls the
owner API (`/v1/…`) with the token the owner signed in with, like any owner app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from query.auth import PERMISSIONS
from query.portal import assets, dev
from query.portal.docs import install_docs
from query.problems import Problem, bad_request
from query.routes import json_response
from vdp.settings import Settings
from vdp.tokens import mint_token

STATIC = Path(__file__).resolve().parent / "static"
PREFIX = "/portal"
# Only this origin's scripts, styles and pictures (blob: for downloads drawn or made in the
# page): a page that tried to load anything from elsewhere would be refused by the browser.
_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
_NO_CACHE = {"Cache-Control": "no-cache", "Content-Security-Policy": _CSP}

router = APIRouter(include_in_schema=False)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.services.settings
    return settings


def _dev_only(request: Request) -> Settings:
    settings = _settings(request)
    if not dev.development_secret(settings):
        raise Problem(404, "not-found", "Not found", "development sign-in is off")
    return settings


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/")


@router.get(PREFIX)
def portal_bare() -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/")


@router.get(f"{PREFIX}/")
def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=_NO_CACHE)


@router.get(f"{PREFIX}/config.json")
def config(request: Request) -> Response:
    settings = _settings(request)
    return json_response(
        {
            "development_sign_in": dev.development_secret(settings),
            "demo_scopes": list(dev.DEMO_SCOPES),
            "environment": settings.query_environment,
            "max_range_days": settings.query_max_range_days,
            "max_report_minutes": settings.query_max_report_minutes,
            "missing_assets": assets.missing(),
            "chart": {
                "script": assets.UPLOT.url("uPlot.iife.min.js"),
                "style": assets.UPLOT.url("uPlot.min.css"),
            },
        }  # fmt: skip
    )


@router.get(f"{PREFIX}/dev/owners")
def owners(request: Request) -> Response:
    _dev_only(request)
    client = request.app.state.services.repository.client
    return json_response({"owners": dev.demo_owners(client)})


@router.post(f"{PREFIX}/dev/token")
def token(request: Request, body: Annotated[dict[str, Any], Body()]) -> Response:
    settings = _dev_only(request)
    owner = body.get("owner_id")
    scopes = body.get("scopes", list(dev.DEMO_SCOPES))
    if not isinstance(owner, str) or not owner.strip():
        raise bad_request("bad-owner", "owner_id: a non-empty string")
    if not isinstance(scopes, list) or not set(scopes) <= set(dev.DEMO_SCOPES):
        raise bad_request("bad-scope", f"scopes: a list of {', '.join(dev.DEMO_SCOPES)}")
    categories = [s for s in scopes if s not in PERMISSIONS]
    permissions = tuple(s for s in scopes if s in PERMISSIONS)
    signed = mint_token(settings, owner, categories, dev.DEMO_TTL_SECONDS, permissions=permissions)
    return json_response({"token": signed, "expires_in": dev.DEMO_TTL_SECONDS})


def install(app: FastAPI) -> None:
    """Mount the portal on `app` at /portal/ (and / redirecting to it), and /docs."""
    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="portal-static")
    # check_dir=False: without `deploy/setup.sh` the service still starts; the page and
    # config.json say which assets are missing.
    app.mount(
        f"{PREFIX}/vendor",
        StaticFiles(directory=assets.VENDOR, check_dir=False),
        name="portal-vendor",
    )
    install_docs(app)
