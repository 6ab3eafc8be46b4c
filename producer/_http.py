"""A small blocking client for the query service, run in the caller's thread.

It uses urllib (no extra dependency): these calls are rare (status, metrics,
files) and never on the logging hot path. Reads present the read token and
uploads the write token (each falling back to the other when only one is
set), as the query service's auth expects. Error statuses become
:class:`QueryServiceError` (404: :class:`RunNotFoundError`) with the body's
message; JSON answers are decoded, non-finite floats restored.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO, Any

from producer._errors import QueryServiceError, RunNotFoundError
from runstream.events import decode_json_value


class QueryClient:
    """The query service's HTTP API for one workspace."""

    def __init__(
        self, base_url: str, token: str | None, timeout_seconds: float = 30.0, *, write_token: str | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._read_token = token or write_token
        self._write_token = write_token or token
        self._timeout = timeout_seconds

    def url(self, path: str, params: dict[str, str] | None = None) -> str:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        return f"{self.base_url}{path}{query}"

    def get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        with self._open("GET", self.url(path, params)) as resp:
            return decode_json_value(json.loads(resp.read()))

    def put(self, path: str, body: bytes | IO[bytes], size: int, content_type: str) -> Any:
        headers = {"Content-Type": content_type, "Content-Length": str(size)}
        with self._open("PUT", self.url(path), body, headers) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def get_bytes(self, path: str) -> bytes:
        """A small file's content, in memory (a large one: :meth:`download`)."""
        with self._open("GET", self.url(path)) as resp:
            return bytes(resp.read())

    def download(self, path: str, destination: Path) -> None:
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(destination.name + ".part")
        with self._open("GET", self.url(path)) as resp, partial.open("wb") as out:
            shutil.copyfileobj(resp, out)
        os.replace(partial, destination)

    def _open(
        self, method: str, url: str, body: bytes | IO[bytes] | None = None, headers: dict[str, str] | None = None
    ) -> Any:
        request = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310 - http(s) checked by Workspace
        token = self._read_token if method == "GET" else self._write_token
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        request.add_header("Accept", "application/json")
        try:
            return urllib.request.urlopen(request, timeout=self._timeout)  # noqa: S310 - http(s) checked by Workspace
        except urllib.error.HTTPError as exc:
            message = _error_message(exc)
            if exc.code == 404:
                raise RunNotFoundError(f"{method} {url}: 404 {message}", 404) from None
            raise QueryServiceError(f"{method} {url}: {exc.code} {message}", exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise QueryServiceError(f"{method} {url}: query service unreachable ({reason})") from None


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        raw = exc.read()
    except OSError:
        return exc.reason or ""
    try:
        doc = json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")[:500]
    if isinstance(doc, dict) and "error" in doc:
        error = doc["error"]
        if isinstance(error, dict) and "message" in error:
            return f"{error.get('code', 'error')}: {error['message']}"
        return str(error)
    return str(doc)[:500]


def quote(name: str) -> str:
    """A file name as a URL path, keeping its slashes."""
    return urllib.parse.quote(name, safe="/")
