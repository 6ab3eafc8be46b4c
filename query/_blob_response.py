"""A stored blob as an HTTP response, streamed from the store, with byte ranges and a strong ETag.

A local blob is a file, served by aiohttp's ``FileResponse`` (sendfile, and
``Range`` done for us). A blob in an object store is streamed here: ``Range:
bytes=a-b`` (one range; also ``a-`` and ``-n``) is answered ``206`` with
``Content-Range``, and the store is asked for exactly those bytes (an S3
ranged GET), so a resumed download or a viewer seeking in a large file never
pulls the whole object through the service. A range past the end is ``416``;
several ranges, or one that does not parse, are ignored (the whole body,
as RFC 9110 allows). Blobs are content-addressed, so their digest is a strong
``ETag``: ``If-None-Match`` answers ``304`` and ``If-Range`` is honoured.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from ._artifacts import ArtifactStore, Blob
from ._errors import error_body

__all__ = ["blob_response"]


async def blob_response(
    request: web.Request, store: ArtifactStore, blob: Blob, headers: Mapping[str, str]
) -> web.StreamResponse:
    if blob.path is not None:
        return web.FileResponse(blob.path, headers=headers)
    etag = f'"{blob.digest}"'
    headers = {**headers, "ETag": etag, "Accept-Ranges": "bytes"}
    if etag in (t.strip() for t in request.headers.get("If-None-Match", "").split(",")):
        return web.Response(status=304, headers={"ETag": etag})
    try:
        span = _requested_range(request, blob.size, etag)
    except _Unsatisfiable:
        body = error_body("range_not_satisfiable", f"the file has {blob.size} bytes", "Range")
        return web.Response(
            status=416, body=body, content_type="application/json", headers={"Content-Range": f"bytes */{blob.size}"}
        )
    response = web.StreamResponse(headers=headers)
    offset, length = 0, blob.size
    if span is not None:
        offset, length = span
        response.set_status(206)
        response.headers["Content-Range"] = f"bytes {offset}-{offset + length - 1}/{blob.size}"
    response.content_length = length
    await response.prepare(request)
    if request.method != "HEAD":
        async for chunk in store.read(blob, offset=offset, length=length):
            await response.write(chunk)
    await response.write_eof()
    return response


class _Unsatisfiable(Exception):
    pass


def _requested_range(request: web.Request, size: int, etag: str) -> tuple[int, int] | None:
    """(offset, length) of a satisfiable single range; None for the whole body; 416 if unsatisfiable."""
    header = request.headers.get("Range")
    if header is None or "," in header:
        return None
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range.strip() != etag:
        return None  # the client's copy is another version: send it all
    try:
        span = request.http_range
    except ValueError:
        return None
    start, stop = span.start, span.stop
    if start is None:
        return None
    if start < 0:  # the last n bytes
        start = max(0, size + start)
        stop = size
    stop = size if stop is None else min(stop, size)
    if start >= size or stop <= start:
        raise _Unsatisfiable
    return start, stop - start
