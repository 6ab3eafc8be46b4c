"""Azure ML v1's ``azureml.core.workspace``."""

from producer import Workspace

__all__ = ["Workspace"]
