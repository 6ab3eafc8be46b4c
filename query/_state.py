"""Typed application state shared by the handlers."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from runstream.config import Settings

from ._artifacts import ArtifactStore
from ._db import Database
from ._live import LiveHub
from ._series import SeriesReader

__all__ = ["ARTIFACTS", "DATABASE", "LIVE", "MAX_UPLOAD_BYTES", "SERIES", "SETTINGS"]

SETTINGS: Final = web.AppKey("settings", Settings)
DATABASE: Final = web.AppKey("database", Database)
ARTIFACTS: Final = web.AppKey("artifacts", ArtifactStore)
MAX_UPLOAD_BYTES: Final = web.AppKey("max_upload_bytes", int)
SERIES: Final = web.AppKey("series", SeriesReader)
LIVE: Final = web.AppKey("live", LiveHub)
