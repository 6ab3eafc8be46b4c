"""Snapshots: the copy of a source directory that a submitted run executes, and keeps.

``Experiment.submit`` selects the files of ``source_directory`` as Azure ML v1
does: the patterns of its ``.amlignore``, or of its ``.gitignore`` when it
has none (gitignore semantics: ``/outputs`` anchors at the root, ``data/``
matches directories, ``!keep.log`` re-includes, an excluded directory is not
entered), or, with neither file, v1's default patterns (:data:`DEFAULT_PATTERNS`).
Two things are never taken, whatever the ignore file says: the root
``outputs/`` directory, so that a run's outputs start empty and one run's
outputs never reappear in the next, and runstream's own state directory
when it lies inside the source (``./.runstream`` by default).

The selection is written to ``<RUNSTREAM_HOME>/runs/<run id>/snapshot.zip``
(the copy as submitted, whatever changes later), extracted beside it into
``snapshot/``, where the script then runs (its working directory), and
uploaded from the zip as the run's files ``snapshot/<path>``, so
``run.restore_snapshot()`` rebuilds the zip from any machine (and copies it
on the machine that submitted). v1's limits apply before anything is created:
at most :data:`MAX_FILES` files and :data:`MAX_BYTES` bytes, else
:class:`SnapshotError` says which and how to exclude files.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pathspec

from producer._errors import SnapshotError, UsageError

if TYPE_CHECKING:
    from producer._run import Run

#: Azure ML v1's limits (azureml._restclient.constants SNAPSHOT_MAX_FILES / SNAPSHOT_MAX_SIZE_BYTES).
MAX_FILES = 2000
MAX_BYTES = 300 * 1024 * 1024
#: The patterns v1 writes into a new project's .amlignore; used when a directory has no ignore file.
DEFAULT_PATTERNS = (".ipynb_checkpoints", "azureml-logs", ".azureml", ".git", "outputs", "azureml-setup", "docs")
#: Where a run's snapshot lives among its files.
PREFIX = "snapshot/"
#: The property naming a run's snapshot (v1's).
ID_PROPERTY = "ContentSnapshotId"
#: The submitted copy, beside the run's working directory under ``<home>/runs/<id>/``.
ARCHIVE = "snapshot.zip"
_IGNORE_FILES = (".amlignore", ".gitignore")
_UPLOAD_THREADS = 8


@dataclass(frozen=True)
class Snapshot:
    """The files of ``source`` a run takes (relative POSIX paths, sorted) and their total size."""

    source: Path
    files: tuple[str, ...]
    size: int
    ignore_file: str | None  # ".amlignore", ".gitignore" or None (v1's defaults applied)


def select(source: str | os.PathLike[str], *, exclude: Iterable[Path] = ()) -> Snapshot:
    """The snapshot of ``source``; raises :class:`SnapshotError` past v1's limits.

    ``exclude`` are directories never taken (runstream's state directory).
    """
    root = Path(source).resolve()
    if not root.is_dir():
        raise UsageError(f"source_directory {str(source)!r} is not a directory")
    ignore_file = next((name for name in _IGNORE_FILES if (root / name).is_file()), None)
    lines = (root / ignore_file).read_text(encoding="utf-8", errors="replace").splitlines() if ignore_file else []
    spec = pathspec.GitIgnoreSpec.from_lines(lines if ignore_file else DEFAULT_PATTERNS)
    skipped = {p.resolve() for p in exclude}
    files, size = [], 0
    for relative, path in _walk(root, spec, skipped):
        files.append(relative)
        size += path.stat().st_size
        if len(files) > MAX_FILES:
            raise SnapshotError(_too_big(root, f"has more than {MAX_FILES} files", ignore_file))
        if size > MAX_BYTES:
            raise SnapshotError(_too_big(root, f"is larger than {MAX_BYTES // (1024 * 1024)} MB", ignore_file))
    return Snapshot(root, tuple(sorted(files)), size, ignore_file)


def _walk(root: Path, spec: pathspec.GitIgnoreSpec, skipped: set[Path]) -> Iterator[tuple[str, Path]]:
    for directory, dirs, names in os.walk(root):  # symlinked directories are not entered
        here = Path(directory)
        prefix = here.relative_to(root).as_posix()
        prefix = "" if prefix == "." else prefix + "/"
        kept = []
        for name in dirs:
            relative = prefix + name
            if relative == "outputs" or (here / name).resolve() in skipped or spec.match_file(relative + "/"):
                continue
            kept.append(name)
        dirs[:] = kept  # an excluded directory is not entered (git's rule: nothing inside comes back)
        for name in names:
            relative = prefix + name
            path = here / name
            if spec.match_file(relative) or not path.is_file():
                continue  # ignored, or a dangling link, socket, fifo...
            yield relative, path


def _too_big(root: Path, problem: str, ignore_file: str | None) -> str:
    where = f"its {ignore_file}" if ignore_file else "a .amlignore file (gitignore syntax) in it"
    return (
        f"snapshot of {root}: the directory {problem}, Azure ML's snapshot limit; "
        f"exclude data, environments and build output with {where}"
    )


def archive(snapshot: Snapshot, target: Path) -> Path:
    """The snapshot's files as the zip ``target``: the run's copy as submitted, whatever the script or its
    author change afterwards (the working copy is extracted from it, the uploads read it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "x", zipfile.ZIP_DEFLATED, compresslevel=1) as out:
        for relative in snapshot.files:
            out.write(snapshot.source / relative, relative)
    return target


def extract(archive: Path, target: Path) -> Path:
    """Unpack a snapshot zip into ``target`` (created; it must not exist yet)."""
    target.mkdir(parents=True)
    with zipfile.ZipFile(archive) as source:
        source.extractall(target)  # names are the walk's relative paths: no '..', no absolute ones
        for info in source.infolist():
            mode = (info.external_attr >> 16) & 0o777
            if mode:  # zipfile does not restore them: an executable helper script stays executable
                (target / info.filename).chmod(mode)
    return target


def entries(archive: Path) -> list[tuple[str, Callable[[], bytes]]]:
    """``(run file name, reader)`` for each file of a snapshot zip, to upload as ``snapshot/<path>``."""
    with zipfile.ZipFile(archive) as source:
        names = source.namelist()
    return [(PREFIX + name, functools.partial(_member, archive, name)) for name in names]


def _member(archive: Path, name: str) -> bytes:
    with zipfile.ZipFile(archive) as source:
        return source.read(name)


def upload(run: Run, snapshot: Snapshot) -> list[str]:
    """Upload the snapshot as the run's files ``snapshot/<path>`` (a few at a time); returns the names."""
    names = [PREFIX + relative for relative in snapshot.files]
    with ThreadPoolExecutor(_UPLOAD_THREADS) as pool:
        list(pool.map(run.upload_file, names, (snapshot.source / r for r in snapshot.files)))
    return names


def take(run: Run, source: str | os.PathLike[str], home: Path) -> str:
    """v1's ``run.take_snapshot``: select, upload, name it; a run keeps one snapshot. Returns its id."""
    existing = run.get_properties().get(ID_PROPERTY)
    if existing:
        raise UsageError(f"run {run.id} already has the snapshot {existing}; runstream keeps one per run")
    snapshot = select(source, exclude=[home])  # never the workspace's own files
    upload(run, snapshot)
    snapshot_id = str(uuid.uuid4())
    run.add_properties({ID_PROPERTY: snapshot_id})
    return snapshot_id


def restore(run: Run, snapshot_id: str, path: str | os.PathLike[str] | None, submitted: Path) -> str:
    """Download the run's snapshot files into ``<path>/<snapshot_id>.zip`` (path: the temp dir); returns its path.

    ``submitted``: where a script submitted from this machine left its archive.
    """
    folder = Path(path) if path is not None else Path(tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    target = (folder / f"{snapshot_id}.zip").absolute()
    if submitted.is_file():
        shutil.copyfile(submitted, target)  # submitted from this machine: the very zip its uploads came from
        return str(target)
    names = [n for n in run.get_file_names() if n.startswith(PREFIX)]
    if not names:
        raise UsageError(f"run {run.id} has no snapshot (it was neither submitted nor started with one)")
    partial = target.with_name(target.name + ".part")
    try:
        with tempfile.TemporaryDirectory() as scratch, zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in names:
                local = run.download_file(name, Path(scratch) / "file")
                archive.write(local, name[len(PREFIX) :])
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, target)
    return str(target)
