"""The runstream command's operational subcommands against the session's real services."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from runstream.config import Settings
from runstream.kafka import client_options
from tests.support import eventually

ROOT = Path(__file__).resolve().parent.parent


async def _cli(settings: Settings, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ops.cli",
        *args,
        env={**os.environ, **settings.as_env(), "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, out.decode()


@pytest.mark.usefixtures("ingest_worker")
async def test_dlq_list_shows_what_ingest_refused(settings: Settings) -> None:
    producer = AIOKafkaProducer(**client_options(settings))
    await producer.start()
    try:
        marker = os.urandom(4).hex()
        await producer.send_and_wait(settings.topic, f"not json {marker}".encode(), key=b"k")
        await producer.send_and_wait(settings.topic, b'{"v": 99}', key=b"k")
    finally:
        await producer.stop()

    def listed(result: tuple[int, str]) -> bool:
        return result[0] == 0 and "not_json" in result[1] and "bad_version" in result[1]

    code, out = await eventually(
        lambda: _cli(settings, "dlq", "list", "--limit", "1000"),
        listed,
        timeout_seconds=60,
        interval_seconds=0.5,
        what="dead letters listed",
    )
    assert f"{settings.topic}[" in out


async def test_bad_arguments_are_refused_with_usage(settings: Settings) -> None:
    code, out = await _cli(settings, "ingest", "--workers", "0")
    assert code == 2
    assert "must be at least 1" in out
