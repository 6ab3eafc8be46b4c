"""Helpers for the Azure ML v1 tests: settled reads, the v1 sample scripts, running them."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from runstream.config import Settings
from tests.support import eventually

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "examples" / "azureml_v1"


async def settled(read: Callable[[], T], until: Callable[[T], bool], what: str, timeout_seconds: float = 60.0) -> T:
    """A blocking SDK read repeated (off the event loop) until ``until`` holds: ingest is asynchronous."""

    async def probe() -> Any:
        try:
            return await asyncio.to_thread(read)
        except LookupError as exc:  # RunNotFoundError: not ingested yet
            return exc

    result: T = await eventually(
        probe, lambda r: not isinstance(r, LookupError) and until(r), what=what, timeout_seconds=timeout_seconds
    )
    return result


def runstream_imports(text: str) -> str:
    """A v1 script with only its imports changed to runstream's ``producer`` (issue 12, section 2)."""
    text = re.sub(r"^from azureml\.(core(\.\w+)?|widgets) import ", "from producer import ", text, flags=re.MULTILINE)
    text = re.sub(r"^import azureml\.core\s*(#.*)?$", "import producer", text, flags=re.MULTILINE)
    return text.replace("azureml.core.VERSION", '"runstream"')


def sample(name: str, target: Path, *, rewrite: bool) -> Path:
    """A copy of ``examples/azureml_v1/<name>`` in ``target`` (imports changed when ``rewrite``)."""
    folder = target / name
    shutil.copytree(SAMPLES / name, folder)
    if rewrite:
        for script in folder.glob("*.py"):
            script.write_text(runstream_imports(script.read_text()))
    return folder


def run_script(
    python: str | os.PathLike[str], script: Path, settings: Settings, *, extra_path: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` from its directory with the test session's settings; fails the test on a non-zero exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    env.update(settings.as_env())
    env["MPLBACKEND"] = "Agg"
    if extra_path is not None:
        env["PYTHONPATH"] = extra_path
    done = subprocess.run(
        [str(python), script.name], cwd=script.parent, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{script} exited {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


def marked(output: str, mark: str) -> str:
    """The value a sample printed as ``<mark> <value>``."""
    found = re.findall(rf"^{mark} (\S+)$", output, flags=re.MULTILINE)
    assert found, f"{mark} not printed:\n{output[-3000:]}"
    return found[-1]


PYTHON = sys.executable
