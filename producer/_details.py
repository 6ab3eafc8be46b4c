"""``get_details()`` in Azure ML v1's shape, beside runstream's own keys.

The query service answers a run in runstream's terms (``id``, ``created_at``,
``started_at``, ``ended_at``...). v1 scripts read other keys, which are added
here (runstream's stay, ``producer`` counters included):

===============  =============================================================
key              value
===============  =============================================================
runId            the run's id (``OfflineRun_...`` for an offline run)
target           ``local`` for a submitted script, ``sdk`` for a logging run
status           as ``get_status()``
startTimeUtc     when it started, ``2024-05-01T12:00:00.123456Z``
endTimeUtc       when it ended; absent while it runs (as in v1)
properties       as ``get_properties()``
tags             as ``get_tags()``
inputDatasets    ``[]`` (datasets are an Azure service)
outputDatasets   ``[]``
runDefinition    a submitted run's script, arguments, target, environment...;
                 ``{}`` for a run started by logging
logFiles         ``{name: URL}`` of the run's logs (``logs/driver.log`` of a
                 submitted script, files under ``logs/``, ``azureml-logs/``...)
submittedBy      the user who submitted the script, if recorded
===============  =============================================================

A submitted run's definition is stored as its file :data:`RUN_DEFINITION_FILE`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from producer._http import quote
from runstream.events import TERMINAL_STATUSES

if TYPE_CHECKING:
    from producer._readback import ReadBack

#: Where submission stores ``{"runDefinition": ..., "submittedBy": ...}`` among the run's files.
RUN_DEFINITION_FILE = "azureml-setup/run_definition.json"
#: The driver log of a submitted script, as a file once the script has ended.
DRIVER_LOG = "logs/driver.log"
_LOG_PREFIXES = ("logs/", "azureml-logs/", "user_logs/", "system_logs/")


def v1_details(reads: ReadBack, run_id: str, doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` (the query service's record of the run ``run_id``) with v1's keys added."""
    details = dict(doc)
    names = [] if reads.offline else reads.file_names()
    definition = _definition(reads) if RUN_DEFINITION_FILE in names else {}
    submitted = bool(definition.get("runDefinition"))
    properties = details.get("properties") or {}
    details["runId"] = run_id
    details["target"] = properties.get("_azureml.ComputeTargetType") or ("local" if submitted else "sdk")
    details["startTimeUtc"] = _utc(doc.get("started_at") or doc.get("created_at"))
    ended = _utc(doc.get("ended_at"))
    if ended is not None and doc.get("status") in TERMINAL_STATUSES:
        details["endTimeUtc"] = ended
    details.setdefault("properties", {})
    details.setdefault("tags", {})
    details["inputDatasets"] = []
    details["outputDatasets"] = []
    details["runDefinition"] = definition.get("runDefinition") or {}
    details["logFiles"] = _log_files(reads, names, submitted)
    details["submittedBy"] = definition.get("submittedBy")
    return details


def with_logs(reads: ReadBack, details: dict[str, Any]) -> dict[str, Any]:
    """v1's ``get_details_with_logs``: ``logFiles`` maps each log's name to its text."""
    texts = {}
    for name in details["logFiles"]:
        texts[name] = driver_log_text(reads) if name == DRIVER_LOG else _file_text(reads, name)
    return {**details, "logFiles": texts}


def driver_log_text(reads: ReadBack) -> str:
    """The whole driver log, however far the script has got (read in pages from the log API)."""
    url = f"/api/runs/{reads.run_id}/logs/driver"
    parts: list[str] = []
    offset = 0
    while True:
        page = reads.json(url, [("offset", str(offset))])
        parts.append(page["text"])
        if page["next_offset"] <= offset or page["next_offset"] >= page["size"]:
            return "".join(parts)
        offset = page["next_offset"]


def _definition(reads: ReadBack) -> dict[str, Any]:
    doc = orjson.loads(reads.bytes(reads.file_path(RUN_DEFINITION_FILE)))
    return doc if isinstance(doc, dict) else {}


def _file_text(reads: ReadBack, name: str) -> str:
    return reads.bytes(reads.file_path(name)).decode("utf-8", errors="replace")


def _log_files(reads: ReadBack, names: list[str], submitted: bool) -> dict[str, str]:
    base = reads.http.url(f"/api/runs/{reads.run_id}")
    logs = {n: f"{base}/files/{quote(n)}" for n in names if n.startswith(_LOG_PREFIXES)}
    if submitted and DRIVER_LOG not in logs:
        logs[DRIVER_LOG] = f"{base}/logs/driver"  # still running: the log so far
    return dict(sorted(logs.items()))


def _utc(value: Any) -> str | None:
    """An ISO time as v1 writes it: UTC, microseconds, ``Z``."""
    if not value:
        return None
    when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
