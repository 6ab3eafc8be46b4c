"""A real S3-compatible server for the tests: ``moto_server`` (PyPI ``moto[server]``) as a process of its own.

It checks every request's SigV4 signature against an IAM access key made at
start (moto skips that for the first :data:`_SETUP_CALLS` requests, which
make the key), so a request that our client signs wrongly fails here as it
would on AWS. The setup speaks boto3 (which moto brings); everything the
tests examine goes through runstream's own client (:mod:`query._s3`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ops.stack import free_port

__all__ = ["S3Server", "s3_server"]

#: CreateUser, PutUserPolicy, CreateAccessKey: then signatures are checked.
_SETUP_CALLS = 3
_ALLOW_ALL = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}'


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key_id: str
    secret_access_key: str
    log: Path

    def env(self, bucket: str, prefix: str = "artifacts") -> dict[str, str]:
        """The settings that point runstream's artifact store at ``bucket`` of this server."""
        return {
            "RUNSTREAM_ARTIFACTS_URL": f"s3://{bucket}/{prefix}",
            "RUNSTREAM_S3_ENDPOINT_URL": self.endpoint,
            "RUNSTREAM_S3_ACCESS_KEY_ID": self.access_key_id,
            "RUNSTREAM_S3_SECRET_ACCESS_KEY": self.secret_access_key,
        }

    def new_bucket(self) -> str:
        import boto3  # moto's dependency: test setup only

        name = f"rs-{uuid.uuid4().hex[:12]}"
        boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        ).create_bucket(Bucket=name)
        return name


def _wait_up(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_seconds: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):  # noqa: S310 - our own loopback server
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # polling a starting process: the condition is checked each turn


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    import boto3

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = Path(tempfile.mkdtemp(prefix="runstream-moto-")) / "moto.log"
    executable = str(Path(sys.executable).parent / "moto_server")  # installed beside pytest
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [executable, "-H", "127.0.0.1", "-p", str(port)],
            env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(_SETUP_CALLS)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_up(url, proc, log)
        iam = boto3.client(
            "iam", endpoint_url=url, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup"
        )
        iam.create_user(UserName="runstream")
        iam.put_user_policy(UserName="runstream", PolicyName="artifacts", PolicyDocument=_ALLOW_ALL)
        key = iam.create_access_key(UserName="runstream")["AccessKey"]
        yield S3Server(url, key["AccessKeyId"], key["SecretAccessKey"], log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
