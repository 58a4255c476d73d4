"""GET /docs (Swagger UI) and GET /redoc, complete without internet: their scripts, style sheet and
icon are served from the installed `fastapi-offline` package, where FastAPI's own pages load them
from a CDN (blank pages on a machine that cannot reach it). A content security policy keeps the
browser from asking any other host for anything, such as the logo ReDoc always loads from its CDN.
"""

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS = "/docs/assets"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
# Inline scripts and styles are the pages' own; images as data: URLs and workers as blob: URLs are
# made in the browser.
THIS_SERVER_ONLY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:"
)


def this_server_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = THIS_SERVER_ONLY
    return page


def add_docs_routes(router: APIRouter, title: str, openapi_url: str) -> None:
    router.mount(ASSETS, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-assets")

    def prefix(request: Request) -> str:
        """Behind a proxy that serves the app under a path, every URL the pages use starts with it."""
        return request.scope.get("root_path", "").rstrip("/")

    @router.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = prefix(request)
        page = get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            oauth2_redirect_url=root + OAUTH2_REDIRECT,
            # Off: Swagger UI would have swagger.io validate any document not served from localhost.
            swagger_ui_parameters={"validatorUrl": None},
        )
        return this_server_only(page)

    @router.get(OAUTH2_REDIRECT, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @router.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = prefix(request)
        page = get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
        return this_server_only(page)
