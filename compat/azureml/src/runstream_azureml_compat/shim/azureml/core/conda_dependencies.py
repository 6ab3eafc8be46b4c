"""Azure ML v1's ``azureml.core.conda_dependencies``."""

from producer import CondaDependencies

__all__ = ["CondaDependencies"]
