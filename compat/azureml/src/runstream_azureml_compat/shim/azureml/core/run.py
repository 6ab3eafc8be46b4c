"""Azure ML v1's ``azureml.core.run``."""

from producer import Run
from producer._offline import _OfflineRun

__all__ = ["Run", "_OfflineRun"]
