"""PostgreSQL over TLS, as docs/security.md tells an operator to set it up: ``sslmode=verify-full`` with a CA.

A cluster of this module's own (the stack's code: scram-sha-256, the
non-superuser ``runstream`` role) is switched to TLS with a server
certificate from a CA the test makes, and its ``pg_hba.conf`` to TLS only.
runstream then connects with nothing but ``RUNSTREAM_DATABASE_URL``; a wrong
CA, a certificate for another host and a client without TLS are refused, each
with one line that names the setting.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import asyncpg
import pytest

from ops.stack import free_port
from ops.stack._postgres import PostgresCluster
from ops.stack._secrets import StackSecrets
from runstream.config import Settings
from runstream.dsn import postgres_setup_error
from tests.tls import Authority, Issued

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class TlsServer:
    cluster: PostgresCluster
    ca: Authority
    other_ca: Authority

    def dsn(self, host: str = "127.0.0.1", **options: str) -> str:
        """The ``runstream`` role's DSN (its passfile) with TLS ``options`` (``sslmode``, ``sslrootcert``)."""
        passfile = quote(str(self.cluster.secrets.pgpass_path()), safe="/")
        query = "&".join([f"passfile={passfile}", *(f"{k}={quote(v, safe='/')}" for k, v in options.items())])
        return f"postgresql://runstream@{host}:{self.cluster.settings.pg_port}/runstream?{query}"

    def verify_full(self, ca: Path | None = None, host: str = "127.0.0.1") -> str:
        return self.dsn(host, sslmode="verify-full", sslrootcert=str(ca or self.ca.cert))


def _readable_by_postgres(issued: Issued, directory: Path) -> tuple[Path, Path]:
    """The server's certificate and key where the server reads them: its key 0600, owned by its user."""
    cert, key = directory / "server.crt", directory / "server.key"
    shutil.copy(issued.cert, cert)
    shutil.copy(issued.key, key)
    key.chmod(0o600)
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        for path in (cert, key):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    return cert, key


@pytest.fixture(scope="module")
def tls_server() -> Iterator[TlsServer]:
    parent = Path(tempfile.mkdtemp(prefix="runstream-pgtls-"))
    parent.chmod(0o755)  # as root, the postgres account passes through it
    home = parent / "home"
    settings = Settings.from_env({"RUNSTREAM_HOME": str(home), "RUNSTREAM_PG_PORT": str(free_port())})
    secrets = StackSecrets(home)
    secrets.ensure()
    cluster = PostgresCluster(settings, secrets)
    ca, other_ca = Authority(parent, "db"), Authority(parent, "other")
    try:
        cluster.start()
        # For 127.0.0.1 alone: "localhost" is then the same server under a name its certificate does not hold.
        cert, key = _readable_by_postgres(ca.issue("postgres", server=True, hosts=("127.0.0.1",)), cluster.root)
        _switch_to_tls_only(cluster, cert, key)
        yield TlsServer(cluster, ca, other_ca)
    finally:
        cluster.stop()
        shutil.rmtree(parent, ignore_errors=True)


def _switch_to_tls_only(cluster: PostgresCluster, cert: Path, key: Path) -> None:
    """``ssl = on`` with our certificate, and pg_hba.conf's host lines TLS only, then a reload."""
    hba = cluster.data / "pg_hba.conf"
    lines = hba.read_text().splitlines()
    hba.write_text(
        "\n".join(line.replace("host ", "hostssl ", 1) if line.startswith("host ") else line for line in lines) + "\n"
    )
    script = (
        "import asyncio, asyncpg, sys\n"
        "async def main():\n"
        "    conn = await asyncpg.connect(sys.argv[1])\n"
        f'    await conn.execute("ALTER SYSTEM SET ssl = on")\n'
        f"    await conn.execute(\"ALTER SYSTEM SET ssl_cert_file = '{cert}'\")\n"
        f"    await conn.execute(\"ALTER SYSTEM SET ssl_key_file = '{key}'\")\n"
        "    await conn.execute('SELECT pg_reload_conf()')\n"
        "    await conn.close()\n"
        "asyncio.run(main())\n"
    )
    # As the superuser, over the last connection without TLS the cluster allows: the change is the reload.
    subprocess.run([sys.executable, "-c", script, cluster.admin_dsn], check=True, timeout=60)


async def _uses_tls(dsn: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        return bool(await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
    finally:
        await conn.close()


async def _refusal(dsn: str) -> str:
    with pytest.raises(Exception) as refused:  # noqa: B017 - which class is the point of the check below
        await asyncpg.connect(dsn, timeout=10)
    message = postgres_setup_error(refused.value)
    assert message is not None, repr(refused.value)
    assert "\n" not in message
    return message


async def test_verify_full_with_the_ca_connects_over_tls(tls_server: TlsServer) -> None:
    assert await _uses_tls(tls_server.verify_full())


def test_runstream_migrates_over_tls_with_only_the_database_url(tls_server: TlsServer) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    env |= {"PYTHONPATH": str(ROOT), "RUNSTREAM_DATABASE_URL": tls_server.verify_full()}
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", "migrate"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("applied: ")


async def test_a_wrong_ca_is_refused_naming_the_database_url(tls_server: TlsServer) -> None:
    message = await _refusal(tls_server.verify_full(ca=tls_server.other_ca.cert))
    assert message.startswith("RUNSTREAM_DATABASE_URL: the server's certificate was refused")
    assert "sslrootcert=" in message


async def test_a_certificate_for_another_host_is_refused(tls_server: TlsServer) -> None:
    message = await _refusal(tls_server.verify_full(host="localhost"))
    assert message.startswith("RUNSTREAM_DATABASE_URL: the server's certificate was refused (Hostname mismatch")


async def test_a_client_without_tls_is_refused(tls_server: TlsServer) -> None:
    message = await _refusal(tls_server.dsn(sslmode="disable"))
    assert message.startswith("RUNSTREAM_DATABASE_URL: the server takes only TLS connections")
    assert "sslmode=verify-full" in message
