"""``/docs`` (Swagger UI) and ``/redoc`` from assets a package ships, never from a CDN.

FastAPI's own pages load their scripts, styles and icon from the internet: blank offline, and
every visit tells a third party about the gateway. fastapi-offline bundles the same assets.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS = "/_docs"
#: The pages may reach this gateway and nothing else: ReDoc, for one, shows a logo from its
#: maker's CDN, which the browser then never asks for.
_ONLY_HERE = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline';"
    " img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self';"
    " frame-ancestors 'none'"
)


def _only_here(page: HTMLResponse) -> HTMLResponse:
    page.headers["content-security-policy"] = _ONLY_HERE
    return page


def install(app: FastAPI) -> None:
    """Serve the API pages; create the app with ``docs_url=None, redoc_url=None``."""
    static = Path(str(files("fastapi_offline") / "static"))
    app.mount(ASSETS, StaticFiles(directory=static), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _only_here(
            get_swagger_ui_html(
                openapi_url=f"{root}{app.openapi_url}",
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
                swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
                oauth2_redirect_url=None,
                # Swagger UI would send the schema to validator.swagger.io for its badge
                swagger_ui_parameters={"validatorUrl": None},
            )
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _only_here(
            get_redoc_html(
                openapi_url=f"{root}{app.openapi_url}",
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
                with_google_fonts=False,
            )
        )
