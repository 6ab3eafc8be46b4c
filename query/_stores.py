"""Which artifact store the settings name: the object store of ``RUNSTREAM_ARTIFACTS_URL``, else the local directory.

Beside :mod:`._artifacts` (the interface and the local store) and
:mod:`._s3_artifacts` (the S3 store, built on the first), so that neither
imports the other back.
"""

from __future__ import annotations

from runstream.config import Settings

from ._artifacts import ArtifactStore, LocalArtifactStore
from ._s3_artifacts import DigestLocks, S3ArtifactStore

__all__ = ["open_store"]


def open_store(settings: Settings) -> ArtifactStore:
    """The store ``settings`` name: the object store of ``RUNSTREAM_ARTIFACTS_URL``, else the local directory."""
    if settings.s3 is None:
        return LocalArtifactStore(settings.artifacts_dir)
    return S3ArtifactStore(settings.s3, locks=DigestLocks(settings.database_url))
