"""Azure ML v1's ``azureml.exceptions``, as runstream's errors (same situations, runstream's names)."""

from producer import ProducerError as AzureMLException
from producer import RunEnvironmentError as RunEnvironmentException
from producer import RunFailedError as ActivityFailedException
from producer import SnapshotError as SnapshotException
from producer import UsageError as UserErrorException

__all__ = [
    "ActivityFailedException",
    "AzureMLException",
    "RunEnvironmentException",
    "SnapshotException",
    "UserErrorException",
]
