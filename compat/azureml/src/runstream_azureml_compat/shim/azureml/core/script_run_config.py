"""Azure ML v1's ``azureml.core.script_run_config``."""

from producer import ScriptRunConfig

__all__ = ["ScriptRunConfig"]
