"""A PostgreSQL cluster under ``<home>/postgres``, created with initdb and run with pg_ctl.

Private by default: every connection authenticates with ``scram-sha-256``
(initdb's ``--auth``), the server listens on loopback only, without a Unix
socket. Two roles, two 0600 passfiles (:mod:`ops.stack._secrets`):

* ``runstream_admin``, the cluster's bootstrap superuser; the stack alone uses
  it, to create and update the role below and its database;
* the role of ``RUNSTREAM_DATABASE_URL`` (``runstream``): it owns its database
  and may create databases (the test suite and the benchmarks make one per
  run), and is not a superuser - so it cannot run ``COPY ... FROM PROGRAM``,
  read the server's files or create roles.

Passwords reach the server as SCRAM verifiers computed here, never as plain
text a server log could keep. Each ``start`` sets the role's password from its
passfile again, so replacing the file and running ``runstream up`` rotates it.

PostgreSQL refuses to run as root; when we are root, the cluster's files belong
to the ``postgres`` system user and every server command runs as that user.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import pwd
import re
import secrets
import shutil
import subprocess
import time
from urllib.parse import quote

import asyncpg

from ops.stack import _tools
from ops.stack._private import private_dir, write_private
from ops.stack._secrets import ADMIN_ROLE, StackSecrets
from runstream.config import Settings
from runstream.dsn import database_of, user_of

__all__ = ["PostgresCluster", "scram_verifier"]

# CREATE ROLE / DATABASE cannot take bind parameters, so the names are checked instead.
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SCRAM_ITERATIONS = 4096

_SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    # No Unix socket: state directories can be deeper than a socket path may be long.
    "unix_socket_directories": "",
    "password_encryption": "scram-sha-256",
    "shared_buffers": "256MB",
    "max_connections": "200",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "2GB",
    "checkpoint_timeout": "15min",
    # Losing the last few commits on a server crash is safe here: ingest stores
    # Kafka offsets in the same transactions, so it re-reads exactly what was lost.
    "synchronous_commit": "off",
    "default_toast_compression": "lz4",
}


def scram_verifier(password: str, *, salt: bytes | None = None, iterations: int = _SCRAM_ITERATIONS) -> str:
    """The ``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`` form PostgreSQL stores (RFC 5802).

    Given as a role's password, the server keeps it as is: the password itself
    never travels to the server.
    """
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = base64.b64encode
    stored = hashlib.sha256(client_key).digest()
    return f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}${b64(stored).decode()}:{b64(server_key).decode()}"


def _checked(name: str, what: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"{what} {name!r} must match {_NAME.pattern}")
    return name


class PostgresCluster:
    def __init__(self, settings: Settings, secrets: StackSecrets) -> None:
        self.settings = settings
        self.secrets = secrets
        self.root = settings.home / "postgres"
        self.data = self.root / "data"
        self.log_file = settings.home / "logs" / "postgres.log"

    @property
    def admin_dsn(self) -> str:
        """The superuser's DSN (its password in a 0600 passfile): for the stack's own work only."""
        passfile = quote(str(self.secrets.pgpass_path(admin=True)), safe="/")
        return f"postgresql://{ADMIN_ROLE}@127.0.0.1:{self.settings.pg_port}/postgres?passfile={passfile}"

    def _as_owner(self, argv: list[str]) -> list[str]:
        if _tools.running_as_root():
            return ["runuser", "-u", "postgres", "--", *argv]
        return argv

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        # noqa below: our own argv, no shell.
        return subprocess.run(self._as_owner(argv), capture_output=True, text=True, check=False)  # noqa: S603

    def _prepare_dirs(self) -> None:
        private_dir(self.log_file.parent, postgres_passes=True)
        private_dir(self.root)
        self.log_file.touch(mode=0o600)
        os.chmod(self.log_file, 0o600)
        if _tools.running_as_root():
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise _tools.MissingTool(
                    "running as root needs the `postgres` system user (it comes with `apt-get install postgresql`)"
                ) from None
            for path in (self.root, self.log_file):
                shutil.chown(path, owner.pw_uid, owner.pw_gid)
            # The server process must reach its files through every parent directory.
            for parent in self.settings.home.parents:
                if not os.stat(parent).st_mode & 0o001:
                    raise RuntimeError(
                        f"{parent} is not searchable by other users, so the postgres user cannot reach "
                        f"{self.data}; choose a RUNSTREAM_HOME outside it"
                    )

    def start(self) -> None:
        bindir = _tools.postgres_bindir()
        self._prepare_dirs()
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
        elif self._trusts_anyone():
            raise RuntimeError(
                f"{self.data} is a PostgreSQL cluster made by an older runstream, open to every local user"
                " (trust authentication), which runstream no longer runs. Move it and <home>/kafka aside"
                " (or delete them) and run `runstream up` again for a new, private stack."
            )
        if not self.running():
            options = " ".join(f"-c {k}={v!r}" if v == "" else f"-c {k}={v}" for k, v in self._settings().items())
            result = self._run(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log_file),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            )
            if result.returncode != 0:
                raise RuntimeError(f"pg_ctl start failed:\n{result.stdout}{result.stderr}\nsee {self.log_file}")
        asyncio.run(self._provision())

    def _initdb(self) -> None:
        # The superuser's password in a file only the server's owner reads, gone after: never on a command line.
        pwfile = self.root / ".initdb-password"
        write_private(pwfile, self.secrets.postgres_password(admin=True) + "\n")
        try:
            if _tools.running_as_root():
                owner = pwd.getpwnam("postgres")
                os.chown(pwfile, owner.pw_uid, owner.pw_gid)
            result = self._run(
                [
                    str(_tools.postgres_bindir() / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    ADMIN_ROLE,
                    "--auth-host=scram-sha-256",
                    "--auth-local=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{result.stdout}{result.stderr}")

    def _trusts_anyone(self) -> bool:
        try:
            lines = (self.data / "pg_hba.conf").read_text().splitlines()
        except OSError:
            return False
        return any(line.split()[-1:] == ["trust"] for line in lines if not line.lstrip().startswith("#"))

    def _settings(self) -> dict[str, str]:
        return {**_SERVER_SETTINGS, "port": str(self.settings.pg_port)}

    async def _provision(self, timeout_seconds: float = 30.0) -> None:
        """The role of ``RUNSTREAM_DATABASE_URL`` with the passfile's password, and its database, as the admin."""
        role = _checked(user_of(self.settings.database_url), "the RUNSTREAM_DATABASE_URL user")
        name = _checked(database_of(self.settings.database_url), "the RUNSTREAM_DATABASE_URL database")
        if role == ADMIN_ROLE:
            raise ValueError(f"RUNSTREAM_DATABASE_URL must not use the superuser {ADMIN_ROLE}")
        verifier = scram_verifier(self.secrets.postgres_password())
        conn = await self._connect_admin(timeout_seconds)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
            verb = "ALTER" if exists else "CREATE"
            await conn.execute(
                f'{verb} ROLE "{role}" WITH LOGIN NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS CREATEDB'
                f" PASSWORD '{verifier}'"
            )
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await conn.execute(f'CREATE DATABASE "{name}" OWNER "{role}"')
        finally:
            await conn.close()

    def set_password(self, *, admin: bool, password: str) -> None:
        """A new password for the service role (or the superuser), then its passfile; connections open stay up."""
        role = ADMIN_ROLE if admin else _checked(user_of(self.settings.database_url), "the RUNSTREAM_DATABASE_URL user")
        asyncio.run(self._alter_password(role, password))
        self.secrets.write_pgpass(self.secrets.pgpass_path(admin=admin).name, role, password)

    async def _alter_password(self, role: str, password: str) -> None:
        conn = await self._connect_admin(timeout_seconds=30.0)
        try:
            await conn.execute(f"ALTER ROLE \"{role}\" PASSWORD '{scram_verifier(password)}'")
        finally:
            await conn.close()

    async def _connect_admin(self, timeout_seconds: float) -> asyncpg.Connection:
        deadline = time.monotonic() + timeout_seconds
        while True:
            try:
                return await asyncpg.connect(self.admin_dsn)
            except (OSError, asyncpg.CannotConnectNowError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    def running(self) -> bool:
        if not (self.data / "PG_VERSION").exists():
            return False
        return self._run([str(_tools.postgres_bindir() / "pg_ctl"), "-D", str(self.data), "status"]).returncode == 0

    def pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, PermissionError, ValueError, IndexError):
            return None

    def stop(self) -> bool:
        if not self.running():
            return False
        bindir = _tools.postgres_bindir()
        result = self._run([str(bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl stop failed:\n{result.stdout}{result.stderr}")
        return True
