"""``runstream install-azureml-compat``: make ``import azureml.core`` resolve to runstream, on request only.

The layer lives in the repository's ``compat/azureml/`` (a distribution of
its own, ``runstream-azureml-compat``); nothing installs it by default.
Installing it here writes one ``.pth`` file into this Python's site-packages
(as an editable install does): a path line for ``compat/azureml/src`` and an
import line for its start-up hook, which puts the stand-in ``azureml``
package on ``sys.path`` unless the real ``azureml-core`` is installed. Every
Python of the environment reads it at start-up, so scripts that a submitted
run starts see it too. ``--uninstall`` removes the file.

It refuses to install beside the real ``azureml-core``, and says where that
is: the two would claim the same ``import azureml``.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

__all__ = ["COMPAT_SOURCE", "CompatError", "install", "pth_path", "real_azureml_core", "uninstall"]

#: The layer's source in the repository (absent from a wheel install of runstream).
COMPAT_SOURCE = Path(__file__).resolve().parent.parent / "compat" / "azureml" / "src"
_PTH = "runstream_azureml_compat.pth"
_HOOK = "runstream_azureml_compat"


class CompatError(RuntimeError):
    """The layer cannot be installed here; the message says why and what to do."""


def pth_path(site_packages: Path | None = None) -> Path:
    return (site_packages or Path(sysconfig.get_paths()["purelib"])) / _PTH


def real_azureml_core(site_packages: Path | None = None) -> Path | None:
    """The metadata directory of an installed azureml-core, if there is one."""
    folder = site_packages or Path(sysconfig.get_paths()["purelib"])
    for pattern in ("azureml_core-*.dist-info", "azureml_core-*.egg-info", "azureml-core-*.egg-info"):
        for found in sorted(folder.glob(pattern)):
            return found
    return None


def install(site_packages: Path | None = None) -> Path:
    """Write the ``.pth`` file; returns its path. Raises :class:`CompatError` beside the real azureml-core."""
    real = real_azureml_core(site_packages)
    if real is not None:
        raise CompatError(
            f"the real Azure ML SDK is installed here ({real}); runstream's compatibility layer would shadow it, "
            "so it is not installed. Use a separate environment, or `pip uninstall azureml-core` first."
        )
    if not (COMPAT_SOURCE / _HOOK / "__init__.py").is_file():
        raise CompatError(
            f"the compatibility layer's source is not in this installation ({COMPAT_SOURCE}); "
            "install it from runstream's repository: pip install ./compat/azureml"
        )
    target = pth_path(site_packages)
    target.write_text(f"{COMPAT_SOURCE}\nimport {_HOOK}\n", encoding="utf-8")
    return target


def uninstall(site_packages: Path | None = None) -> bool:
    """Remove the ``.pth`` file; False if it was not there."""
    target = pth_path(site_packages)
    if not target.exists():
        return False
    target.unlink()
    return True
