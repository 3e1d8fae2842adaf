"""The reference backend's FastAPI app factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from epay_tui.api import errors, rules
from epay_tui.api.clock import Clock
from epay_tui.server import demo_data, payments
from epay_tui.server.backend import Backend
from epay_tui.server.config import ServerConfig
from epay_tui.server.deps import loopback_only
from epay_tui.server.routes import auth, me, money, orders, public, sandbox, staff

log = logging.getLogger("epay_tui.server")
MAX_BODY_BYTES = 64 * 1024

DESCRIPTION = """Reference backend of epay-tui: the HTTP contract of `api.md`, with a
payment-gateway sandbox. Money is integer fen; times are ISO 8601 in the school's
timezone. Every error is `{"error": {"code", "message", "details"}}`."""


def _error(exc: errors.ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


def _field_name(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "header", "path")]
    return ".".join(parts) or "body"


def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    fields: dict[str, str] = {}
    for problem in exc.errors():
        if problem.get("type") == "json_invalid":
            fields["body"] = "invalid JSON"
            continue
        fields.setdefault(_field_name(tuple(problem.get("loc", ()))), problem.get("msg", ""))
    return _error(errors.ValidationFailed(fields=fields))


def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 405:
        return _error(errors.MethodNotAllowed())
    if exc.status_code == 404:
        return _error(errors.RouteNotFound())
    if exc.status_code == 413:
        return _error(errors.PayloadTooLarge())
    if exc.status_code == 400:  # an unreadable body (not UTF-8, broken form)
        return _error(errors.ValidationFailed(fields={"body": "unreadable request body"}))
    return JSONResponse(
        {"error": {"code": f"HTTP_{exc.status_code}", "message": str(exc.detail), "details": {}}},
        status_code=exc.status_code,
    )


def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=exc)
    return _error(errors.InternalError())


def _nul_in_address(scope) -> str:
    """``query`` if the query string holds a NUL character (a path that does is looked up
    and found to be nothing: the store's lookups by such a text find no row)."""
    query = scope.get("query_string", b"").lower()
    return "query" if b"%00" in query or b"\x00" in query else ""


class BodyLimit:
    """Refuse request bodies over ``MAX_BODY_BYTES`` with 413, before any parsing.

    A declared length is judged at once; a chunked body is read up to the limit
    and then replayed to the app.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        where = _nul_in_address(scope)
        if where:
            problem = errors.ValidationFailed(fields={where: rules.NUL_REFUSED})
            return await _error(problem)(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > MAX_BODY_BYTES:
                return await _error(errors.PayloadTooLarge())(scope, receive, send)
            return await self.app(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return await self.app(scope, receive, send)
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > MAX_BODY_BYTES:
                return await _error(errors.PayloadTooLarge())(scope, receive, send)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        return await self.app(scope, replay, send)


async def _ticker(backend: Backend, stopping: asyncio.Event) -> None:
    """Expire due orders and send due gateway notifies until ``stopping`` is set, in the
    one worker that leads (another takes over within a tick if it dies).

    It is stopped between two sweeps, never cancelled inside one: a sweep runs in a
    worker thread that a cancellation would not stop, and the database it uses is closed
    right after the app ends.
    """
    while not stopping.is_set():
        try:
            if await run_in_threadpool(backend.leadership.claim):
                await run_in_threadpool(payments.sweep_all, backend)
                await backend.sandbox.dispatch_due()
        except Exception:
            log.exception("background sweep failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), backend.config.tick_seconds)


def create_app(config: ServerConfig, clock: Clock | None = None) -> FastAPI:
    """Build the backend: the store opened (and seeded with ``demo_data``), routes mounted."""
    backend = Backend(config, clock)
    if config.demo_data and backend.store.is_empty():
        demo_data.seed(backend)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stopping = asyncio.Event()
        if backend.changes is not None:
            await run_in_threadpool(backend.changes.start)
        task = asyncio.create_task(_ticker(backend, stopping))
        try:
            yield
        finally:
            stopping.set()
            await task
            if backend.changes is not None:
                backend.changes.stop()
            await run_in_threadpool(backend.leadership.resign)
            await backend.gateway.aclose()

    app = FastAPI(
        title="epay-tui payment backend",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.backend = backend
    app.add_exception_handler(errors.ApiError, lambda _r, exc: _error(exc))
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    for module in (public, auth, me, orders, staff, money, sandbox):
        app.include_router(module.router)
    if config.dev_hooks:
        app.include_router(sandbox.dev_router, dependencies=[Depends(loopback_only)])
    app.add_middleware(BodyLimit)
    return app
