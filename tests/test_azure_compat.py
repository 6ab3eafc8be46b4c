"""The opt-in compatibility layer: Azure ML v1 scripts, byte for byte unchanged (issue 12, section 3).

Each test makes a fresh virtual environment that sees runstream and its
dependencies (a ``.pth`` to this checkout and to the project's environment),
runs ``runstream install-azureml-compat`` in it, and runs the v1 samples of
``examples/azureml_v1`` exactly as written - ``from azureml.core import ...``
- including the scripts they submit, which run as child processes of that
environment's Python. The layer refuses to go beside the real
``azureml-core`` (a fake one is enough: its metadata directory), never
shadows it, and is not part of runstream's own installation.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from producer import Experiment, Run, Workspace
from runstream.config import Settings
from tests.azure_support import ROOT, SAMPLES, marked, run_script, sample
from tests.test_producer import topic  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("ingest_worker", "query_service")

_PROJECT_SITE = sysconfig.get_paths()["purelib"]


def _venv(folder: Path) -> tuple[Path, Path]:
    """A new environment that sees this checkout and the project's packages: (its python, its site-packages)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    python = folder / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "runstream_checkout.pth").write_text(f"{ROOT}\nimport site; site.addsitedir({_PROJECT_SITE!r})\n")
    return python, site


def _python(python: Path, code: str, *, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNSTREAM_", "PYTHON"))}
    env["RUNSTREAM_HOME"] = str(cwd / ".runstream")
    done = subprocess.run([str(python), "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def _install(python: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return _python(
        python,
        "from ops.cli import main; raise SystemExit(main(['install-azureml-compat']))",
        cwd=cwd,
        check=False,
    )


@pytest.fixture(scope="module")
def compat_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("compat")
    python, site = _venv(folder / "venv")
    done = _install(python, folder)
    assert done.returncode == 0, done.stderr
    assert "installed" in done.stdout and (site / "runstream_azureml_compat.pth").is_file()
    return python


def test_it_is_not_installed_by_default() -> None:
    assert importlib.util.find_spec("azureml") is None  # pip install -e . brought no azureml package


def test_v1_imports_resolve_to_runstream(compat_python: Path, tmp_path: Path) -> None:
    code = (
        "import azureml.core, producer\n"
        "from azureml.core import Run, Experiment, Workspace, ScriptRunConfig, Environment\n"
        "import azureml.core.run, azureml.core.experiment, azureml.core.workspace\n"
        "import azureml.core.script_run_config, azureml.core.environment, azureml.core.runconfig\n"
        "from azureml.core.conda_dependencies import CondaDependencies\n"
        "from azureml.widgets import RunDetails\n"
        "from azureml.exceptions import RunEnvironmentException, UserErrorException\n"
        "assert Run is producer.Run is azureml.core.run.Run and Experiment is azureml.core.experiment.Experiment\n"
        "assert Workspace is azureml.core.workspace.Workspace is producer.Workspace\n"
        "assert ScriptRunConfig is azureml.core.script_run_config.ScriptRunConfig is producer.ScriptRunConfig\n"
        "assert Environment is azureml.core.environment.Environment is producer.Environment\n"
        "assert azureml.core.runconfig.RunConfiguration is producer.RunConfiguration\n"
        "assert RunDetails is producer.RunDetails and CondaDependencies is producer.CondaDependencies\n"
        "try:\n    Run.get_context(allow_offline=False)\nexcept RunEnvironmentException:\n    print('refused')\n"
        "run = Run.get_context()\n"
        "assert isinstance(run, azureml.core.run._OfflineRun)\n"
        "print(run.id.split('_')[0], type(run).__name__, azureml.core.VERSION)\n"
    )
    out = _python(compat_python, code, cwd=tmp_path).stdout.split()
    assert out[:3] == ["refused", "OfflineRun", "_OfflineRun"]


@pytest.mark.parametrize("name", ["sklearn_iris", "train_on_local"])
def test_v1_samples_run_unchanged_submitted_scripts_included(
    compat_python: Path,
    settings: Settings,
    topic: str,  # noqa: F811
    tmp_path: Path,
    name: str,
) -> None:
    folder = sample(name, tmp_path, rewrite=False)
    for script in (SAMPLES / name).glob("*.py"):
        assert (folder / script.name).read_bytes() == script.read_bytes()  # byte for byte
        assert not re.search(rb"^\s*(from|import) producer", script.read_bytes(), flags=re.MULTILINE)
    out = run_script(compat_python, folder / "notebook.py", settings).stdout
    experiment = Experiment(
        Workspace.from_settings(settings), "train_iris" if name == "sklearn_iris" else "train-on-local"
    )
    run = Run(experiment, marked(out, "IRIS" if name == "sklearn_iris" else "SYSTEM_MANAGED"))
    details = run.get_details()
    assert details["status"] == "Completed" and details["runDefinition"]["target"] == "local"
    metrics = run.get_metrics()
    if name == "sklearn_iris":
        assert metrics["Kernel type"] == "linear" and metrics["Accuracy"] > 0.9
    else:
        assert len(metrics["mse"]) == 20
    # The submitted script imported azureml.core too: it ran in the compat environment's Python.
    log = run.get_details_with_logs()["logFiles"]["logs/driver.log"]
    assert "Traceback" not in log


def test_it_refuses_to_shadow_the_real_azureml_core(tmp_path: Path) -> None:
    python, site = _venv(tmp_path / "venv")
    fake = site / "azureml_core-1.61.0.dist-info"
    fake.mkdir()
    (fake / "METADATA").write_text("Metadata-Version: 2.1\nName: azureml-core\nVersion: 1.61.0\n")
    done = _install(python, tmp_path)
    assert done.returncode == 1
    assert "the real Azure ML SDK is installed here" in done.stderr and str(fake) in done.stderr
    assert not (site / "runstream_azureml_compat.pth").exists()

    # Installed first, the real one arriving later: the layer steps aside and says so.
    fake.rename(tmp_path / "aside")
    assert _install(python, tmp_path).returncode == 0
    assert _python(python, "import azureml.core; print(azureml.core.Run)", cwd=tmp_path).returncode == 0
    (tmp_path / "aside").rename(fake)
    beside = _python(python, "import azureml.core", cwd=tmp_path, check=False)
    assert beside.returncode != 0 and "ModuleNotFoundError: No module named 'azureml'" in beside.stderr
    assert "so is the real azureml-core" in beside.stderr and "does not shadow it" in beside.stderr

    # --uninstall takes it away again.
    fake.rename(tmp_path / "aside")
    removed = _python(
        python,
        "from ops.cli import main; raise SystemExit(main(['install-azureml-compat', '--uninstall']))",
        cwd=tmp_path,
    )
    assert "removed" in removed.stdout and not (site / "runstream_azureml_compat.pth").exists()
    assert _python(python, "import azureml", cwd=tmp_path, check=False).returncode != 0
