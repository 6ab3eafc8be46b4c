"""A small S3 client: the dozen calls the artifact store makes, signed with AWS Signature Version 4 over aiohttp.

Why not aiobotocore: the query service already streams every body through
aiohttp, and the store needs twelve calls of one service. aiobotocore would
add botocore (tens of megabytes of service models, pinned to a narrow range
that clashes with any boto3 beside it) and a second HTTP stack with its own
pool, timeouts and streaming types, for nothing the store uses. SigV4 is a
public, stable algorithm; :func:`sign` implements it in one place and the
tests check it against AWS's published example and botocore's signer, and
run every call against a real S3-compatible server that verifies signatures.

The same code talks to AWS S3, MinIO, GCS's XML API (HMAC keys) and
Cloudflare R2: they differ only in the endpoint, the region to sign for and
the addressing style (``bucket.host/key`` or ``host/bucket/key``), all
settings (:class:`runstream.config.S3Settings`). Credentials come from those
settings only (the environment or 0600 files), read when the client starts.

Every request body is in memory when it is sent (one multipart part at
most), so each is signed with its own SHA-256 (S3 then checks the bytes it
received) and may be retried: idempotent calls are retried on 5xx, throttling
and dropped connections, three times with a growing pause.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import logging
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree  # noqa: S405 - parses the answers of the operator's own object store

import aiohttp
import yarl

from runstream.config import S3Settings

__all__ = ["EMPTY_SHA256", "ObjectInfo", "S3Client", "S3Error", "Upload", "sign"]

EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()
_NS: Final = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_RETRIES: Final = 3
_RETRY_STATUSES: Final = frozenset({500, 502, 503, 504})
_log = logging.getLogger("query.s3")


class S3Error(Exception):
    """The object store refused a request: its HTTP status, S3 error code and message."""

    def __init__(self, status: int, code: str, message: str, *, key: str = "") -> None:
        super().__init__(f"S3 {status} {code}{f' on {key}' if key else ''}: {message}")
        self.status = status
        self.code = code


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: float  # epoch seconds, the store's clock


@dataclass(frozen=True, slots=True)
class Upload:
    """A multipart upload that was started and not completed or aborted."""

    key: str
    upload_id: str
    initiated: float


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sign(
    *,
    method: str,
    host: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    payload_sha256: str,
    when: datetime,
    region: str,
    access_key_id: str,
    secret_access_key: str,
    service: str = "s3",
) -> str:
    """The ``Authorization`` header of a request (SigV4, header form).

    ``path`` is already percent-encoded as it is sent; ``query`` holds raw
    values; every header in ``headers`` is signed, along with ``host``.
    """
    stamp = when.strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    signed = {k.lower(): " ".join(str(v).split()) for k, v in headers.items()}
    signed["host"] = host
    names = sorted(signed)
    canonical_query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items()))
    canonical = "\n".join(
        [
            method,
            path,
            canonical_query,
            "".join(f"{name}:{signed[name]}\n" for name in names),
            ";".join(names),
            payload_sha256,
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret_access_key}".encode(), day), region), service), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    credential = f"{access_key_id}/{scope}"
    return f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={';'.join(names)}, Signature={signature}"


class S3Client:
    """One bucket of an S3-compatible service; ``start()`` opens the HTTP pool, ``stop()`` is idempotent."""

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._secret = ""
        self._token: str | None = None
        endpoint = settings.endpoint_url or f"https://s3.{settings.region}.amazonaws.com"
        parts = urlsplit(endpoint)
        self._scheme = parts.scheme
        self._host = parts.netloc
        if settings.addressing_style == "virtual":
            self._host = f"{settings.bucket}.{parts.netloc}"
            self._base_path = ""
        else:
            self._base_path = "/" + quote(settings.bucket, safe="")

    async def start(self) -> None:
        if self._session is not None:
            return
        self._secret = self.settings.secret_access_key()  # read now: a rotated key is taken at the next start
        self._token = self.settings.session_token()
        context: ssl.SSLContext | bool = True
        if self.settings.ca_file is not None:
            context = ssl.create_default_context(cafile=self.settings.ca_file)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64, ssl=context),
            timeout=aiohttp.ClientTimeout(total=None, connect=10, sock_read=60),
            auto_decompress=False,
        )

    async def stop(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # --- the calls ----------------------------------------------------------------------

    async def put_object(self, key: str, body: bytes) -> None:
        await self._call("PUT", key, body=body)

    async def create_multipart_upload(self, key: str) -> str:
        root = await self._call_xml("POST", key, query={"uploads": ""})
        return _text(root, "UploadId")

    async def upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> str:
        query = {"partNumber": str(number), "uploadId": upload_id}
        async with self._request("PUT", key, query=query, body=body) as resp:
            return resp.headers["ETag"]

    async def complete_multipart_upload(self, key: str, upload_id: str, etags: list[str]) -> None:
        parts = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>" for n, e in enumerate(etags, 1))
        body = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
        # S3 may answer 200 with an error in the body (a failure found after the headers went out).
        await self._call_xml("POST", key, query={"uploadId": upload_id}, body=body)

    async def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        await self._call("DELETE", key, query={"uploadId": upload_id}, missing_ok=True)

    async def copy_object(self, source: str, key: str) -> None:
        """Server-side copy (up to 5 GiB; :meth:`upload_part_copy` beyond), which sets a new LastModified."""
        await self._call_xml("PUT", key, headers={"x-amz-copy-source": self._copy_source(source)})

    async def upload_part_copy(self, source: str, key: str, upload_id: str, number: int, first: int, last: int) -> str:
        headers = {"x-amz-copy-source": self._copy_source(source), "x-amz-copy-source-range": f"bytes={first}-{last}"}
        root = await self._call_xml(
            "PUT", key, query={"partNumber": str(number), "uploadId": upload_id}, headers=headers
        )
        return _text(root, "ETag")

    async def head_object(self, key: str) -> ObjectInfo | None:
        try:
            async with self._request("HEAD", key) as resp:
                modified = parsedate_to_datetime(resp.headers["Last-Modified"]).timestamp()
                return ObjectInfo(key, int(resp.headers["Content-Length"]), modified)
        except S3Error as exc:
            if exc.status == 404:
                return None
            raise

    async def get_object(self, key: str, *, first: int, last: int, chunk_bytes: int) -> AsyncIterator[bytes]:
        """Bytes ``first..last`` (inclusive) of the object, streamed as they arrive."""
        async with self._request("GET", key, headers={"Range": f"bytes={first}-{last}"}) as resp:
            async for chunk in resp.content.iter_chunked(chunk_bytes):
                yield chunk

    async def delete_object(self, key: str) -> None:
        await self._call("DELETE", key, missing_ok=True)

    async def list_objects(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        """Every object under ``prefix``, 1,000 per request (ListObjectsV2)."""
        token: str | None = None
        while True:
            query = {"list-type": "2", "prefix": prefix} | ({"continuation-token": token} if token else {})
            root = await self._call_xml("GET", None, query=query)
            for item in root.iter(f"{_NS}Contents"):
                modified = datetime.fromisoformat(_text(item, "LastModified").replace("Z", "+00:00")).timestamp()
                yield ObjectInfo(_text(item, "Key"), int(_text(item, "Size")), modified)
            token = _text(root, "NextContinuationToken", "")
            if _text(root, "IsTruncated", "false") != "true" or not token:
                return

    async def list_multipart_uploads(self, prefix: str) -> AsyncIterator[Upload]:
        markers: dict[str, str] = {}
        while True:
            root = await self._call_xml("GET", None, query={"uploads": "", "prefix": prefix} | markers)
            for item in root.iter(f"{_NS}Upload"):
                initiated = datetime.fromisoformat(_text(item, "Initiated").replace("Z", "+00:00")).timestamp()
                yield Upload(_text(item, "Key"), _text(item, "UploadId"), initiated)
            if _text(root, "IsTruncated", "false") != "true":
                return
            markers = {
                "key-marker": _text(root, "NextKeyMarker", ""),
                "upload-id-marker": _text(root, "NextUploadIdMarker", ""),
            }

    async def server_time(self) -> float:
        """The store's clock (its ``Date`` header), which stamps LastModified: epoch seconds."""
        async with self._request("GET", None, query={"list-type": "2", "max-keys": "0"}) as resp:
            return parsedate_to_datetime(resp.headers["Date"]).timestamp()

    # --- requests -----------------------------------------------------------------------

    def _path(self, key: str | None) -> str:
        if key is None:
            return self._base_path or "/"
        return f"{self._base_path}/{quote(key, safe='/-_.~')}"

    def _copy_source(self, key: str) -> str:
        return quote(f"{self.settings.bucket}/{key}", safe="/-_.~")

    def _request(
        self,
        method: str,
        key: str | None,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> _Exchange:
        return _Exchange(self, method, key, dict(query or {}), dict(headers or {}), body)

    async def _call(
        self,
        method: str,
        key: str | None,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        missing_ok: bool = False,
    ) -> bytes:
        try:
            async with self._request(method, key, query=query, headers=headers, body=body) as resp:
                return await resp.read()
        except S3Error as exc:
            if missing_ok and exc.status == 404:
                return b""
            raise

    async def _call_xml(self, method: str, key: str | None, **options: Any) -> ElementTree.Element:
        """:meth:`_call` (same options), its XML answer parsed; an error in a 200 answer raised."""
        data = await self._call(method, key, **options)
        root = ElementTree.fromstring(data)  # noqa: S314 - the operator's own object store
        if root.tag in ("Error", f"{_NS}Error"):
            raise S3Error(200, _text(root, "Code", "?"), _text(root, "Message", ""), key=key or "")
        return root

    def _signed_headers(
        self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes
    ) -> dict[str, str]:
        when = datetime.now(UTC)
        digest = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
        out = {**headers, "x-amz-date": when.strftime("%Y%m%dT%H%M%SZ"), "x-amz-content-sha256": digest}
        if self._token:
            out["x-amz-security-token"] = self._token
        out["Authorization"] = sign(
            method=method,
            host=self._host,
            path=path,
            query=query,
            headers=out,
            payload_sha256=digest,
            when=when,
            region=self.settings.region,
            access_key_id=self.settings.access_key_id or "",
            secret_access_key=self._secret,
        )
        out["Host"] = self._host
        return out


class _Exchange:
    """One request with its retries: ``async with`` gives the response once it is 2xx."""

    def __init__(
        self,
        client: S3Client,
        method: str,
        key: str | None,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
    ) -> None:
        self._client, self._method, self._key = client, method, key
        self._query, self._headers, self._body = query, headers, body
        self._response: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> aiohttp.ClientResponse:
        client = self._client
        if client._session is None:
            raise RuntimeError("the S3 client is not started")
        path = client._path(self._key)
        query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in self._query.items())
        url = yarl.URL(f"{client._scheme}://{client._host}{path}" + (f"?{query}" if query else ""), encoded=True)
        delay = 0.2
        for attempt in range(_RETRIES + 1):
            headers = client._signed_headers(self._method, path, self._query, self._headers, self._body)
            try:
                resp = await client._session.request(
                    # A file-like body: aiohttp sends it in pieces instead of one write that holds the loop.
                    self._method,
                    url,
                    headers=headers,
                    data=io.BytesIO(self._body) if self._body else None,
                    skip_auto_headers={"Content-Type"},
                )
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                if attempt == _RETRIES:
                    raise
                _log.warning("S3 %s %s failed (%r); retrying in %.1fs", self._method, self._key, exc, delay)
            else:
                if resp.status < 300:
                    self._response = resp
                    return resp
                error = await _error(resp, self._key or "")
                resp.release()
                if not (resp.status in _RETRY_STATUSES or error.code == "SlowDown") or attempt == _RETRIES:
                    raise error
                _log.warning("S3 %s %s: %s; retrying in %.1fs", self._method, self._key, error, delay)
            await asyncio.sleep(delay)  # a pause before a retry, growing
            delay *= 3
        raise AssertionError("unreachable")  # pragma: no cover

    async def __aexit__(self, *exc: object) -> None:
        if self._response is not None:
            self._response.release()


async def _error(resp: aiohttp.ClientResponse, key: str) -> S3Error:
    body = await resp.read() if resp.method != "HEAD" else b""
    code, message = {404: "NotFound", 403: "Forbidden"}.get(resp.status, "Error"), resp.reason or ""
    if body.startswith(b"<"):
        try:
            root = ElementTree.fromstring(body)  # noqa: S314 - the operator's own object store
            code, message = _text(root, "Code", code), _text(root, "Message", message)
        except ElementTree.ParseError:
            pass
    return S3Error(resp.status, code, message, key=key)


def _text(element: ElementTree.Element, name: str, default: str | None = None) -> str:
    found = element.find(f"{_NS}{name}")
    if found is None:
        found = element.find(name)  # errors come without the namespace
    if found is None or found.text is None:
        if default is None:
            raise S3Error(200, "MalformedResponse", f"no <{name}> in the answer")
        return default
    return found.text
