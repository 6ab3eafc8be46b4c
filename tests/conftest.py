"""Session fixtures: real Kafka and PostgreSQL, plus ingest and query processes.

By default the suite starts its own Kafka broker and PostgreSQL cluster with
the project's stack code, in a temporary state directory on free ports, and
stops them at the end: private, as ``runstream up`` makes them (SASL/SCRAM,
scram-sha-256 passwords, a non-superuser role). To reuse running services
instead, set both ``RUNSTREAM_TEST_KAFKA_BOOTSTRAP`` (host:port) and
``RUNSTREAM_TEST_PG_DSN`` (a DSN to any database on a server where the user may
create databases), and the ``RUNSTREAM_KAFKA_*`` security variables if that
broker wants them.

Every session gets its own database, topics and consumer group, so runs of the
suite never see each other's data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import asyncpg
import hypothesis
import pytest
import pytest_asyncio
from playwright.async_api import Browser, async_playwright

from ops.stack import LocalStack, free_port
from runstream.config import KafkaSecurity, Settings
from runstream.dsn import with_database
from runstream.schema import migrate
from tests.chaos.quick import QUICK_CHAOS, SHARED_DIR_ENV, QuickChaos
from tests.fuzzing import FUZZING, SEED, examples
from tests.library_logs import RepeatedRecords
from tests.s3_server import s3_server  # noqa: F401 - the session's S3-compatible server (a fixture)
from tests.support import LoggedProcess, wait_http_ok

ROOT = Path(__file__).resolve().parent.parent

# Every @given draws the same cases on every `make test` (see tests/fuzzing.py).
hypothesis.settings.register_profile(
    "runstream",
    derandomize=not FUZZING,
    max_examples=examples(100),
    database=None,
    deadline=None,
    print_blob=True,
)
hypothesis.settings.load_profile("runstream")


def pytest_report_header() -> str:
    how = "fresh (make fuzz)" if FUZZING else "fixed; `make fuzz` draws fresh ones"
    return f"randomised tests: seed {SEED}, {how}"


_CHAOS_FILE = "tests/test_chaos.py"


def _is_chaos_outcome(nodeid: str) -> bool:
    return nodeid.startswith(f"{_CHAOS_FILE}::test_nothing_missing")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The chaos suite's file runs last: the suite's minutes then overlap all the other tests.

    Several processes (``make test``) take files in this order (``--no-loadscope-reorder``), so no
    worker reaches the chaos outcomes, and waits there, while other files are still to run.
    """
    items.sort(key=lambda item: item.nodeid.startswith(f"{_CHAOS_FILE}::"))  # stable: the others keep their place


def _xdist_controller(config: pytest.Config) -> bool:
    """This process hands the tests to workers (``pytest -n N``, as ``make test`` runs) and runs none."""
    return config.getoption("dist", "no") != "no" and not hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    if _xdist_controller(config):
        # The workers, spawned after this, inherit the variable: one suite for the whole session.
        suite = config.stash[QUICK_CHAOS] = QuickChaos()
        os.environ[SHARED_DIR_ENV] = str(suite.directory)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """In the controller: start the quick chaos suite as soon as a worker has collected it."""
    suite = node.config.stash.get(QUICK_CHAOS, None)
    if suite is not None and not suite.started and any(map(_is_chaos_outcome, ids)):
        suite.start()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the quick chaos suite now if it was collected: it runs beside the other tests.

    A worker of a session run in several processes attaches to the suite its controller starts.
    """
    if not any(_is_chaos_outcome(item.nodeid) for item in session.items):
        return
    shared = os.environ.get(SHARED_DIR_ENV)
    if hasattr(session.config, "workerinput") and shared:
        session.config.stash[QUICK_CHAOS] = QuickChaos.attach(Path(shared))
    else:
        session.config.stash[QUICK_CHAOS] = QuickChaos().start()


def pytest_sessionfinish(session: pytest.Session) -> None:
    suite = session.config.stash.get(QUICK_CHAOS, None)
    if suite is not None:
        suite.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and item.get_closest_marker("fuzz") is not None:
        report.sections.append(("randomised draw", f"seed {SEED}: RUNSTREAM_FUZZ_SEED={SEED} make fuzz replays it"))
    return report


@pytest.fixture(autouse=True)
def _library_log_repeats() -> Iterator[None]:
    """Collapse a library's repeated log lines (a broker down: thousands of 'Unable connect')
    into a few and a count, in what pytest shows for a failing test."""
    with RepeatedRecords.installed(("aiokafka", "kafka", "asyncio")):
        yield


class Services(NamedTuple):
    """The session's Kafka and PostgreSQL: where, how to authenticate, and a DSN that may create databases."""

    kafka_bootstrap: str
    admin_dsn: str
    kafka_security: KafkaSecurity
    #: the stack the suite started (None for services given by the environment)
    stack: LocalStack | None = None


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """Real services for this test session; ``admin_dsn`` is a role with CREATEDB, not a superuser."""
    bootstrap = os.environ.get("RUNSTREAM_TEST_KAFKA_BOOTSTRAP")
    dsn = os.environ.get("RUNSTREAM_TEST_PG_DSN")
    if bootstrap and dsn:
        home = tmp_path_factory.mktemp("external")
        yield Services(bootstrap, dsn, KafkaSecurity.from_env(os.environ, home=home, local=False))
        return
    # Not under pytest's private temp dir: as root, PostgreSQL runs as the
    # postgres user, which must be able to pass through to its data directory
    # (the stack lets it through the home, and no one else).
    home = Path(tempfile.mkdtemp(prefix="runstream-test-"))
    env = {
        "RUNSTREAM_HOME": str(home),
        "RUNSTREAM_KAFKA_PORT": str(free_port()),
        "RUNSTREAM_KAFKA_CONTROLLER_PORT": str(free_port()),
        "RUNSTREAM_PG_PORT": str(free_port()),
    }
    stack = LocalStack(Settings.from_env(env))
    stack.start_infrastructure()
    s = stack.settings
    try:
        yield Services(s.kafka_bootstrap, with_database(s.database_url, "postgres"), s.kafka_security, stack)
    finally:
        stack.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest_asyncio.fixture(scope="session")
async def settings(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for a fresh, migrated database and topics private to this session."""
    name = f"rs_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(services.admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = with_database(services.admin_dsn, name)
    await migrate(dsn)
    home = tmp_path_factory.mktemp("home")
    return Settings.from_env(
        {
            "RUNSTREAM_HOME": str(home),
            "RUNSTREAM_KAFKA_BOOTSTRAP": services.kafka_bootstrap,
            **services.kafka_security.as_env(),
            "RUNSTREAM_DATABASE_URL": dsn,
            "RUNSTREAM_TOPIC": f"{name}.events",
            "RUNSTREAM_DLQ_TOPIC": f"{name}.dead-letter",
            "RUNSTREAM_TOPIC_PARTITIONS": "4",
            "RUNSTREAM_GROUP_ID": f"{name}-ingest",
            "RUNSTREAM_QUERY_PORT": str(free_port()),
            "RUNSTREAM_INGEST_METRICS_PORT": str(free_port()),
        }
    )


@pytest_asyncio.fixture(scope="session")
async def db(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the session's database, for assertions on what is stored."""
    async with asyncpg.create_pool(settings.database_url, min_size=1, max_size=4) as pool:
        yield pool


def _spawn(module: str, settings: Settings, log: Path) -> LoggedProcess:
    env = {**os.environ, **settings.as_env(), "PYTHONPATH": str(ROOT)}
    return LoggedProcess([sys.executable, "-m", module], log, env)


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def spawn(settings: Settings) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start ``python -m <module>`` with the session's settings; all are stopped at the end."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(module: str, overrides: Settings | None = None) -> subprocess.Popen[bytes]:
        proc = _spawn(module, overrides or settings, settings.home / f"{module}-{len(procs)}.log")
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            _terminate(proc)


@pytest_asyncio.fixture(scope="session")
async def ingest_worker(settings: Settings, spawn: Callable[..., Any]) -> subprocess.Popen[bytes]:
    """One ingest worker consuming the session's topic."""
    proc: subprocess.Popen[bytes] = spawn("ingest")
    await wait_http_ok(f"http://127.0.0.1:{settings.ingest_metrics_port}/metrics", proc)
    return proc


@pytest_asyncio.fixture(scope="session")
async def query_service(settings: Settings, spawn: Callable[..., Any]) -> str:
    """The query service on the session's database; returns its base URL."""
    proc = spawn("query")
    await wait_http_ok(f"{settings.query_url}/health", proc)
    return settings.query_url


@pytest_asyncio.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright (never a downloaded browser)."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            yield browser
        finally:
            await browser.close()
