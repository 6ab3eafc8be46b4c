"""Typed application state shared by the handlers."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from runstream.config import Settings

from ._alerts import AlertEvaluator
from ._artifacts import ArtifactStore
from ._db import Database
from ._follow import FollowPacing
from ._heavy import HeavyReads
from ._live import LiveHub
from ._proxy import Proxies
from ._rate_limit import RateLimiter
from ._series import SeriesReader
from ._sessions import Sessions

__all__ = [
    "ALERTS",
    "ARTIFACTS",
    "DATABASE",
    "FOLLOW_PACING",
    "HEAVY_READS",
    "LIVE",
    "LOGIN_LIMITER",
    "MAX_UPLOAD_BYTES",
    "PROXIES",
    "SERIES",
    "SESSIONS",
    "SETTINGS",
]

SETTINGS: Final = web.AppKey("settings", Settings)
DATABASE: Final = web.AppKey("database", Database)
ARTIFACTS: Final = web.AppKey("artifacts", ArtifactStore)
MAX_UPLOAD_BYTES: Final = web.AppKey("max_upload_bytes", int)
SERIES: Final = web.AppKey("series", SeriesReader)
LIVE: Final = web.AppKey("live", LiveHub)
ALERTS: Final = web.AppKey("alerts", AlertEvaluator)
FOLLOW_PACING: Final = web.AppKey("follow_pacing", FollowPacing)
HEAVY_READS: Final = web.AppKey("heavy_reads", HeavyReads)
SESSIONS: Final = web.AppKey("sessions", Sessions)
PROXIES: Final = web.AppKey("proxies", Proxies)
LOGIN_LIMITER: Final = web.AppKey("login_limiter", RateLimiter)
