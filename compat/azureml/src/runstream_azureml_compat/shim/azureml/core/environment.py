"""Azure ML v1's ``azureml.core.environment``."""

from producer import Environment
from producer._environment import DockerSection, PythonSection

__all__ = ["DockerSection", "Environment", "PythonSection"]
