"""Azure ML v1's batch file calls: ``upload_files`` and ``download_files``.

Both do what ``upload_file`` / ``download_file`` do for each file, a few at a
time on threads (the query service streams each body). ``download_files``
lays the files out as v1 does: under ``output_directory`` (default: the
working directory) by their names, without the ``prefix`` when
``append_prefix`` is False, or at ``output_paths`` when given. A name from
the service is checked like any file name before it becomes a local path,
so no download lands outside the directory asked for.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from producer import _payloads

if TYPE_CHECKING:
    from producer._run import Run

_THREADS = 8


def upload_files(run: Run, names: Sequence[str], paths: Sequence[str | os.PathLike[str]]) -> list[Any]:
    """Upload ``paths[i]`` as ``names[i]``; all names are checked before the first upload."""
    names, paths = list(names), list(paths)
    if len(names) != len(paths):
        raise TypeError(
            "names and paths must be lists of equal lengths. "
            f"Names was of length {len(names)} and paths of length {len(paths)}."
        )
    for name in names:
        _payloads.file_name(name)
    with ThreadPoolExecutor(_THREADS) as pool:
        return list(pool.map(run.upload_file, names, paths))


def download_files(
    run: Run,
    prefix: str | None,
    output_directory: str | os.PathLike[str] | None,
    output_paths: Sequence[str | os.PathLike[str]] | None,
    append_prefix: bool,
) -> list[Path]:
    """Download the run's files under ``prefix`` (all without one); returns the local paths."""
    folder = "" if not prefix else prefix.replace("\\", "/").rstrip("/") + "/"
    names = [n for n in run.get_file_names() if n.startswith(folder)]
    if output_paths is not None:
        targets = [Path(p) for p in output_paths]
        if len(targets) != len(names) or len(set(targets)) != len(targets):
            raise ValueError(
                f"output_paths must name {len(names)} distinct files, one per file under {prefix!r}; got {len(targets)}"
            )
    else:
        root = Path(output_directory) if output_directory is not None else Path()
        kept = [_payloads.file_name(n if append_prefix else n[len(folder) :]) for n in names]
        targets = [root / name for name in kept]
    with ThreadPoolExecutor(_THREADS) as pool:
        return list(pool.map(run.download_file, names, targets))
