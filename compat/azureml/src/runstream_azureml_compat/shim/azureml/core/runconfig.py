"""Azure ML v1's ``azureml.core.runconfig``."""

from producer import DockerConfiguration, RunConfiguration
from producer import Environment as EnvironmentDefinition
from producer._environment import DEFAULT_CPU_IMAGE

__all__ = ["DEFAULT_CPU_IMAGE", "DockerConfiguration", "EnvironmentDefinition", "RunConfiguration"]
