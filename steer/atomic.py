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


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``, on error it is deleted."""
    target = Path(path)
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
