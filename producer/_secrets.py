"""``run.get_secret`` / ``get_secrets``: Azure ML v1 reads them from the workspace's Key Vault.

runstream keeps no secret store: a secret comes from the environment of the
process (as every secret of runstream's own does), set by whoever starts the
training script. A submitted script inherits its submitter's environment and
its run configuration's ``environment_variables``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from producer._errors import UsageError

__all__ = ["get_secret", "get_secrets"]


def get_secret(name: str) -> str:
    """The environment variable ``name``; a ``UsageError`` naming it when it is not set."""
    _check(name)
    value = os.environ.get(name)
    if value is None:
        raise UsageError(
            f"get_secret({name!r}): no such secret; runstream reads secrets from the environment:"
            f" set the variable {name} for the training process"
        )
    return value


def get_secrets(names: Sequence[str]) -> dict[str, str | None]:
    """Each of ``names`` from the environment, None for those not set."""
    if isinstance(names, str):
        raise TypeError("get_secrets() takes a list of secret names, got a str")
    for name in names:
        _check(name)
    return {name: os.environ.get(name) for name in names}


def _check(name: object) -> None:
    if not isinstance(name, str) or not name or "=" in name or "\x00" in name:
        raise ValueError(f"secret name {name!r} must be a non-empty str without '=' or NUL")
