"""runstream's opt-in Azure ML v1 compatibility layer: ``import azureml.core`` answered by runstream.

This module is imported by a ``.pth`` file at interpreter start-up (put there
by ``runstream install-azureml-compat``, or by ``pip install
./compat/azureml``), in every Python of the environment, so a script
submitted as a child process gets it too. It does one cheap thing: if the
real ``azureml-core`` is not installed, it appends the directory holding the
stand-in ``azureml`` package (``shim/``) to ``sys.path``; if it is, it leaves
``azureml`` to it and says so once, with a warning. The stand-in modules only
re-export runstream's ``producer`` package.

Nothing here imports runstream: start-up stays fast for programs that never
import ``azureml``.
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = ["SHIM", "real_azureml_core"]

#: The directory whose ``azureml/`` package stands in for Azure ML v1's.
SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim")
_REAL = ("azureml_core-", "azureml-core-")


def real_azureml_core(path: list[str] | None = None) -> str | None:
    """Where the real azureml-core's metadata is, if it is installed (a listing per directory, no imports)."""
    for entry in sys.path if path is None else path:
        try:
            with os.scandir(entry or ".") as names:
                for name in names:
                    if name.name.lower().startswith(_REAL) and name.name.endswith((".dist-info", ".egg-info")):
                        return os.path.join(entry, name.name)
        except OSError:
            continue  # a zip, a missing directory
    return None


def _activate() -> None:
    real = real_azureml_core()
    if real is not None:
        warnings.warn(
            f"runstream-azureml-compat is installed but so is the real azureml-core ({real}); "
            "it does not shadow it: `import azureml` is Azure's. Uninstall one of the two.",
            RuntimeWarning,
            stacklevel=2,
        )
    elif SHIM not in sys.path:
        sys.path.append(SHIM)


_activate()
