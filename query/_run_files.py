"""A run's files as stored: a request body streamed into the artifact store and recorded, and the listing.

The handlers of the files API (``_web_files``) and of the driver log
(``_web_logs``) store bodies through :func:`store_body`; the listing leaves out
the driver log's parts (:mod:`._driver_log`).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Final

from aiohttp import web

from ._artifacts import RECORD_WITHIN_SECONDS
from ._db import Database, FileRecord
from ._driver_log import DRIVER_LOG_PARTS
from ._errors import PayloadTooLarge, Unavailable
from ._state import ARTIFACTS, DATABASE, MAX_UPLOAD_BYTES

__all__ = ["run_files", "store_body"]

_READ_BYTES: Final = 1 << 18


async def store_body(
    request: web.Request, run_id: uuid.UUID, name: str, *, content_type: str, overwrite: bool
) -> FileRecord:
    """Stream the request body into the artifact store and record it as the run's file ``name``.

    Recording must finish within :data:`RECORD_WITHIN_SECONDS` of the blob's
    commit or is cancelled (503; a retry of the same upload is harmless): the
    artifact collector relies on that bound to never delete a blob an upload
    is about to record.
    """
    limit = request.app[MAX_UPLOAD_BYTES]
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(
            f"upload of {request.content_length} bytes exceeds the limit of {limit}", parameter="body"
        )
    blob = await request.app[ARTIFACTS].put(request.content.iter_chunked(_READ_BYTES), max_bytes=limit)
    try:
        async with asyncio.timeout(RECORD_WITHIN_SECONDS):
            return await request.app[DATABASE].add_file(
                run_id, name, digest=blob.digest, size=blob.size, content_type=content_type, overwrite=overwrite
            )
    except TimeoutError:
        raise Unavailable(
            f"recording file {name!r} took over {RECORD_WITHIN_SECONDS:g}s and was abandoned; retry"
        ) from None


async def run_files(db: Database, run_id: uuid.UUID) -> list[FileRecord]:
    """The run's files as its users see them: the driver log's parts are how the log is stored, not files.

    The log itself is read with ``GET .../logs/driver`` (and is the file
    ``logs/driver.log`` once its script has ended).
    """
    return [f for f in await db.list_files(run_id) if not f.name.startswith(DRIVER_LOG_PARTS)]
