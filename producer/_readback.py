"""The read-back calls of one run: what the query service holds of it.

Every read goes through :class:`producer._consistency.Reader`, so it sees
what this process wrote before it: name the runs a read covers (``runs=``),
the reader flushes this process's sessions of those runs and has the service
wait, at most ``read_consistency_seconds``, until ingest has stored them. An
offline run has no service to ask: the ``Run`` refuses such reads before they
get here; what it may read anyway (its record, tags, properties) reads as {}.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from producer._consistency import LEDGER, Reader
from producer._errors import RunNotFoundError
from producer._http import Params, QueryClient, quote
from producer._submit import DriverLogFollower
from runstream.events import TERMINAL_STATUSES


def file_path(run_id: str, name: str) -> str:
    """The API path of the run's file ``name``."""
    return f"/api/runs/{run_id}/files/{quote(name)}"


class ReadBack:
    """Reads of the run stored as ``run_id``."""

    def __init__(self, http: QueryClient, *, run_id: str, offline: bool, wait_seconds: float) -> None:
        self.http = http
        self.run_id = run_id
        self.offline = offline
        self.wait_seconds = wait_seconds
        self._record: dict[str, Any] | None = None

    def reader(self) -> Reader:
        """The one way to read the query service: each read sees what this process wrote before it."""
        return Reader(self.http, self.wait_seconds)

    def json(self, path: str, params: Params = (), *, runs: Collection[str] | None = None) -> Any:
        """A read that sees this process's writes to ``runs`` (default: this run)."""
        return self.reader().get_json(path, params, runs=(self.run_id,) if runs is None else runs)

    def bytes(self, path: str) -> bytes:
        """A small file of the run, read as :meth:`json` reads."""
        return self.reader().get_bytes(path, runs=(self.run_id,))

    def file_path(self, name: str) -> str:
        return file_path(self.run_id, name)

    def details(self) -> dict[str, Any]:
        """The query service's record of the run."""
        return dict(self.json(f"/api/runs/{self.run_id}"))

    def record(self) -> dict[str, Any]:
        """The service's record, read once and kept ({} while it has none): for what never changes."""
        if self._record is None:
            if self.offline:
                return {}
            try:
                self._record = self.details()
            except RunNotFoundError:
                return {}  # not ingested yet: ask again next time
        return self._record

    def keep_record(self, doc: dict[str, Any]) -> None:
        """The service's record, as a listing already returned it."""
        self._record = doc

    def field(self, key: str) -> dict[str, Any]:
        """A dict field of the record (``tags``, ``properties``), read now; {} offline or not ingested yet."""
        value = self._fresh_record().get(key)
        return dict(value) if isinstance(value, dict) else {}

    def text(self, key: str) -> str | None:
        """A text field of the record (``description``), read now; None offline or not ingested yet."""
        value = self._fresh_record().get(key)
        return value if isinstance(value, str) else None

    def _fresh_record(self) -> dict[str, Any]:
        if self.offline:
            return {}
        try:
            details = self.json(f"/api/runs/{self.run_id}")
        except RunNotFoundError:
            return {}  # not ingested yet: our own copy is all there is
        return details if isinstance(details, dict) else {}

    def status(self) -> str:
        return str(self.json(f"/api/runs/{self.run_id}")["status"])

    def file_names(self) -> list[str]:
        doc = self.json(f"/api/runs/{self.run_id}/files")
        return [entry["name"] for entry in doc.get("files", [])]

    def download(self, name: str, target: Path) -> None:
        self.reader().download(self.file_path(name), target, runs=(self.run_id,))

    def metrics(self, name: str | None, recursive: bool) -> dict[str, Any]:
        params = {}
        if name is not None:
            params["name"] = name
        if recursive:
            params["recursive"] = "true"
        covered = {self.run_id, *LEDGER.descendants(self.run_id)} if recursive else {self.run_id}
        result: dict[str, Any] = self.reader().get_json(
            f"/api/runs/{self.run_id}/metrics", params or None, runs=covered
        )
        return result

    def wait_for_terminal(
        self, *, show_output: bool, timeout_seconds: float | None, poll_interval_seconds: float
    ) -> dict[str, Any]:
        """Poll until the run's status is terminal (printing the driver log if ``show_output``); its record."""
        log = DriverLogFollower(self.http if show_output else None, self.run_id)
        deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
        reader = self.reader()
        while True:
            log.print_new()
            try:
                details = dict(reader.get_json(f"/api/runs/{self.run_id}", runs=(self.run_id,)))
            except RunNotFoundError:
                details = {"status": None}  # not ingested yet
            if details.get("status") in TERMINAL_STATUSES:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {self.run_id} still {details.get('status')} after {timeout_seconds}s")
            time.sleep(poll_interval_seconds)
        log.print_new()
        return details
