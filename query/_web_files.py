"""Run files: streamed upload into the artifact store, listing, streamed download (with ranges: _blob_response)."""

from __future__ import annotations

import mimetypes
import re
from typing import Final
from urllib.parse import quote

from aiohttp import web

from ._blob_response import blob_response
from ._driver_log import DRIVER_LOG_PARTS
from ._errors import BadRequest, NotFound
from ._json import json_response
from ._run_files import run_files, store_body
from ._state import ARTIFACTS, DATABASE
from ._validate import check_file_name, parse_bool, parse_run_id

__all__ = ["routes"]

routes = web.RouteTableDef()

# Any characters, newlines included, so that every bad name reaches the name
# check and is answered 400 rather than falling through to a 404.
_FILE_ROUTE: Final = r"/api/runs/{run_id}/files/{name:[\s\S]+}"
_CONTENT_TYPE: Final = re.compile(r"^[A-Za-z0-9][\w.+-]*/[\w.+-]+(\s*;\s*[\w.+-]+=(\"?)[\w.+/-]+\2)*$", re.ASCII)
# Shown in the browser; anything else (HTML, SVG, scripts) downloads, so an
# uploaded file can never run script in the service's origin.
_INLINE: Final = re.compile(r"^(image/(png|jpeg|gif|webp|bmp)|text/plain|application/json|application/pdf)\b")
# Text a user opens to read (logs, code, configs, CSV) is shown as plain text, as
# MLflow's artifact viewer does: text/plain with nosniff never runs anything.
_READ_AS_TEXT: Final = re.compile(r"^text/(?!html|xml)[\w.+-]+\b", re.IGNORECASE)
_TEXT_SUFFIXES: Final = (".log", ".out", ".err", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".ipynb")


def _served_type(name: str, stored: str) -> str:
    """The Content-Type a download is served with (the stored one stays in listings)."""
    if _INLINE.match(stored):
        return stored
    untyped = stored.split(";")[0].strip().lower() == "application/octet-stream"
    if _READ_AS_TEXT.match(stored) or (untyped and name.lower().endswith(_TEXT_SUFFIXES)):
        return "text/plain; charset=utf-8"
    return stored


def _content_type(request: web.Request, name: str) -> str:
    given = request.headers.get("Content-Type", "").strip()
    if given and given.split(";")[0].strip().lower() != "application/octet-stream":
        if len(given) > 255 or not _CONTENT_TYPE.match(given):
            raise BadRequest(f"Content-Type {given[:80]!r} is not a media type", parameter="Content-Type")
        return given
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or "application/octet-stream"


def _overwrite(request: web.Request) -> bool:
    return parse_bool(request.query.get("overwrite"), "overwrite")


@routes.put(_FILE_ROUTE)
async def put_file(request: web.Request) -> web.Response:
    """Store the body as the run's file ``name``; the run need not be ingested yet."""
    run_id = parse_run_id(request.match_info["run_id"])
    name = check_file_name(request.match_info["name"])
    if name.startswith(DRIVER_LOG_PARTS):
        raise BadRequest(
            f"file names under {DRIVER_LOG_PARTS!r} hold the driver log; append with PUT .../logs/driver",
            code="bad_file_name",
            parameter="name",
        )
    record = await store_body(
        request, run_id, name, content_type=_content_type(request, name), overwrite=_overwrite(request)
    )
    return json_response(record.as_json(), status=201)


@routes.get("/api/runs/{run_id}/files")
async def list_files(request: web.Request) -> web.Response:
    run_id = parse_run_id(request.match_info["run_id"])
    files = await run_files(request.app[DATABASE], run_id)
    return json_response({"files": [f.as_json() for f in files]})


@routes.get(_FILE_ROUTE)
async def get_file(request: web.Request) -> web.StreamResponse:
    run_id = parse_run_id(request.match_info["run_id"])
    name = check_file_name(request.match_info["name"])
    record = await request.app[DATABASE].get_file(run_id, name)
    if record is None:
        raise NotFound(f"run {run_id} has no file {name!r}", code="file_not_found", parameter="name")
    store = request.app[ARTIFACTS]
    blob = await store.get(record.digest)
    served = _served_type(name, record.content_type)
    disposition = "inline" if _INLINE.match(served) else "attachment"
    headers = {
        "Content-Type": served,
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(name.rsplit('/', 1)[-1])}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
    }
    return await blob_response(request, store, blob, headers)
