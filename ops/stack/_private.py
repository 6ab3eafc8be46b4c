"""Files only their owner may read: the state directory, its secrets, its logs and data.

The stack keeps everything under ``RUNSTREAM_HOME``: directories 0700, files
0600, and the services it spawns run with umask 077 so what they write is
private too. Running as root, PostgreSQL runs as the ``postgres`` account, which
must reach its data directory: the directories on its way (the home, ``logs``)
are then 0710 with group ``postgres`` - it may pass through them, list and read
nothing - and everything else is as above.

A home that belongs to another user is refused, never adopted: its pid files,
configuration and secrets would be theirs to forge.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import stat
from collections.abc import Iterator
from pathlib import Path

from ops.stack import _tools

__all__ = ["HomeError", "check_owned", "private_dir", "tighten", "write_private"]

PRIVATE_UMASK = 0o077


class HomeError(RuntimeError):
    """``RUNSTREAM_HOME`` (or a file in it) is not ours alone: another user owns it or may write it."""


def _owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def check_owned(path: Path) -> None:
    """Refuse ``path`` unless it is ours and no one else may write it; a missing path is fine."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    me = os.geteuid()
    if st.st_uid != me:
        raise HomeError(
            f"{path} belongs to {_owner_name(st.st_uid)}, not to you ({_owner_name(me)}): refusing to use"
            " another user's RUNSTREAM_HOME"
        )
    if st.st_mode & 0o022:
        raise HomeError(f"{path} may be written by other users (mode {st.st_mode & 0o777:04o}): refusing to trust it")


def _postgres_gid() -> int | None:
    """The group that may pass through the home to the PostgreSQL data directory (root only)."""
    if not _tools.running_as_root():
        return None
    try:
        return grp.getgrnam("postgres").gr_gid
    except KeyError:
        return None


def private_dir(path: Path, *, postgres_passes: bool = False) -> Path:
    """``path`` created if need be, mode 0700 (0710 group postgres when ``postgres_passes`` and root)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    gid = _postgres_gid() if postgres_passes else None
    if gid is None:
        os.chmod(path, 0o700)
    else:
        os.chown(path, os.geteuid(), gid)
        os.chmod(path, 0o710)  # noqa: S103 - passage for the postgres group alone: no read, no write
    return path


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, mode 0600 from the first byte (a temporary file, then rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the file may have existed with another mode
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            fd = -1
            out.write(text)
    finally:
        if fd >= 0:
            os.close(fd)
    os.replace(tmp, path)


def _walk(root: Path, skip: Path | None) -> Iterator[tuple[Path, bool]]:
    for parent, dirs, files in os.walk(root):
        here = Path(parent)
        if skip is not None and here == skip:
            dirs.clear()
            continue
        for name in dirs:
            if skip is None or here / name != skip:
                yield here / name, True
        for name in files:
            yield here / name, False


def tighten(root: Path, *, skip: Path | None = None) -> None:
    """Everything below ``root`` that we own: directories 0700, files 0600 (a home made by an older runstream).

    ``skip`` is a subtree left alone (PostgreSQL's, which it keeps 0700/0600 itself).
    Directories that let the ``postgres`` account through keep that (0710).
    """
    for path, is_dir in _walk(root, skip):
        with contextlib.suppress(FileNotFoundError):
            st = path.lstat()
            if st.st_uid != os.geteuid() or stat.S_ISLNK(st.st_mode):
                continue
            wanted = (0o710 if st.st_mode & 0o070 == 0o010 else 0o700) if is_dir else 0o600
            if stat.S_IMODE(st.st_mode) & ~wanted:
                os.chmod(path, stat.S_IMODE(st.st_mode) & wanted)
