"""Artifact collection: ``runstream gc-artifacts``.

Two kinds of garbage are left behind on purpose by the paths that write:

* ``files`` rows of runs that no longer exist: ``ingest``'s ``drop_experiment``
  deletes runs and leaves their rows to the query service. A row is only taken
  when neither a ``runs`` nor a ``series`` row exists for its run *and* it is
  older than ``unknown_run_min_age_seconds``, because uploads are accepted
  before ingest has seen the run start (a day by default, so an ingest outage
  of hours does not cost a run its files);
* blobs no row references: a file overwritten, rows deleted as above. The
  store decides what is safe to delete while uploads go on; see
  :meth:`query.LocalArtifactStore.collect` and :mod:`query._s3_artifacts`;
* partial uploads of a query process that died mid-upload, a day after their
  last write.

Run it from cron (a Kubernetes CronJob) or by hand, in any process that
reaches the database and the artifact store (the directory, or the object
store of ``RUNSTREAM_ARTIFACTS_URL``); passes may overlap.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Final

import asyncpg

from ._artifacts import ArtifactStore
from ._db import APPLICATION_NAME

__all__ = ["ArtifactGcReport", "collect_artifacts"]

DEFAULT_MIN_AGE_SECONDS: Final = 3600.0
DEFAULT_UNKNOWN_RUN_MIN_AGE_SECONDS: Final = 86400.0


@dataclass(frozen=True, slots=True)
class ArtifactGcReport:
    file_rows: int
    blobs: int
    bytes: int
    too_new: int
    abandoned_uploads: int


async def collect_artifacts(
    dsn: str,
    store: ArtifactStore,
    *,
    min_age_seconds: float = DEFAULT_MIN_AGE_SECONDS,
    unknown_run_min_age_seconds: float = DEFAULT_UNKNOWN_RUN_MIN_AGE_SECONDS,
) -> ArtifactGcReport:
    """Delete the rows of runs that are gone, then every blob no row references.

    ``min_age_seconds`` protects blobs committed recently (see the store);
    ``unknown_run_min_age_seconds`` protects files uploaded for a run ingest has
    not stored yet.
    """
    if not unknown_run_min_age_seconds >= 0:
        raise ValueError(f"unknown_run_min_age_seconds must be >= 0, got {unknown_run_min_age_seconds}")
    conn = await asyncpg.connect(dsn, server_settings={"application_name": APPLICATION_NAME})
    try:
        rows = await _delete_rows_of_unknown_runs(conn, unknown_run_min_age_seconds)

        async def referenced(digests: Collection[str]) -> set[str]:
            records = await conn.fetch(
                "SELECT DISTINCT digest FROM files WHERE digest = ANY($1::text[])", list(digests)
            )
            return {r["digest"] for r in records}

        await store.start()
        try:
            collected = await store.collect(referenced, min_age_seconds=min_age_seconds)
        finally:
            await store.stop()
    finally:
        await conn.close()
    return ArtifactGcReport(rows, collected.blobs, collected.bytes, collected.too_new, collected.abandoned_uploads)


async def _delete_rows_of_unknown_runs(conn: asyncpg.Connection, min_age_seconds: float) -> int:
    status: str = await conn.execute(
        """
        DELETE FROM files f
        WHERE f.created_at < now() - make_interval(secs => $1)
          AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = f.run_id)
          AND NOT EXISTS (SELECT 1 FROM series s WHERE s.run_id = f.run_id)
        """,
        min_age_seconds,
    )
    return int(status.rsplit(" ", 1)[1])
