"""The API's interactive documentation, `/docs` (Swagger UI) and `/redoc`, from files this process serves.

FastAPI's own pages load Swagger UI and ReDoc from a CDN and start them with an inline script; here the
assets come from the `fastapi-offline` package (mounted at `/docs/assets`) and Swagger UI starts from
`static/swagger-init.js`, so the pages work offline and keep `script-src 'self'`.  ReDoc injects its
styles at run time and builds its search index in a `blob:` worker: only `/redoc` allows those.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from desk.web_security import CONTENT_SECURITY_POLICY

ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
REDOC_CSP = CONTENT_SECURITY_POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'") + (
    "; worker-src 'self' blob:"
)


def install_api_docs(app: FastAPI) -> None:
    """`/docs` and `/redoc` for `app`'s OpenAPI schema (its `openapi_url` must be set)."""
    app.mount("/docs/assets", StaticFiles(directory=ASSETS), name="docs_assets")

    @app.get("/docs", include_in_schema=False, name="swagger_ui")
    async def swagger_ui(request: Request) -> HTMLResponse:
        return _render(request, "docs_swagger.html")

    @app.get("/redoc", include_in_schema=False, name="redoc")
    async def redoc(request: Request) -> HTMLResponse:
        response = _render(request, "docs_redoc.html")
        response.headers["content-security-policy"] = REDOC_CSP
        return response


def _render(request: Request, template: str) -> HTMLResponse:
    app = request.app
    openapi_path = request.scope.get("root_path", "").rstrip("/") + app.openapi_url
    return app.state.desk.templates.TemplateResponse(  # type: ignore[no-any-return]
        request, template, {"title": app.title, "openapi_url": openapi_path}
    )
