"""The API documentation pages, served offline: ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc).

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so they are blank without the internet. These load
them from the installed ``fastapi_offline`` package (MIT; it ships the Swagger UI and ReDoc bundles, their
licences travel with it), under ``/docs/static/``, like the dashboard serves Plotly from the plotly package.
No Google fonts, no validator badge, a local favicon, and ReDoc's one remote image (the logo beside "API docs
by Redocly" at the foot of its menu) replaced in the bundle as served by an inline blank image: nothing is
requested from outside the server (tests/ui/test_first_hour.py blocks the network and checks).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response

router = APIRouter(include_in_schema=False)

ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
          "redoc.standalone.js": "text/javascript", "favicon.png": "image/png"}


def assets_dir() -> Path:
    """The folder of the installed Swagger UI and ReDoc bundles."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


REDOC_REMOTE_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
BLANK_IMAGE = b"data:image/svg+xml,%3Csvg xmlns=%27http://www.w3.org/2000/svg%27 width=%271%27 height=%271%27/%3E"
CACHE = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}


@lru_cache(maxsize=1)
def redoc_bundle() -> bytes:
    """The installed ReDoc bundle with its remote logo pointed at an inline blank image (read once)."""
    return (assets_dir() / "redoc.standalone.js").read_bytes().replace(REDOC_REMOTE_LOGO, BLANK_IMAGE)


def _root(request: Request) -> str:
    return request.scope.get("root_path", "") or ""


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    root = _root(request)
    return get_swagger_ui_html(openapi_url=f"{root}{request.app.openapi_url}",
                               title=f"{request.app.title} - Swagger UI",
                               swagger_js_url=f"{root}/docs/static/swagger-ui-bundle.js",
                               swagger_css_url=f"{root}/docs/static/swagger-ui.css",
                               swagger_favicon_url=f"{root}/docs/static/favicon.png",
                               swagger_ui_parameters={"validatorUrl": None})


@router.get("/redoc", response_class=HTMLResponse)
def redoc(request: Request) -> HTMLResponse:
    root = _root(request)
    return get_redoc_html(openapi_url=f"{root}{request.app.openapi_url}", title=f"{request.app.title} - ReDoc",
                          redoc_js_url=f"{root}/docs/static/redoc.standalone.js",
                          redoc_favicon_url=f"{root}/docs/static/favicon.png", with_google_fonts=False)


@router.get("/docs/static/{name}")
def docs_asset(name: str) -> Response:
    media = ASSETS.get(name)
    path = assets_dir() / name
    if media is None or not path.is_file():
        raise HTTPException(404, detail="not found")
    if name == "redoc.standalone.js":
        return Response(redoc_bundle(), media_type=media, headers=CACHE)
    return FileResponse(path, media_type=media, headers=CACHE)
