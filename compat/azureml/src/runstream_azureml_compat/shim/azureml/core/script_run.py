"""Azure ML v1's ``azureml.core.script_run``: a submitted run is a ``Run`` here."""

from producer import Run as ScriptRun

__all__ = ["ScriptRun"]
