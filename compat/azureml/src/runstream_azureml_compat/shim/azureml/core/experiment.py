"""Azure ML v1's ``azureml.core.experiment``."""

from producer import Experiment

__all__ = ["Experiment"]
