"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one, never half.

Everything `steer` writes -- vector files, checkpoints, results -- goes through
:func:`atomic_path`: write to a temporary file in the target's folder, fsync, then
``os.replace`` (atomic on POSIX and Windows for paths on one file system).
"""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file now (usually 0644), not
    ``mkstemp``'s private 0600: results are made to be shared and read. Read at each write,
    so a umask set after import counts."""
    return 0o666 & ~_read_umask()


#: symlinked outputs a command was told to write through (``--force``); see :func:`check_output_path`
_FORCED_LINKS: set[str] = set()


def check_output_path(
    path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (), force: bool = False
) -> Path:
    """``path`` as a Path, or a :class:`SteerInputError` naming why no file can be written there.

    Refused: a folder; anything else that is not a regular file (a FIFO would block the
    command, a device node would be replaced by a plain file); one of the command's own
    ``inputs`` (the data would be replaced by the results); a symbolic link unless
    ``force`` (an atomic rename would replace the link while its target kept the old
    content; with ``force`` :func:`atomic_path` writes the link's target instead);
    a parent that is a file; a folder without write permission. Commands call it before
    long work so a bad ``--out`` fails in a second, not after an hour."""
    from steer.errors import SteerInputError

    target = Path(path)
    if target.is_symlink():
        if not force and os.path.abspath(target) not in _FORCED_LINKS:  # once allowed, for the whole command
            raise SteerInputError(
                f"{target} is a symbolic link (to {os.readlink(target)}); a write would replace the link, not its "
                "target: give the real path, or --force to write to the file it points at"
            )
        _FORCED_LINKS.add(os.path.abspath(target))
    elif target.is_dir():
        raise SteerInputError(f"{target} is a folder; give a file path inside it, e.g. {target / target.name}")
    elif target.exists() and not target.is_file():
        raise SteerInputError(f"{target} exists and is not a regular file (a FIFO, device or socket); give a file path")
    for source in inputs:
        if target.exists() and Path(source).exists() and os.path.samefile(target, source):
            raise SteerInputError(f"{target} is also an input of this command; write the output to another path")
    parent = target.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise SteerInputError(f"cannot write {target}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SteerInputError(f"cannot write {target}: no permission to write in {parent}")
    return target


def existing_paths(*specs: str | os.PathLike | None) -> list[Path]:
    """The files among command-line inputs: ``specs`` may be comma-separated lists, with
    ``@MODE`` suffixes or shared set names; names that are no existing path are left out."""
    found: list[Path] = []
    for spec in specs:
        if spec is None:
            continue
        text = os.fspath(spec)
        for part in [text, *text.split(",")]:
            for candidate in (part, part.rsplit("@", 1)[0]):
                path = Path(candidate.strip()).expanduser()
                if candidate.strip() and _exists(path) and path not in found:
                    found.append(path)
    return found


def _exists(path: Path) -> bool:
    """``path.exists()``, False for a name the OS cannot even look up (e.g. a long list of
    set names, ENAMETOOLONG), since such a spec is no file."""
    try:
        return path.exists()
    except OSError:
        return False


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
    if target.is_symlink():  # allowed by --force: update the file the link points at, keep the link
        target = check_output_path(os.path.realpath(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _new_temporary(target)
    try:
        yield tmp_path
        tmp_path.chmod(_file_mode())  # after the write: a writer may have made the file anew
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    finally:
        _UNFINISHED.discard(tmp_path)


#: temporary files of the writes in progress. A signal can land where a write's own clean-up
#: never runs (before its ``try``, or inside contextlib's ``__enter__`` / ``__exit__``, where
#: the generator is not told), so the CLI removes what is left here when it is interrupted.
_UNFINISHED: set[Path] = set()


def _new_temporary(target: Path) -> Path:
    """An empty private file next to ``target``, registered in :data:`_UNFINISHED` *before* it
    exists, so that no moment leaves an unregistered file behind (``mkstemp`` returns the
    name only after creating it)."""
    for _ in range(100):
        tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
        _UNFINISHED.add(tmp)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            _UNFINISHED.discard(tmp)  # someone else's file of that name
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"could not create a temporary file next to {target}")


def remove_unfinished_writes() -> None:
    """Delete the temporary files of writes an interrupt cut off (the targets keep their old content)."""
    while _UNFINISHED:
        _UNFINISHED.pop().unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
