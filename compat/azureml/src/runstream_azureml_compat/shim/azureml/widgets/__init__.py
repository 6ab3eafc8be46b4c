"""Azure ML v1's ``azureml.widgets``: ``RunDetails(run).show()`` shows the run's live page inline."""

from producer import RunDetails

__all__ = ["RunDetails"]
