"""Is a named set's copy intact: SHA-256 checks of its files before any reader opens them.

A folder in the shared layout carries a ``manifest.json`` (path, size, SHA-256 of every
file); the fetch cache has none and is checked against the registry's pinned hashes
instead (:func:`steer.data.locate.location_entries`).  A missing or altered file is an
error naming the file and the fix, never a reason to silently read another copy: a
benchmark number read from a changed file would not be the benchmark's number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from steer.data.locate import ENV_VAR, location_entries, shared_data_dir
from steer.errors import SteerInputError

__all__ = ["SharedDataError", "SharedDataIntegrityError", "SharedDataMissingError", "verify_manifest"]


class SharedDataError(SteerInputError):
    """The shared data folder is missing, incomplete or altered."""


class SharedDataMissingError(SharedDataError):
    """A shared data file (or the manifest) is missing."""


class SharedDataIntegrityError(SharedDataError):
    """A shared data file's SHA-256 differs from ``manifest.json``."""


_RESTORE_HINT = (
    "download it again with `steer data fetch NAME`, restore ../shared/data, or set"
    f" {ENV_VAR} to a complete copy"
)

_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def _load_manifest(data_dir: Path) -> dict[str, Any]:
    """The folder's ``manifest.json`` entries, or the registry's pinned hashes when it has none."""
    try:
        return location_entries(data_dir)
    except (ValueError, KeyError, TypeError) as exc:
        raise SharedDataIntegrityError(f"unreadable manifest {data_dir / 'manifest.json'}: {exc}") from None


def _sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    cached = _HASH_CACHE.get(key)
    if cached is None:
        from steer.data.fetch import sha256_file  # the downloader's hash; its network imports only on use

        cached = sha256_file(path)
        _HASH_CACHE[key] = cached
    return cached


def verify_manifest(
    paths: Iterable[str | Path], data_dir: str | Path | None = None, *, hint: str = _RESTORE_HINT
) -> None:
    """Check the SHA-256 of each file in ``paths`` against the folder's ``manifest.json``
    (or, for a folder without one such as the fetch cache, the registry's pinned hashes).

    ``paths`` are relative to the data folder (or absolute paths inside it).
    Raises :class:`SharedDataMissingError` for a missing file and
    :class:`SharedDataIntegrityError` for a hash mismatch or a file the manifest does
    not list; each message names the file, then ``hint``.
    """
    root = Path(data_dir).resolve() if data_dir is not None else shared_data_dir()
    manifest = _load_manifest(root)
    tail = f"; {hint}" if hint else ""
    for p in paths:
        p = Path(p)
        rel = p.resolve().relative_to(root) if p.is_absolute() else p
        rel_key = rel.as_posix()
        full = root / rel
        if not full.is_file():
            raise SharedDataMissingError(f"data file missing: {full}{tail}")
        entry = manifest.get(rel_key)
        if entry is None:
            raise SharedDataIntegrityError(f"{full} is not listed in {root / 'manifest.json'}{tail}")
        actual = _sha256(full)
        if actual != entry.sha256:
            raise SharedDataIntegrityError(
                f"data file altered: {full}: sha256 expected {entry.sha256}, actual {actual}{tail}"
            )
