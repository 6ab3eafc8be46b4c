"""The application: middlewares, routes, and the resources opened in ``cleanup_ctx``."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Final

import asyncpg
from aiohttp import web

from runstream.config import Settings
from runstream.logs import configure_logging
from runstream.schema import SchemaMismatchError, applied_versions, schema_problem

from . import (
    _consistency,
    _observe,
    _openapi,
    _web_alerts,
    _web_files,
    _web_follow,
    _web_login,
    _web_logs,
    _web_metrics,
    _web_pages,
    _web_runs,
    _web_series,
    _web_stream,
)
from ._alerts import AlertEvaluator
from ._artifacts import ArtifactStore
from ._auth import make_auth_middleware
from ._body import make_body_deadline_middleware
from ._consistency import READ_AFTER, IngestProgress, read_after_middleware
from ._db import Database, create_pool
from ._errors import make_error_middleware
from ._follow import FollowPacing
from ._guards import make_guard_middleware
from ._heavy import HeavyReads
from ._html_response import error_page
from ._json import json_response
from ._limits import LOGIN_ATTEMPTS, LOGIN_WINDOW_SECONDS
from ._live import LiveHub
from ._params import parameters_middleware
from ._proxy import Proxies
from ._rate_limit import RateLimiter
from ._series import SeriesReader
from ._sessions import Sessions, cookie_secret, session_key
from ._state import (
    ALERTS,
    ARTIFACTS,
    DATABASE,
    FOLLOW_PACING,
    HEAVY_READS,
    LIVE,
    LOGIN_LIMITER,
    MAX_UPLOAD_BYTES,
    PROXIES,
    SERIES,
    SESSIONS,
    SETTINGS,
)
from ._stores import open_store
from ._validate import query_text_middleware

__all__ = ["DEFAULT_MAX_UPLOAD_BYTES", "create_app", "serve"]

DEFAULT_MAX_UPLOAD_BYTES: Final = Settings().max_upload_bytes
STATIC_DIR: Final = Path(__file__).parent / "static"
_log = logging.getLogger("query")
#: aiohttp's parser limits. A request line must hold the longest valid file
#: name percent-encoded (1024 characters of up to 12 bytes each) plus the run
#: id and a query; a field (header line) and the number of headers keep
#: aiohttp's defaults. Anything larger is answered 400 by the parser.
MAX_LINE_BYTES: Final = 32 * 1024
MAX_FIELD_BYTES: Final = 8190
MAX_HEADERS: Final = 128
#: An idle connection, or one that never finishes sending its request line and
#: headers (slowloris), is closed after this long: aiohttp's keep-alive timer
#: runs from the moment a connection is made until a request is complete.
KEEPALIVE_SECONDS: Final = 15.0


async def _health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


def create_app(
    settings: Settings,
    *,
    artifact_store: ArtifactStore | None = None,
    live_interval_seconds: float = 0.5,
    live_fallback_seconds: float = 5.0,
) -> web.Application:
    """Build the service; the database pool and artifact store open when the app starts.

    ``settings.max_upload_bytes`` caps one uploaded file; ``settings.write_token``,
    when set, is the only token that may upload (``settings.token`` is then
    read-only). ``artifact_store`` replaces the store the settings name (the
    object store of ``RUNSTREAM_ARTIFACTS_URL``, else the local directory
    ``settings.artifacts_dir``); a watched run pushes news at
    most every ``live_interval_seconds``, and is checked every
    ``live_fallback_seconds`` even when ingest announces nothing (see ``_live``).

    Requests pass, in order: the error middleware (every error as JSON or a
    page), the Host and Origin checks (``_guards``), the token check
    (``_auth``), the request body's time limit (``_body``), and the checks of
    query parameters against the OpenAPI document (``_params``); a bad
    setting (a short token, a cookie secret file others can read) raises
    :class:`~runstream.config.ConfigError` here, before anything listens.
    """
    for name, value in (
        ("live_interval_seconds", live_interval_seconds),
        ("live_fallback_seconds", live_fallback_seconds),
    ):
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")
    middlewares: list[Callable[..., Awaitable[web.StreamResponse]]] = [
        _observe.metrics_middleware,
        make_error_middleware(error_page),
        make_guard_middleware(settings),
    ]
    if settings.token or settings.write_token:
        middlewares.append(make_auth_middleware(settings.token, settings.write_token))
    # Inside auth: strangers get no input checks, their bodies are never read, and they cannot make a read wait.
    middlewares += [
        make_body_deadline_middleware(settings.body_timeout_seconds),
        parameters_middleware,
        query_text_middleware,
        read_after_middleware,
    ]
    app = web.Application(middlewares=middlewares)
    app[SETTINGS] = settings
    app[MAX_UPLOAD_BYTES] = settings.max_upload_bytes
    app[ARTIFACTS] = artifact_store or open_store(settings)
    app[HEAVY_READS] = HeavyReads()
    app[FOLLOW_PACING] = FollowPacing()
    app[PROXIES] = Proxies(settings.trusted_proxies)
    app[LOGIN_LIMITER] = RateLimiter(attempts=LOGIN_ATTEMPTS, window_seconds=LOGIN_WINDOW_SECONDS)
    app[_observe.QUERY_METRICS] = _observe.QueryMetrics(app)
    app.cleanup_ctx.append(
        functools.partial(
            _resources,
            session_key=session_key(cookie_secret(settings), settings.token or ""),
            live_interval_seconds=live_interval_seconds,
            live_fallback_seconds=live_fallback_seconds,
        )
    )
    app.on_shutdown.append(_end_streams)
    app.router.add_get("/health", _health)
    app.router.add_static("/static/", STATIC_DIR, name="static")
    routed = (
        _observe,
        _consistency,
        _openapi,
        _web_runs,
        _web_metrics,
        _web_series,
        _web_stream,
        _web_follow,
        _web_alerts,
        _web_files,
        _web_logs,
        _web_pages,
        _web_login,
    )
    for module in routed:
        app.router.add_routes(module.routes)
    return app


async def _end_streams(app: web.Application) -> None:
    # Before the server waits for open connections: live streams end now
    # instead of holding shutdown up until its timeout.
    if LIVE in app:
        await app[LIVE].stop()


async def _resources(
    app: web.Application, *, session_key: bytes, live_interval_seconds: float, live_fallback_seconds: float
) -> AsyncIterator[None]:
    store = app[ARTIFACTS]
    await store.start()
    try:
        pool = await create_pool(app[SETTINGS].database_url)
        try:
            await _check_schema(pool)
            app[_observe.DB_POOL] = pool
            app[DATABASE] = Database(pool)
            app[SERIES] = SeriesReader(pool)
            app[SESSIONS] = Sessions(pool, key=session_key, max_age_seconds=app[SETTINGS].session_max_age_seconds)
            app[LIVE] = LiveHub(
                pool,
                app[DATABASE],
                app[SERIES],
                interval_seconds=live_interval_seconds,
                fallback_seconds=live_fallback_seconds,
            )
            app[READ_AFTER] = IngestProgress(pool, app[LIVE])
            app[ALERTS] = AlertEvaluator(pool, app[DATABASE], app[LIVE])
            app[LIVE].start()
            app[ALERTS].start()
            try:
                yield
            finally:
                await app[ALERTS].stop()
                await app[LIVE].stop()
        finally:
            await pool.close()
    finally:
        await store.stop()


async def _check_schema(pool: asyncpg.Pool) -> None:
    """Refuse to start on a schema this code does not understand (``runstream migrate`` applies them)."""
    async with pool.acquire() as conn:
        problem = schema_problem(await applied_versions(conn))
    if problem is not None:
        raise SchemaMismatchError(f"RUNSTREAM_DATABASE_URL: {problem}")


def serve(settings: Settings) -> None:
    """Serve on ``settings.query_host:query_port`` until SIGINT or SIGTERM, then shut down cleanly.

    The upload limit and the write token come from the settings
    (``RUNSTREAM_MAX_UPLOAD_BYTES``, ``RUNSTREAM_WRITE_TOKEN``).
    """
    if not logging.getLogger().handlers:
        configure_logging(settings.log_format, component="query")
    app = create_app(settings)
    _log.info("query service on http://%s:%d", settings.query_host, settings.query_port)
    web.run_app(
        app,
        host=settings.query_host,
        port=settings.query_port,
        print=None,
        shutdown_timeout=10.0,
        keepalive_timeout=KEEPALIVE_SECONDS,
        max_line_size=MAX_LINE_BYTES,
        max_field_size=MAX_FIELD_BYTES,
        max_headers=MAX_HEADERS,
    )
