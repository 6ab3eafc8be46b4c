"""Locating the external programs the local stack runs, with install hints."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["MissingTool", "java", "maven", "postgres_bindir"]


class MissingTool(RuntimeError):
    """A program the local stack needs is not installed; the message says how to get it."""


def _which(name: str, hint: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise MissingTool(f"{name} not found on PATH. {hint}")
    return found


def java() -> str:
    return _which("java", "Install a Java 17+ runtime, e.g. `apt-get install openjdk-17-jre-headless`.")


def maven() -> str:
    return _which("mvn", "Install Maven, e.g. `apt-get install maven`.")


def postgres_bindir() -> Path:
    """The directory holding initdb and pg_ctl (PostgreSQL 15 or newer preferred)."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)  # noqa: S603
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    candidates += sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    raise MissingTool(
        "PostgreSQL server binaries (initdb, pg_ctl) not found. "
        "Install them, e.g. `apt-get install postgresql`, or put pg_config on PATH."
    )


def running_as_root() -> bool:
    return os.geteuid() == 0
