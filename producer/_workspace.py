"""Where runs are sent: the Kafka bootstrap servers, the topic, the query service, the tokens.

``Workspace.from_config()`` reads ``<RUNSTREAM_HOME>/config.json`` (written by
``runstream up``) when it exists and ``RUNSTREAM_*`` variables otherwise. The
tokens never come from the file: only from ``RUNSTREAM_TOKEN`` (reads) and
``RUNSTREAM_WRITE_TOKEN`` (uploads) or the constructor, so a config file can be
shared without leaking them. Kafka's security (``kafka_security``, the
``RUNSTREAM_KAFKA_*`` variables) may be in the file, but never a secret: a
password or key passphrase only as the name of a 0600 file holding it, and no
OAUTHBEARER token command (a config file must not run programs).

A workspace also has Azure ML v1's identity - ``name``, ``subscription_id``,
``resource_group``, ``location`` - which scripts print and pass around but
which selects nothing here: one runstream deployment is one workspace. It
comes from the config file (v1's own ``config.json`` keys ``workspace_name``,
``subscription_id``, ``resource_group`` are read too, so an Azure config file
works as it is), else ``RUNSTREAM_WORKSPACE_NAME``, ``RUNSTREAM_SUBSCRIPTION_ID``,
``RUNSTREAM_RESOURCE_GROUP``, ``RUNSTREAM_LOCATION``, else the local defaults.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiokafka import codec

from producer._errors import WorkspaceConfigError
from producer._http import QueryClient
from runstream.config import ConfigError, KafkaSecurity, Settings

if TYPE_CHECKING:
    from producer._experiment import Experiment
    from producer._run import Run

_CONFIG_KEYS = ("kafka_bootstrap", "query_url", "topic")
#: Azure ML v1's config.json keys (``workspace_name`` is ``Workspace.name``).
_IDENTITY_KEYS = ("workspace_name", "subscription_id", "resource_group", "location")


def _default_compression() -> str | None:
    # Fastest codec this installation can both write and (ingest, same venv) read.
    for name, available in (("zstd", codec.has_zstd), ("lz4", codec.has_lz4), ("gzip", codec.has_gzip)):
        if available():
            return name
    return None


@dataclass(frozen=True, kw_only=True)
class LoggingOptions:
    """How a run buffers and sends; the defaults suit a training loop on one machine.

    ``flush_points`` / ``flush_interval_seconds``: the sender publishes when this
    many points are waiting or this long has passed, whichever comes first.
    ``max_buffered_points``: points held in memory (buffered or in flight);
    past it ``log()`` blocks while the sender spills what it holds to the
    spool (at once, without waiting ``spill_after_seconds``), at most
    ``buffer_timeout_seconds``, then raises :class:`BufferFullError` (the
    value is not buffered). ``close_timeout_seconds`` bounds ``complete()``,
    ``fail()``, ``cancel()`` and the flush at interpreter exit.
    ``spool``: when Kafka has failed for ``spill_after_seconds``, records go to
    the local spool (``<RUNSTREAM_HOME>/spool``) and are replayed when Kafka
    returns, so a long outage neither blocks nor fails the training loop.
    ``heartbeat_interval_seconds``: how often a running run tells ingest it is
    alive (ingest marks it ``NotResponding``, then ``Failed``, when they stop).
    ``request_timeout_seconds`` bounds one Kafka request (and query service call).
    ``read_consistency_seconds``: how long a read (``get_metrics()``,
    ``get_status()``...) waits for ingest to store what this process wrote
    before it, then raises :class:`ReadConsistencyError` rather than answer
    without it (0: raise at once if ingest is behind; see :mod:`producer._consistency`).
    """

    flush_points: int = 50_000
    flush_interval_seconds: float = 0.1
    max_buffered_points: int = 2_000_000
    buffer_timeout_seconds: float = 30.0
    heartbeat_interval_seconds: float = 5.0
    close_timeout_seconds: float = 60.0
    request_timeout_seconds: float = 10.0
    spool: bool = True
    spill_after_seconds: float = 5.0
    compression: str | None = field(default_factory=_default_compression)
    read_consistency_seconds: float = 30.0

    def __post_init__(self) -> None:
        for key in ("flush_points", "max_buffered_points"):
            value = getattr(self, key)
            if type(value) is not int or value < 1:
                raise WorkspaceConfigError(f"LoggingOptions.{key} must be a positive int, got {value!r}")
        if self.max_buffered_points < self.flush_points:
            raise WorkspaceConfigError(
                f"LoggingOptions.max_buffered_points ({self.max_buffered_points}) "
                f"is below flush_points ({self.flush_points})"
            )
        for key in (
            "flush_interval_seconds",
            "buffer_timeout_seconds",
            "heartbeat_interval_seconds",
            "close_timeout_seconds",
            "request_timeout_seconds",
            "spill_after_seconds",
        ):
            value = getattr(self, key)
            if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
                raise WorkspaceConfigError(f"LoggingOptions.{key} must be a positive number of seconds, got {value!r}")
        wait = self.read_consistency_seconds
        if not isinstance(wait, int | float) or isinstance(wait, bool) or not 0 <= wait < float("inf"):
            raise WorkspaceConfigError(
                f"LoggingOptions.read_consistency_seconds must be zero or a positive number of seconds, got {wait!r}"
            )
        if self.compression not in (None, "gzip", "lz4", "zstd", "snappy"):
            raise WorkspaceConfigError(
                f"LoggingOptions.compression {self.compression!r} is not gzip, lz4, zstd, snappy or None"
            )


class Workspace:
    """Connection settings shared by the experiments and runs created from it.

    ``Workspace(subscription_id, resource_group, workspace_name)`` as in Azure
    ML v1 names the workspace and connects to the ``RUNSTREAM_*`` settings;
    ``auth`` is accepted and ignored (the query service's token is
    ``RUNSTREAM_TOKEN``). Connection arguments not given come from the settings.
    """

    def __init__(
        self,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        workspace_name: str | None = None,
        auth: Any = None,
        *,
        kafka_bootstrap: str | None = None,
        query_url: str | None = None,
        token: str | None = None,
        write_token: str | None = None,
        topic: str = "runstream.events",
        options: LoggingOptions | None = None,
        home: str | os.PathLike[str] | None = None,
        location: str | None = None,
        kafka_security: KafkaSecurity | None = None,
    ) -> None:
        settings = Settings.from_env()  # what the arguments leave out
        if query_url is None:
            # The settings' service, so its tokens too.
            query_url, token, write_token = (
                settings.query_url,
                token or settings.token,
                write_token or settings.write_token,
            )
        if kafka_bootstrap is None:
            # The settings' cluster, so its security too (by default the local stack's SASL user).
            kafka_bootstrap, kafka_security = settings.kafka_bootstrap, kafka_security or settings.kafka_security
        if kafka_security is not None and not isinstance(kafka_security, KafkaSecurity):
            raise WorkspaceConfigError("Workspace kafka_security must be a runstream.config.KafkaSecurity or None")
        for key, value in (("kafka_bootstrap", kafka_bootstrap), ("query_url", query_url), ("topic", topic)):
            if not isinstance(value, str) or not value.strip():
                raise WorkspaceConfigError(f"Workspace {key} must be a non-empty str, got {value!r}")
        if not query_url.startswith(("http://", "https://")):
            raise WorkspaceConfigError(f"Workspace query_url {query_url!r} is not an http(s) URL")
        for key, secret in (("token", token), ("write_token", write_token)):
            if secret is not None and not isinstance(secret, str):
                raise WorkspaceConfigError(f"Workspace {key} must be a str or None")
        self.kafka_bootstrap = kafka_bootstrap
        # TLS and SASL for Kafka (runstream.kafka.client_options); None: PLAINTEXT.
        self.kafka_security = kafka_security or KafkaSecurity()
        self.query_url = query_url.rstrip("/")
        self.token = token or None
        # Uploads present it when set (the query service may demand it for writes).
        self.write_token = write_token or None
        self.topic = topic
        self.options = options or LoggingOptions()
        # The state directory whose spool/ keeps what Kafka could not take (RUNSTREAM_HOME by default).
        self.home = Path(home) if home is not None else settings.home
        given = {
            "name": workspace_name,
            "subscription_id": subscription_id,
            "resource_group": resource_group,
            "location": location,
        }
        for attribute, named in given.items():
            if named is not None and (not isinstance(named, str) or not named.strip()):
                raise WorkspaceConfigError(f"Workspace {attribute} must be a non-empty str, got {named!r}")
        self.name: str = workspace_name or settings.workspace_name
        self.subscription_id: str = subscription_id or settings.subscription_id
        self.resource_group: str = resource_group or settings.resource_group
        self.location: str = location or settings.location

    def __repr__(self) -> str:
        return (
            f"Workspace.create(name={self.name!r}, subscription_id={self.subscription_id!r}, "
            f"resource_group={self.resource_group!r}, query_url={self.query_url!r}, topic={self.topic!r})"
        )

    @classmethod
    def get(
        cls,
        name: str,
        auth: Any = None,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        location: str | None = None,
        **_: Any,
    ) -> Workspace:
        """Azure ML v1's ``Workspace.get(name, ...)``: this deployment's workspace, under that name.

        One runstream deployment is one workspace, so any name is found; the
        connection is ``Workspace.from_config()``'s.
        """
        ws = cls.from_config()
        return cls(
            subscription_id or ws.subscription_id,
            resource_group or ws.resource_group,
            name,
            kafka_bootstrap=ws.kafka_bootstrap,
            query_url=ws.query_url,
            token=ws.token,
            write_token=ws.write_token,
            topic=ws.topic,
            options=ws.options,
            home=ws.home,
            location=location or ws.location,
            kafka_security=ws.kafka_security,
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        options: LoggingOptions | None = None,
        config: Mapping[str, str] | None = None,
        kafka_security: KafkaSecurity | None = None,
    ) -> Workspace:
        """The workspace the given settings describe (tests, services), with a config file's values over them."""
        values = config or {}
        return cls(
            values.get("subscription_id", settings.subscription_id),
            values.get("resource_group", settings.resource_group),
            values.get("workspace_name", settings.workspace_name),
            kafka_bootstrap=values.get("kafka_bootstrap", settings.kafka_bootstrap),
            query_url=values.get("query_url", settings.query_url),
            token=settings.token,
            write_token=settings.write_token,
            topic=values.get("topic", settings.topic),
            options=options or _default_options(settings),
            home=settings.home,
            location=values.get("location", settings.location),
            kafka_security=kafka_security or settings.kafka_security,
        )

    @classmethod
    def from_config(
        cls,
        path: str | os.PathLike[str] | None = None,
        auth: Any = None,
        _logger: Any = None,
        _file_name: str | None = None,
        *,
        options: LoggingOptions | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Workspace:
        """Read ``path`` (a config.json, or a directory with one or ``.azureml/config.json``), else the home's.

        The home's is ``<RUNSTREAM_HOME>/config.json``, written by ``runstream up``.
        Without a file, the ``RUNSTREAM_*`` environment variables (and their
        defaults) apply. An explicit ``path`` that does not exist is an error.
        The file may hold runstream's keys (``kafka_bootstrap``, ``query_url``,
        ``topic``), Azure ML v1's (``workspace_name``, ``subscription_id``,
        ``resource_group``, ``location``) or both; ``_file_name`` is v1's name
        for another file name than ``config.json``.
        """
        settings = Settings.from_env(env)
        name = _file_name or "config.json"
        if path is None:
            file = settings.home / name
            if not file.exists():
                return cls.from_settings(settings, options=options)
        else:
            file = Path(path)
            if file.is_dir():
                candidates = [file / name, file / ".azureml" / name]
                file = next((c for c in candidates if c.exists()), candidates[0])
            if not file.exists():
                raise WorkspaceConfigError(f"workspace config file {file} does not exist")
        doc = _load(file)
        security = _read_security(file, doc, settings)
        return cls.from_settings(settings, options=options, config=_read_config(file, doc), kafka_security=security)

    def as_env(self) -> dict[str, str]:
        """Variables that make ``Workspace.from_config()`` in a child process resolve to this workspace."""
        env = {
            "RUNSTREAM_HOME": str(self.home),
            "RUNSTREAM_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "RUNSTREAM_QUERY_URL": self.query_url,
            "RUNSTREAM_TOPIC": self.topic,
            "RUNSTREAM_HEARTBEAT_SECONDS": repr(self.options.heartbeat_interval_seconds),
            "RUNSTREAM_WORKSPACE_NAME": self.name,
            "RUNSTREAM_SUBSCRIPTION_ID": self.subscription_id,
            "RUNSTREAM_RESOURCE_GROUP": self.resource_group,
            "RUNSTREAM_LOCATION": self.location,
            "RUNSTREAM_READ_CONSISTENCY_SECONDS": repr(self.options.read_consistency_seconds),
            **self.kafka_security.as_env(),
        }
        if self.token is not None:
            env["RUNSTREAM_TOKEN"] = self.token
        if self.write_token is not None:
            env["RUNSTREAM_WRITE_TOKEN"] = self.write_token
        return env

    @property
    def tags(self) -> dict[str, str]:
        """v1's workspace tags: runstream keeps none."""
        return {}

    # v1's workspace hands out experiments and runs, which name their workspace: the
    # three modules import each other (tests/test_layers.py's KNOWN_CYCLES), here when called.

    @property
    def experiments(self) -> dict[str, Experiment]:
        """v1's ``ws.experiments``: ``{name: Experiment}`` of those the query service knows."""
        from producer._experiment import Experiment

        return {experiment.name: experiment for experiment in Experiment.list(self)}

    def get_run(self, run_id: str) -> Run:
        """v1's ``ws.get_run(run_id)``: the run, in whichever experiment holds it."""
        from producer._run import Run

        return Run.get(self, run_id)

    def get_details(self) -> dict[str, Any]:
        """v1's workspace details: its ARM-style id, name, location and where runstream serves it."""
        arm_id = (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.name}"
        )
        return {
            "id": arm_id,
            "name": self.name,
            "location": self.location,
            "type": "Microsoft.MachineLearningServices/workspaces",
            "subscriptionId": self.subscription_id,
            "resourceGroup": self.resource_group,
            "queryUrl": self.query_url,
            "kafkaBootstrap": self.kafka_bootstrap,
            "topic": self.topic,
        }

    def write_config(self, path: str | os.PathLike[str] | None = None, file_name: str | None = None) -> Path:
        """Write ``<path>/.azureml/<file_name>`` (v1's place; ``config.json``) for ``Workspace.from_config``.

        It holds the workspace's identity and where to reach it, never a token
        or password: those stay in the environment or 0600 files.
        """
        target = Path(path if path is not None else ".") / ".azureml" / (file_name or "config.json")
        doc = {
            "subscription_id": self.subscription_id,
            "resource_group": self.resource_group,
            "workspace_name": self.name,
            "location": self.location,
            "kafka_bootstrap": self.kafka_bootstrap,
            "query_url": self.query_url,
            "topic": self.topic,
        }
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        return target

    def query_client(self) -> QueryClient:
        """A client of the query service: reads with ``token``, uploads with ``write_token``."""
        return QueryClient(
            self.query_url, self.token, self.options.request_timeout_seconds, write_token=self.write_token
        )


def _default_options(settings: Settings) -> LoggingOptions:
    """The default options, but for what the settings choose (the heartbeat interval, the read wait)."""
    return LoggingOptions(
        heartbeat_interval_seconds=settings.heartbeat_seconds,
        read_consistency_seconds=settings.read_consistency_seconds,
    )


def _load(file: Path) -> dict[str, Any]:
    try:
        doc: Any = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WorkspaceConfigError(f"cannot read workspace config {file}: {exc}") from None
    if not isinstance(doc, dict):
        raise WorkspaceConfigError(f"workspace config {file} is not a JSON object")
    return doc


# What a config file may not hold: secrets themselves, and a command to run.
_NOT_IN_FILES = (
    "RUNSTREAM_KAFKA_SASL_PASSWORD",
    "RUNSTREAM_KAFKA_SSL_KEY_PASSWORD",
    "RUNSTREAM_KAFKA_OAUTH_TOKEN_COMMAND",
)


def _read_security(file: Path, doc: dict[str, Any], settings: Settings) -> KafkaSecurity | None:
    """The file's ``kafka_security`` (``RUNSTREAM_KAFKA_*`` names to values), None without one."""
    section = doc.get("kafka_security")
    if section is None:
        return None
    if not isinstance(section, dict) or not all(isinstance(v, str) for v in section.values()):
        raise WorkspaceConfigError(
            f"workspace config {file}: kafka_security must map RUNSTREAM_KAFKA_* names to strings"
        )
    unknown = [k for k in section if not k.startswith("RUNSTREAM_KAFKA_") or k in _NOT_IN_FILES]
    if unknown:
        raise WorkspaceConfigError(
            f"workspace config {file}: kafka_security may not hold {', '.join(sorted(unknown))}"
            " (secrets come from the environment or a 0600 file named by its _FILE variable)"
        )
    try:
        return KafkaSecurity.from_env(section, home=settings.home, local=False)
    except ConfigError as exc:
        raise WorkspaceConfigError(f"workspace config {file}: {exc}") from None


def _read_config(file: Path, doc: dict[str, Any]) -> dict[str, str]:
    values: dict[str, str] = {}
    for key in (*_CONFIG_KEYS, *_IDENTITY_KEYS):
        if key in doc:
            if not isinstance(doc[key], str) or not doc[key]:
                raise WorkspaceConfigError(f"workspace config {file}: {key} must be a non-empty string")
            values[key] = doc[key]
    return values
