"""Azure ML v1's ``azureml.core``, answered by runstream's ``producer`` (README: "Migrating from Azure ML SDK v1")."""

from importlib import metadata

from producer import (
    CondaDependencies,
    Environment,
    Experiment,
    Run,
    RunConfiguration,
    ScriptRunConfig,
    Workspace,
)
from producer import Run as ScriptRun

try:
    VERSION = metadata.version("runstream")
except metadata.PackageNotFoundError:  # runstream from a source tree on PYTHONPATH
    VERSION = "0+runstream"
__version__ = VERSION

__all__ = [
    "VERSION",
    "CondaDependencies",
    "Environment",
    "Experiment",
    "Run",
    "RunConfiguration",
    "ScriptRun",
    "ScriptRunConfig",
    "Workspace",
]
