"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one, never half.

Everything `steer` writes -- vector files, checkpoints, results -- goes through
:func:`atomic_path`: write to a temporary file in the target's folder, fsync, then
``os.replace`` (atomic on POSIX and Windows for paths on one file system).
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: the process's umask at import: results get the mode a plain ``open(path, "w")`` would give
#: them (usually 0644), not ``mkstemp``'s private 0600 -- they are made to be shared and read
_FILE_MODE = 0o666 & ~_read_umask()


def check_output_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path, or a :class:`SteerInputError` naming why no file can be written there:
    the path is a folder, a parent is a file, or the nearest existing folder is not writable.
    Commands call it before long work so a bad ``--out`` fails in a second, not after an hour."""
    from steer.errors import SteerInputError

    target = Path(path)
    if target.is_dir():
        raise SteerInputError(f"{target} is a folder; give a file path inside it, e.g. {target / target.name}")
    parent = target.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise SteerInputError(f"cannot write {target}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SteerInputError(f"cannot write {target}: no permission to write in {parent}")
    return target


def check_output_dir(path: str | os.PathLike) -> Path:
    """Like :func:`check_output_path` for an output *folder* (``--out`` of compare, sweep, demo)."""
    from steer.errors import SteerInputError

    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise SteerInputError(f"{folder} is a file; --out takes a folder (compare.json, runs/ ... go inside it)")
    check_output_path(folder / "x")
    return folder


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``, on error it is deleted."""
    target = check_output_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.chmod(_FILE_MODE)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
