"""A PostgreSQL cluster under ``<home>/postgres``, created with initdb and run with pg_ctl.

PostgreSQL refuses to run as root; when we are root, the cluster's files belong
to the ``postgres`` system user and every server command runs as that user.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import shutil
import subprocess
import time

import asyncpg

from runstream.config import Settings
from runstream.stack import _tools

__all__ = ["PostgresCluster"]

# CREATE DATABASE cannot take a bind parameter, so the name is checked instead.
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

_SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    # No Unix socket: state directories can be deeper than a socket path may be long.
    "unix_socket_directories": "",
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


class PostgresCluster:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.home / "postgres"
        self.data = self.root / "data"
        self.log_file = settings.home / "logs" / "postgres.log"

    def _as_owner(self, argv: list[str]) -> list[str]:
        if _tools.running_as_root():
            return ["runuser", "-u", "postgres", "--", *argv]
        return argv

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self._as_owner(argv), capture_output=True, text=True, check=False)

    def _prepare_dirs(self) -> None:
        for path in (self.root, self.log_file.parent):
            path.mkdir(parents=True, exist_ok=True)
        self.log_file.touch()
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
            for parent in self.root.parents:
                if not os.stat(parent).st_mode & 0o001:
                    raise RuntimeError(
                        f"{parent} is not searchable by other users, so the postgres user cannot reach "
                        f"{self.data}; choose a RUNSTREAM_HOME outside it"
                    )

    def start(self) -> None:
        bindir = _tools.postgres_bindir()
        self._prepare_dirs()
        if not (self.data / "PG_VERSION").exists():
            result = self._run([
                str(bindir / "initdb"), "-D", str(self.data), "-U", "runstream",
                "--auth=trust", "-E", "UTF8", "--locale=C",
            ])
            if result.returncode != 0:
                raise RuntimeError(f"initdb failed:\n{result.stdout}{result.stderr}")
        if not self.running():
            options = " ".join(f"-c {k}={v!r}" if v == "" else f"-c {k}={v}" for k, v in self._settings().items())
            result = self._run([
                str(bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log_file),
                "-o", options, "-w", "-t", "60", "start",
            ])
            if result.returncode != 0:
                raise RuntimeError(f"pg_ctl start failed:\n{result.stdout}{result.stderr}\nsee {self.log_file}")
        asyncio.run(self._create_database())

    def _settings(self) -> dict[str, str]:
        return {**_SERVER_SETTINGS, "port": str(self.settings.pg_port)}

    async def _create_database(self, timeout_seconds: float = 30.0) -> None:
        admin_dsn = self.settings.database_url.rsplit("/", 1)[0] + "/postgres"
        name = self.settings.database_url.rsplit("/", 1)[1].split("?")[0]
        if not _DATABASE_NAME.match(name):
            raise ValueError(f"database name {name!r} must match {_DATABASE_NAME.pattern}")
        deadline = time.monotonic() + timeout_seconds
        while True:
            try:
                conn = await asyncpg.connect(admin_dsn)
                break
            except (OSError, asyncpg.PostgresError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

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
