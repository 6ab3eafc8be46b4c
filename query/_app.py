"""The application: middlewares, routes, and the resources opened in ``cleanup_ctx``."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

from aiohttp import web

from runstream.config import Settings

from . import (
    _consistency,
    _openapi,
    _web_files,
    _web_login,
    _web_logs,
    _web_metrics,
    _web_pages,
    _web_runs,
    _web_series,
    _web_stream,
)
from ._artifacts import ArtifactStore, LocalArtifactStore
from ._auth import make_auth_middleware
from ._consistency import READ_AFTER, IngestProgress, read_after_middleware
from ._db import Database, create_pool
from ._errors import make_error_middleware
from ._json import json_response
from ._live import LiveHub
from ._series import SeriesReader
from ._state import ARTIFACTS, DATABASE, LIVE, MAX_UPLOAD_BYTES, SERIES, SETTINGS
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
    read-only). ``artifact_store`` replaces the local content-addressed
    directory under ``settings.artifacts_dir``; a watched run pushes news at
    most every ``live_interval_seconds``, and is checked every
    ``live_fallback_seconds`` even when ingest announces nothing (see ``_live``).
    """
    for name, value in (
        ("live_interval_seconds", live_interval_seconds),
        ("live_fallback_seconds", live_fallback_seconds),
    ):
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")
    middlewares = [make_error_middleware(_web_pages.error_page)]
    if settings.token or settings.write_token:
        middlewares.append(make_auth_middleware(settings.token, settings.write_token))
    middlewares.append(query_text_middleware)  # inside auth: strangers get no input checks
    middlewares.append(read_after_middleware)  # inside auth too: strangers cannot make a request wait
    app = web.Application(middlewares=middlewares)
    app[SETTINGS] = settings
    app[MAX_UPLOAD_BYTES] = settings.max_upload_bytes
    app[ARTIFACTS] = artifact_store or LocalArtifactStore(settings.artifacts_dir)
    app.cleanup_ctx.append(
        functools.partial(
            _resources, live_interval_seconds=live_interval_seconds, live_fallback_seconds=live_fallback_seconds
        )
    )
    app.on_shutdown.append(_end_streams)
    app.router.add_get("/health", _health)
    app.router.add_static("/static/", STATIC_DIR, name="static")
    routed = (
        _consistency,
        _openapi,
        _web_runs,
        _web_metrics,
        _web_series,
        _web_stream,
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
    app: web.Application, *, live_interval_seconds: float, live_fallback_seconds: float
) -> AsyncIterator[None]:
    store = app[ARTIFACTS]
    await store.start()
    try:
        pool = await create_pool(app[SETTINGS].database_url)
        try:
            app[DATABASE] = Database(pool)
            app[SERIES] = SeriesReader(pool)
            app[_web_logs.PARTS] = _web_logs.DriverLogParts(pool)
            app[LIVE] = LiveHub(
                pool,
                app[DATABASE],
                app[SERIES],
                interval_seconds=live_interval_seconds,
                fallback_seconds=live_fallback_seconds,
            )
            app[READ_AFTER] = IngestProgress(pool, app[LIVE])
            app[LIVE].start()
            try:
                yield
            finally:
                await app[LIVE].stop()
        finally:
            await pool.close()
    finally:
        await store.stop()


def serve(settings: Settings) -> None:
    """Serve on ``settings.query_host:query_port`` until SIGINT or SIGTERM, then shut down cleanly.

    The upload limit and the write token come from the settings
    (``RUNSTREAM_MAX_UPLOAD_BYTES``, ``RUNSTREAM_WRITE_TOKEN``).
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
