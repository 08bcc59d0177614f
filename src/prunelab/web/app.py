"""The explorer app: `create_app(store_root=None)` -> a FastAPI application.

Pages are server-rendered Jinja2 templates with a little plain JavaScript
(static/, shipped in the package, nothing fetched from the network); every
action on a page goes through the JSON API in `prunelab.web.api`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from prunelab.errors import UserError
from prunelab.web.api import MAX_UPLOAD, build_router
from prunelab.web.state import WebState

HERE = Path(__file__).resolve().parent

# (path, template, nav label)
PAGES = [
    ("/", "models.html", "Models"),
    ("/train", "train.html", "Train"),
    ("/prune", "prune.html", "Prune"),
    ("/test", "test.html", "Test"),
    ("/inside", "inside.html", "Look inside"),
    ("/compare", "compare.html", "Compare"),
    ("/data", "data.html", "Data pruning"),
]


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        msg = err.get("msg", "invalid value")
        if err.get("type") == "extra_forbidden":
            msg = "unknown field; check the spelling"
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts) or "invalid request"


def create_app(store_root: str | Path | None = None, workers: int = 1) -> FastAPI:
    """The explorer over the store at `store_root` (default `$PRUNELAB_HOME`),
    running background jobs on `workers` threads (1: jobs queue, one at a time)."""
    state = WebState(store_root, workers=workers)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        state.jobs.shutdown()

    # no /docs: Swagger UI would load its assets from a CDN; the schema itself is served
    app = FastAPI(title="prunelab explorer", version=_version(), lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url="/api/openapi.json",
                  description="Train, prune, fine-tune, test and compare models. Every page action is a "
                              "call to this API.")
    app.state.web = state
    _document_errors(app)
    templates = Jinja2Templates(directory=str(HERE / "templates"))

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        # Another web site open in the same browser may send "simple" cross-origin POSTs to
        # this local server (forms, multipart); refuse any state-changing request whose
        # Origin is not this server.
        origin = request.headers.get("origin")
        if request.method not in ("GET", "HEAD", "OPTIONS") and origin and origin != "null" \
                and urlsplit(origin).netloc != request.headers.get("host", ""):
            return JSONResponse({"detail": f"cross-origin request from {origin} refused; use the explorer's "
                                           "own pages or call the API without an Origin header"},
                                status_code=403)
        length = request.headers.get("content-length")
        if request.method in ("POST", "PUT", "PATCH") and length and length.isdigit() \
                and int(length) > MAX_UPLOAD + 64 * 1024:
            return JSONResponse({"detail": f"the request is larger than {MAX_UPLOAD // (1024 * 1024)} MB; "
                                           "use a smaller file"}, status_code=413)
        response: Response = await call_next(request)
        return response

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError) -> JSONResponse:
        status = 404 if str(exc).startswith("no model") else 400
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_message(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/api/") or exc.status_code != 404:
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                                headers=getattr(exc, "headers", None))
        return templates.TemplateResponse(request, "404.html", _context("", status=404), status_code=404)

    app.include_router(build_router(state))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    def page(template: str, path: str) -> Any:
        def render(request: Request) -> HTMLResponse:
            return templates.TemplateResponse(request, template, _context(path))

        return render

    for path, template, _label in PAGES:
        app.add_api_route(path, page(template, path), methods=["GET"], response_class=HTMLResponse,
                          include_in_schema=False, name=f"page:{template}")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return RedirectResponse("/static/favicon.svg")

    return app


def _document_errors(app: FastAPI) -> None:
    """Make /api/openapi.json describe the 422 body we send ({"detail": "<message>"}, see
    `validation_error`) instead of FastAPI's default list of error objects, so clients
    generated from the schema (and schemathesis) accept our own responses."""
    default = app.openapi

    def openapi() -> dict[str, Any]:
        schema = default()
        schema.setdefault("components", {}).setdefault("schemas", {})["HTTPValidationError"] = {
            "title": "HTTPValidationError", "type": "object", "required": ["detail"],
            "properties": {"detail": {"title": "Detail", "type": "string"}}}
        # every route may refuse bad input (400, UserError), a missing model or job (404) and, for
        # bodies, a too-large upload (413), all with the same {"detail": message} body
        error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}}}
        for path, item in schema.get("paths", {}).items():
            for method, op in item.items() if path.startswith("/api/") else ():
                responses = op.setdefault("responses", {})
                responses.setdefault("400", {"description": "Bad input; detail says how to fix it", **error})
                responses.setdefault("404", {"description": "No such model or job", **error})
                if method in ("post", "put", "patch"):
                    responses.setdefault("413", {"description": "The request is too large", **error})
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _context(path: str, **extra: Any) -> dict[str, Any]:
    return {"nav": [(p, label) for p, _t, label in PAGES], "active": path, "version": _version(), **extra}


def _version() -> str:
    from prunelab import __version__

    return __version__
