"""The local stack attacked: by a second local user, with wrong credentials, with forged pid files.

Every test runs against real services - the session's private stack (or one
of this module's own when the suite reuses services given by the
environment), and for the whole-stack tests a ``runstream up`` of their own -
and asserts that the attack is refused. The second user is ``nobody``, who
runs the system's python3 and psql: the tools any local account has.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from ops.stack import LocalStack, free_port
from producer import DeliveryError, Experiment, LoggingOptions, Workspace
from runstream.config import MIN_SECRET_BYTES, ConfigError, Settings
from runstream.kafka import KafkaSetupError, client_options, start
from tests.conftest import Services

ROOT = Path(__file__).resolve().parent.parent
#: A second local user is played through runuser, which only root may use (CI runs as root).
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="plays a second local user through runuser (root only)")


@pytest.fixture(scope="module")
def stack(services: Services) -> Iterator[LocalStack]:
    """The session's private stack, or one of our own when the suite reuses external services."""
    if services.stack is not None:
        yield services.stack
        return
    home = Path(tempfile.mkdtemp(prefix="runstream-attack-"))
    own = LocalStack(Settings.from_env(_home_env(home)))
    try:
        own.start_infrastructure()
        yield own
    finally:
        own.stop()
        shutil.rmtree(home, ignore_errors=True)


RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"


def as_nobody(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RUNUSER, "-u", "nobody", "--", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        cwd="/",
    )


def _secrets(home: Path) -> list[str]:
    return [p.read_text().strip().rsplit(":", 1)[-1] for p in (home / "secrets").iterdir()]


# --- files ----------------------------------------------------------------------------------


def assert_private_tree(home: Path) -> None:
    """The home 0700 (0710 for the postgres group, as root), nothing inside open to other users."""
    mode = stat.S_IMODE(home.stat().st_mode)
    assert mode in (0o700, 0o710), oct(mode)
    if mode == 0o710:  # as root: the postgres account passes through, to its data directory
        assert home.group() == "postgres"
    opened = []
    for path in [home, *home.rglob("*")]:
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue  # a broker's temporary file, renamed meanwhile
        if stat.S_ISLNK(st.st_mode):
            continue
        m = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            if m & 0o007 or (m & 0o070 and (m & 0o070 != 0o010 or path.group() != "postgres")):
                opened.append(f"{oct(m)} {path}")
        elif m & 0o077:
            opened.append(f"{oct(m)} {path}")
    assert opened == [], opened


def test_every_file_of_the_stack_is_private(stack: LocalStack) -> None:
    home = stack.settings.home
    assert (home / "kafka" / "data" / "meta.properties").exists()  # the segments are in the tree we check
    assert (home / "postgres" / "data" / "PG_VERSION").exists()
    assert_private_tree(home)


@as_root
def test_another_user_can_read_no_file_of_the_stack(stack: LocalStack) -> None:
    home = stack.settings.home
    targets = [
        home / "secrets" / "kafka.password",
        home / "secrets" / "postgres.pgpass",
        home / "kafka" / "server.properties",
        home / "logs" / "kafka.log",
        home / "postgres" / "data" / "PG_VERSION",
        next((home / "kafka" / "data").glob("__cluster_metadata-0/*.log")),
    ]
    for target in targets:
        assert target.exists()
        denied = as_nobody("cat", str(target))
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, (target, denied)
    listing = as_nobody("ls", str(home))
    assert listing.returncode != 0 and "Permission denied" in listing.stderr


def test_no_secret_is_on_a_command_line(stack: LocalStack) -> None:
    """/proc/<pid>/cmdline is world-readable: no process of the stack shows a password there."""
    secrets = _secrets(stack.settings.home)
    assert len(secrets) == 8 and all(len(s) >= 32 for s in secrets)  # Kafka 3, PostgreSQL 2, query 3
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            assert not any(s in cmdline for s in secrets), f"pid {proc.name} shows a secret: {cmdline[:200]}"


# --- PostgreSQL -----------------------------------------------------------------------------


@as_root
def test_another_user_cannot_log_in_to_postgresql(stack: LocalStack) -> None:
    home, port = stack.settings.home, str(stack.settings.pg_port)
    for user in ("runstream", "runstream_admin", "postgres"):
        for passfile in ("/dev/null", str(home / "secrets" / "postgres.pgpass")):
            tried = as_nobody(
                "psql",
                "-w",
                "-h",
                "127.0.0.1",
                "-p",
                port,
                "-U",
                user,
                "-d",
                "postgres",
                "-c",
                "SELECT 1",
                env={"PGPASSFILE": passfile},
            )
            assert tried.returncode != 0, (user, tried.stdout)
            assert "no password supplied" in tried.stderr or "authentication failed" in tried.stderr, tried.stderr


async def test_the_service_role_is_no_superuser_and_cannot_run_programs(stack: LocalStack) -> None:
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        role = await conn.fetchrow("SELECT rolsuper, rolcreaterole, rolreplication FROM pg_roles WHERE rolname = user")
        assert tuple(role) == (False, False, False)
        owner = await conn.fetchval(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
        )
        assert owner == "runstream"
        for attack in (
            "COPY (SELECT 1) TO PROGRAM 'id'",
            "CREATE TEMP TABLE t (x text); COPY t FROM PROGRAM 'id'",
            "SELECT pg_read_file('/etc/passwd')",
            "CREATE ROLE intruder SUPERUSER LOGIN",
            "ALTER ROLE runstream SUPERUSER",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(attack)
    finally:
        await conn.close()


def test_a_wrong_postgresql_password_is_one_clear_line(stack: LocalStack, tmp_path: Path) -> None:
    passfile = tmp_path / "wrong.pgpass"
    passfile.write_text("*:*:*:runstream:not-the-password\n")
    passfile.chmod(0o600)
    dsn = f"postgresql://runstream@127.0.0.1:{stack.settings.pg_port}/runstream?passfile={passfile}"
    started = time.monotonic()
    done = _cli({"RUNSTREAM_DATABASE_URL": dsn}, "migrate")
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "RUNSTREAM_DATABASE_URL" in done.stderr
    assert "password authentication failed" in done.stderr
    assert time.monotonic() - started < 30


# --- Kafka ----------------------------------------------------------------------------------

#: Raw Kafka requests with the standard library alone, as any local account could send them.
_KAFKA_PROBE = r"""
import socket, struct, sys
host, port, topic = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
def ask(api_key, version, body):
    client = b"intruder"
    message = struct.pack(">hhih", api_key, version, 7, len(client)) + client + body
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(struct.pack(">i", len(message)) + message)
        try:
            return "answered" if len(s.recv(4)) == 4 else "closed"
        except ConnectionResetError:
            return "closed"
print(ask(18, 0, b""))  # ApiVersions: answered before any authentication
print(ask(3, 0, struct.pack(">i", 0)))  # Metadata of every topic
print(ask(20, 0, struct.pack(">ih", 1, len(topic)) + topic + struct.pack(">i", 5000)))  # DeleteTopics
"""


@as_root
def test_another_user_cannot_read_write_or_delete_on_kafka(stack: LocalStack) -> None:
    s = stack.settings
    for port in (s.kafka_port, s.kafka_controller_port):
        probe = as_nobody("/usr/bin/python3", "-c", _KAFKA_PROBE, "127.0.0.1", str(port), s.dlq_topic)
        assert probe.returncode == 0, probe.stderr
        assert probe.stdout.split() == ["answered", "closed", "closed"], (port, probe.stdout)
    # And we, with the credentials, still can: the topic nobody tried to delete is there.
    assert s.dlq_topic in asyncio.run(_topics(s))


async def _topics(settings: Settings) -> list[str]:
    admin = AIOKafkaAdminClient(**client_options(settings))
    try:
        await start(admin, settings)
        return list(await admin.list_topics())
    finally:
        await admin.close()


def _with_password(settings: Settings, tmp_path: Path, password: str) -> Settings:
    file = tmp_path / "kafka.password"
    file.write_text(password)
    file.chmod(0o600)
    env = {**settings.as_env(), "RUNSTREAM_KAFKA_SASL_PASSWORD_FILE": str(file)}
    return Settings.from_env(env)


async def test_a_wrong_kafka_password_is_one_clear_line(stack: LocalStack, tmp_path: Path) -> None:
    wrong = _with_password(stack.settings, tmp_path, "not-the-password")
    started = time.monotonic()
    with pytest.raises(KafkaSetupError) as refused:
        await _topics(wrong)
    message = str(refused.value)
    assert "\n" not in message
    assert "RUNSTREAM_KAFKA_SASL_PASSWORD_FILE" in message and "refused the credentials" in message
    assert time.monotonic() - started < 15


def test_the_sdk_stops_at_a_wrong_kafka_password_instead_of_spooling(stack: LocalStack, tmp_path: Path) -> None:
    wrong = _with_password(stack.settings, tmp_path, "not-the-password")
    ws = Workspace.from_settings(
        wrong, options=LoggingOptions(request_timeout_seconds=2, spill_after_seconds=0.5, close_timeout_seconds=10)
    )
    run = Experiment(ws, "wrong-password").start_logging(outputs=None)
    run.log("x", 1.0)
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="RUNSTREAM_KAFKA_SASL_PASSWORD_FILE.*refused the credentials"):
        run.flush(timeout_seconds=30)
    assert time.monotonic() - started < 15
    stats = run.stats()
    assert (stats["retries"], stats["spooled_records"]) == (0, 0)
    with pytest.raises(DeliveryError):  # the run cannot end on Kafka either; it says so again
        run.complete(timeout_seconds=10)


def test_ingest_exits_at_once_on_a_wrong_kafka_password(stack: LocalStack, tmp_path: Path) -> None:
    wrong = _with_password(stack.settings, tmp_path, "not-the-password")
    env = {**os.environ, **wrong.as_env(), "PYTHONPATH": str(ROOT)}
    env["RUNSTREAM_INGEST_METRICS_PORT"] = str(free_port())
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "ingest"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "RUNSTREAM_KAFKA_SASL_PASSWORD_FILE" in done.stderr and "refused the credentials" in done.stderr
    assert time.monotonic() - started < 30  # not the start timeout's retries


def test_ingest_exits_at_once_on_a_wrong_postgresql_password(stack: LocalStack, tmp_path: Path) -> None:
    passfile = tmp_path / "wrong.pgpass"
    passfile.write_text("*:*:*:runstream:not-the-password\n")
    passfile.chmod(0o600)
    dsn = f"postgresql://runstream@127.0.0.1:{stack.settings.pg_port}/runstream?passfile={passfile}"
    env = {**os.environ, **stack.settings.as_env(), "PYTHONPATH": str(ROOT), "RUNSTREAM_DATABASE_URL": dsn}
    env["RUNSTREAM_INGEST_METRICS_PORT"] = str(free_port())
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "ingest"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "RUNSTREAM_DATABASE_URL: the server refused the login" in done.stderr
    assert "password authentication failed" in done.stderr
    assert time.monotonic() - started < 30  # not the start timeout's retries


def test_a_secret_file_other_users_can_read_is_refused(stack: LocalStack, tmp_path: Path) -> None:
    shared = _with_password(stack.settings, tmp_path, stack.secrets.kafka_password)
    assert shared.kafka_security.sasl_password_file is not None
    shared.kafka_security.sasl_password_file.chmod(0o644)
    with pytest.raises(ConfigError, match=r"RUNSTREAM_KAFKA_SASL_PASSWORD_FILE=.* is readable by other users"):
        client_options(shared)


# --- runstream down -----------------------------------------------------------------------------


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", *args],
        env={**full, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def victim() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process of ours that a forged pid file names."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait()


def _start_ticks(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


def _home_env(home: Path) -> dict[str, str]:
    return {
        "RUNSTREAM_HOME": str(home),
        "RUNSTREAM_KAFKA_PORT": str(free_port()),
        "RUNSTREAM_KAFKA_CONTROLLER_PORT": str(free_port()),
        "RUNSTREAM_PG_PORT": str(free_port()),
    }


@as_root
def test_down_refuses_a_home_another_user_prepared(tmp_path: Path, victim: subprocess.Popen[bytes]) -> None:
    home = tmp_path / "theirs"
    (home / "pids").mkdir(parents=True)
    record = {"pid": victim.pid, "start_ticks": _start_ticks(victim.pid), "argv": ["sleep", "300"]}
    (home / "pids" / "query.pid").write_text(json.dumps(record))
    (home / "pids" / "ingest.pid").write_text(str(victim.pid))
    for path in (home, home / "pids", *(home / "pids").iterdir()):
        shutil.chown(path, "nobody", "nogroup")
    for command in ("down", "up", "status"):
        done = _cli(_home_env(home), command)
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        assert "belongs to nobody" in done.stderr and "another user's RUNSTREAM_HOME" in done.stderr
    assert victim.poll() is None


def test_down_kills_no_process_a_stale_or_forged_pid_file_names(
    tmp_path: Path, victim: subprocess.Popen[bytes]
) -> None:
    home = tmp_path / "mine"
    pids = home / "pids"
    pids.mkdir(parents=True)
    home.chmod(0o700)
    ticks = _start_ticks(victim.pid)
    forged = {
        "query": {"pid": victim.pid, "start_ticks": ticks + 1, "argv": ["sleep", "300"]},  # the pid was reused
        "ingest": {"pid": victim.pid, "start_ticks": ticks, "argv": [sys.executable, "-m", "ingest"]},
        "kafka": victim.pid,  # a bare pid, as older versions wrote
    }
    for name, record in forged.items():
        (pids / f"{name}.pid").write_text(json.dumps(record))
        (pids / f"{name}.pid").chmod(0o600)
    done = _cli(_home_env(home), "down")
    assert done.returncode == 0, done.stderr
    assert "nothing was running" in done.stdout
    assert victim.poll() is None
    # The same file naming the process as it is would stop it: the identity is what spared it.
    (pids / "query.pid").write_text(json.dumps({"pid": victim.pid, "start_ticks": ticks, "argv": ["sleep", "300"]}))
    done = _cli(_home_env(home), "down")
    assert "stopped: query" in done.stdout, done.stdout + done.stderr
    assert victim.wait(timeout=30) == -signal.SIGTERM


# --- a whole stack, as `runstream up` (make demo) makes it ------------------------------------------


@pytest.fixture
def up_env() -> Iterator[dict[str, str]]:
    parent = Path(tempfile.mkdtemp(prefix="runstream-up-"))
    parent.chmod(0o755)  # as root, the postgres account passes through it
    env = {
        **_home_env(parent / "home"),
        "RUNSTREAM_QUERY_PORT": str(free_port()),
        "RUNSTREAM_INGEST_METRICS_PORT": str(free_port()),
    }
    yield env
    _cli(env, "down")
    shutil.rmtree(parent, ignore_errors=True)


def _train(home: Path, more: str = "") -> str:
    """A training script that knows nothing but RUNSTREAM_HOME logs a run (and ``more``); the status ingest stored."""
    script = (
        "from producer import Experiment, Workspace\n"
        "run = Experiment(Workspace.from_config(), 'private').start_logging(outputs=None)\n"
        "run.log('loss', 0.5)\n"
        f"{more}"
        "run.complete()\n"
        "print(run.wait_for_completion(timeout_seconds=60, poll_interval_seconds=0.1)['status'])\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    env |= {"RUNSTREAM_HOME": str(home), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@as_root
def test_runstream_up_is_private_and_the_sdk_finds_its_credentials(up_env: dict[str, str], tmp_path: Path) -> None:
    up = _cli(up_env, "up")
    assert up.returncode == 0, up.stdout + up.stderr
    home = Path(up_env["RUNSTREAM_HOME"])
    config = json.loads((home / "config.json").read_text())
    assert config["kafka_security"]["RUNSTREAM_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert not any(secret in (home / "config.json").read_text() for secret in _secrets(home))

    # A training script that knows nothing but RUNSTREAM_HOME: a run, a file, the query service reads both.
    (tmp_path / "model.txt").write_text("weights")
    assert _train(home, f"run.upload_file('model.txt', {str(tmp_path / 'model.txt')!r})\n") == "Completed"

    stored = list((home / "artifacts").rglob("*"))
    assert any(p.is_file() and p.read_bytes() == b"weights" for p in stored)
    for name in ("config.json", "logs/ingest.log", "logs/query.log", "pids/query.pid", "pids/ingest.pid"):
        assert (home / name).exists(), name
    assert_private_tree(home)
    assert as_nobody("ls", str(home / "artifacts")).returncode != 0

    # The query service is no more open than the rest: no token, no data; the stack's token opens it.
    url = config["query_url"]
    token = (home / "secrets" / "query-read.token").read_text()
    assert len(token.encode()) >= MIN_SECRET_BYTES and "secrets/query-read.token" in up.stdout
    assert _http_status(f"{url}/api/runs") == 401
    assert _http_status(f"{url}/api/runs", token) == 200
    stranger = as_nobody("/usr/bin/python3", "-c", _FETCH, f"{url}/api/runs")
    assert stranger.stdout.strip() == "401", stranger.stdout + stranger.stderr
    write = (home / "secrets" / "query-write.token").read_text()
    assert write != token and _http_status(f"{url}/api/runs/{uuid.uuid4()}/files/x", token, method="PUT") == 403


_FETCH = """
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=10).status)
except urllib.error.HTTPError as exc:
    print(exc.code)
"""


def _http_status(url: str, token: str | None = None, *, method: str = "GET") -> int:
    request = urllib.request.Request(url, method=method, data=b"x" if method == "PUT" else None)  # noqa: S310
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - a local test URL
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


async def _select_one(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT 1"))
    finally:
        await conn.close()


@as_root
def test_rotated_secrets_lock_out_the_old_ones_and_the_stack_goes_on(up_env: dict[str, str], tmp_path: Path) -> None:
    assert _cli(up_env, "up").returncode == 0
    home = Path(up_env["RUNSTREAM_HOME"])
    secrets = home / "secrets"
    names = ("kafka.password", "postgres.pgpass", "postgres-admin.pgpass")
    old = {name: (secrets / name).read_text() for name in names}

    done = _cli(up_env, "rotate-secrets")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "rotated: kafka, postgres, postgres-admin"
    for name in names:
        assert (secrets / name).read_text() != old[name]
        assert stat.S_IMODE((secrets / name).stat().st_mode) == 0o600

    settings = Settings.from_env(up_env)
    assert settings.topic in asyncio.run(_topics(settings))  # the new Kafka password works
    stale = _with_password(settings, tmp_path, old["kafka.password"])
    with pytest.raises(KafkaSetupError, match="refused the credentials"):
        asyncio.run(_topics(stale))
    for name, user, database in (
        ("postgres.pgpass", "runstream", "runstream"),
        ("postgres-admin.pgpass", "runstream_admin", "postgres"),
    ):
        stale_file = tmp_path / name
        stale_file.write_text(old[name])
        stale_file.chmod(0o600)
        dsn = f"postgresql://{user}@127.0.0.1:{settings.pg_port}/{database}"
        with pytest.raises(asyncpg.InvalidPasswordError):
            asyncio.run(_select_one(f"{dsn}?passfile={stale_file}"))
        assert asyncio.run(_select_one(f"{dsn}?passfile={secrets / name}")) == 1

    # Ingest was restarted with the new Kafka password; a run logged now is stored and served.
    status = _cli(up_env, "status")
    assert status.returncode == 0, status.stdout
    assert _train(home) == "Completed"


def test_a_home_an_older_runstream_left_open_is_refused(up_env: dict[str, str]) -> None:
    """Kafka without users and PostgreSQL with trust are not started again: runstream no longer runs them open."""
    settings = Settings.from_env(up_env)
    kafka_data = settings.home / "kafka" / "data"
    kafka_data.mkdir(parents=True)
    (kafka_data / "meta.properties").write_text("version=1\n")  # formatted, without our SCRAM users
    done = _cli(settings.as_env(), "up")
    assert done.returncode == 1
    assert "made by an older runstream, without authentication" in done.stderr
    assert done.stderr.count("\n") == 1

    pg_data = settings.home / "postgres" / "data"
    pg_data.mkdir(parents=True)
    (pg_data / "PG_VERSION").write_text("15\n")
    (pg_data / "pg_hba.conf").write_text("host all all 127.0.0.1/32 trust\n")
    cluster = LocalStack(settings).postgres
    with pytest.raises(RuntimeError, match="open to every local user .trust authentication."):
        cluster.start()
