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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeAlias

from producer._errors import QueryServiceError, RunNotFoundError
from runstream.events import decode_json_value

#: Query parameters: a mapping, or pairs where a parameter repeats (``tag=a&tag=b``).
Params: TypeAlias = Mapping[str, str] | Sequence[tuple[str, str]]


class QueryClient:
    """The query service's HTTP API for one workspace."""

    def __init__(
        self, base_url: str, token: str | None, timeout_seconds: float = 30.0, *, write_token: str | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._read_token = token or write_token
        self._write_token = write_token or token
        self._timeout = timeout_seconds

    @property
    def timeout_seconds(self) -> float:
        """How long a call waits for the service (a read it may hold adds its wait to this)."""
        return self._timeout

    def url(self, path: str, params: Params | None = None) -> str:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        return f"{self.base_url}{path}{query}"

    def get_json(
        self,
        path: str,
        params: Params | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_seconds: float | None = None,
    ) -> Any:
        """GET and decode; ``timeout_seconds`` replaces the client's (a read the service may hold)."""
        with self._open("GET", self.url(path, params), None, headers, timeout_seconds) as resp:
            return decode_json_value(json.loads(resp.read()))

    def put(self, path: str, body: bytes | IO[bytes], size: int, content_type: str) -> Any:
        headers = {"Content-Type": content_type, "Content-Length": str(size)}
        with self._open("PUT", self.url(path), body, headers) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def get_bytes(
        self, path: str, *, headers: Mapping[str, str] | None = None, timeout_seconds: float | None = None
    ) -> bytes:
        """A small file's content, in memory (a large one: :meth:`download`)."""
        with self._open("GET", self.url(path), None, headers, timeout_seconds) as resp:
            return bytes(resp.read())

    def download(
        self,
        path: str,
        destination: Path,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_seconds: float | None = None,
    ) -> None:
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(destination.name + ".part")
        with self._open("GET", self.url(path), None, headers, timeout_seconds) as resp, partial.open("wb") as out:
            shutil.copyfileobj(resp, out)
        os.replace(partial, destination)

    def _open(
        self,
        method: str,
        url: str,
        body: bytes | IO[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_seconds: float | None = None,
    ) -> Any:
        request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))  # noqa: S310 - http(s) checked by Workspace
        token = self._read_token if method == "GET" else self._write_token
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        request.add_header("Accept", "application/json")
        timeout = self._timeout if timeout_seconds is None else timeout_seconds
        try:
            return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - http(s) checked by Workspace
        except urllib.error.HTTPError as exc:
            doc = _error_doc(exc)
            message, code = _error_message(doc)
            if exc.code == 404:
                raise RunNotFoundError(f"{method} {url}: 404 {message}", 404, code=code, body=doc) from None
            raise QueryServiceError(f"{method} {url}: {exc.code} {message}", exc.code, code=code, body=doc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise QueryServiceError(f"{method} {url}: query service unreachable ({reason})") from None


def _error_doc(exc: urllib.error.HTTPError) -> Any:
    """The error answer's JSON document, else its text (or reason) as a str."""
    try:
        raw = exc.read()
    except OSError:
        return exc.reason or ""
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")[:500]


def _error_message(doc: Any) -> tuple[str, str | None]:
    """(message, error code) of an error answer."""
    if isinstance(doc, str):
        return doc, None
    if isinstance(doc, dict) and "error" in doc:
        error = doc["error"]
        if isinstance(error, dict) and "message" in error:
            code = error.get("code")
            return f"{code or 'error'}: {error['message']}", code if isinstance(code, str) else None
        return str(error), None
    return str(doc)[:500], None


def quote(name: str) -> str:
    """A file name as a URL path, keeping its slashes."""
    return urllib.parse.quote(name, safe="/")
