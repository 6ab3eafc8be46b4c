"""The query service: runs, metrics and files over HTTP, and the web pages.

``python -m query`` (or ``runstream query``) serves it with settings from the
environment; :func:`create_app` builds the aiohttp application for embedding
and tests.
"""

from ._app import DEFAULT_MAX_UPLOAD_BYTES, create_app, serve
from ._artifacts import ArtifactStore, Blob, LocalArtifactStore, StoredBlob
from ._errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    QueryError,
    Unauthorized,
    Unavailable,
)

__all__ = [
    "DEFAULT_MAX_UPLOAD_BYTES",
    "ArtifactStore",
    "BadRequest",
    "Blob",
    "Conflict",
    "Forbidden",
    "LocalArtifactStore",
    "NotFound",
    "PayloadTooLarge",
    "QueryError",
    "StoredBlob",
    "Unauthorized",
    "Unavailable",
    "create_app",
    "serve",
]
