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
FAVICON = f"{ASSETS}/favicon.png"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
# Inline scripts and styles are the pages' own; images as data: URLs and workers as blob: URLs are
# made in the browser.
THIS_SERVER_ONLY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:"
)


def add_docs_routes(router: APIRouter, title: str, openapi_url: str) -> None:
    router.mount(ASSETS, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-assets")

    def page(request: Request, render, name: str, urls: dict[str, str], **options) -> HTMLResponse:
        """`render`'s page, its URLs under the path a proxy may serve the app at, and the policy."""
        root = request.scope.get("root_path", "").rstrip("/")
        located = {key: root + url for key, url in {"openapi_url": openapi_url, **urls}.items()}
        answer = render(title=f"{title} - {name}", **located, **options)
        answer.headers["Content-Security-Policy"] = THIS_SERVER_ONLY
        return answer

    @router.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        urls = {"swagger_js_url": f"{ASSETS}/swagger-ui-bundle.js", "swagger_css_url": f"{ASSETS}/swagger-ui.css",
                "swagger_favicon_url": FAVICON, "oauth2_redirect_url": OAUTH2_REDIRECT}  # fmt: skip
        # validatorUrl off: Swagger UI would have swagger.io validate any document not served from localhost.
        return page(request, get_swagger_ui_html, "Swagger UI", urls, swagger_ui_parameters={"validatorUrl": None})

    @router.get(OAUTH2_REDIRECT, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @router.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        urls = {"redoc_js_url": f"{ASSETS}/redoc.standalone.js", "redoc_favicon_url": FAVICON}
        return page(request, get_redoc_html, "ReDoc", urls, with_google_fonts=False)
