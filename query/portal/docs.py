"""`/docs`: Swagger UI from the platform's own copy (query/portal/assets.py), not a CDN, so
the interactive API docs work with no internet access."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse

from query.portal.assets import SWAGGER_UI

DOCS = "/docs"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"


def install_docs(app: FastAPI) -> None:
    """Serve Swagger UI at /docs; the app must be made with `docs_url=None` (FastAPI's own
    page loads the scripts from a CDN)."""
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get(DOCS, include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API docs",
            swagger_js_url=SWAGGER_UI.url("swagger-ui-bundle.js"),
            swagger_css_url=SWAGGER_UI.url("swagger-ui.css"),
            swagger_favicon_url=SWAGGER_UI.url("favicon-32x32.png"),
            oauth2_redirect_url=OAUTH2_REDIRECT,
            # Swagger UI's default asks a public validator for a badge image: not offline.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(OAUTH2_REDIRECT, include_in_schema=False)
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
