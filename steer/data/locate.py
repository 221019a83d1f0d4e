"""Which folder a named set is read from: one resolution order for every command and the API.

1. ``--data-dir`` (``data_dir=``), else ``$STEER_SHARED_DATA``: a folder in the shared layout;
2. ``../shared/data`` next to the project root (this project's own machines and CI);
3. the fetch cache (``steer data fetch``, :func:`steer.data.fetch.data_cache_dir`).

A folder *has* a set when every data file its reader opens is present in it.  The first folder
that has the set is used and its files are then checked against that folder's
``manifest.json`` (or, for a folder without one such as the cache, against the
registry's pinned hashes): a corrupted file is an error, never a reason to silently read
another copy.  When no folder has the set, the error names ``steer data fetch NAME``;
with ``fetch=True`` (``--fetch``) the set is downloaded into the cache instead.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from steer.data.registry import SETS, FileEntry, entries_from_manifest, read_files_of_set, registry_files

__all__ = ["Location", "candidate_locations", "find_set", "location_entries", "project_shared_dir", "shared_data_dir"]

ENV_VAR = "STEER_SHARED_DATA"


@dataclass(frozen=True)
class Location:
    """A folder that may hold named sets, and why it is searched (``--data-dir``, ``STEER_SHARED_DATA``,
    ``../shared/data`` or ``cache``)."""

    root: Path
    kind: str

    def describe(self) -> str:
        return f"{self.kind} ({self.root})"


def project_shared_dir() -> Path:
    """``<project root>/../shared/data`` (the project root holds the ``steer`` package)."""
    return (Path(__file__).resolve().parents[2].parent / "shared" / "data").resolve()


def shared_data_dir() -> Path:
    """``$STEER_SHARED_DATA`` if set, else ``<project root>/../shared/data``.

    The first two places named sets are looked for; the fetch cache
    (:func:`steer.data.fetch.data_cache_dir`) comes after them (:func:`candidate_locations`).
    The path is returned even if it does not exist.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser().resolve()
    return project_shared_dir()


def candidate_locations(data_dir: str | os.PathLike | None = None) -> list[Location]:
    """The folders searched, in order (see the module docstring)."""
    from steer.data.fetch import data_cache_dir

    out = []
    if data_dir is not None:
        out.append(Location(Path(data_dir).expanduser().resolve(), "--data-dir"))
    elif os.environ.get(ENV_VAR):
        out.append(Location(Path(os.environ[ENV_VAR]).expanduser().resolve(), ENV_VAR))
    out.append(Location(project_shared_dir(), "../shared/data"))
    out.append(Location(data_cache_dir().expanduser().resolve(), "cache"))
    seen: set[Path] = set()
    unique = []
    for loc in out:
        if loc.root not in seen:
            seen.add(loc.root)
            unique.append(loc)
    return unique


_MANIFESTS: dict[tuple[str, int], dict[str, FileEntry]] = {}


def location_entries(root: Path) -> dict[str, FileEntry]:
    """The files a folder should hold: its own ``manifest.json`` if it has one (shared copies,
    test fixtures), else the registry's pinned upstream files (the fetch cache).
    Raises ``ValueError`` for an unreadable manifest."""
    path = root / "manifest.json"
    try:
        stat = path.stat()
    except FileNotFoundError:
        return registry_files()
    key = (str(path), stat.st_mtime_ns)
    if key not in _MANIFESTS:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
            raise ValueError("no 'files' list")
        _MANIFESTS[key] = entries_from_manifest(doc)
    return _MANIFESTS[key]


def has_set(root: Path, name: str) -> bool:
    """Every data file of set ``name`` (per the folder's own file list) exists in ``root``."""
    if not root.is_dir():
        return False
    try:
        entries = location_entries(root)
    except (ValueError, KeyError, TypeError):
        return True  # let the reader report the unreadable manifest, naming it
    data = read_files_of_set(name, entries)
    if not data and entries is not registry_files():
        data = read_files_of_set(name)  # a manifest that lacks the set: the upstream file names
    return bool(data) and all((root / e.path).is_file() for e in data)


def find_set(name: str, data_dir: str | os.PathLike | None = None) -> Location | None:
    """The first location that has set ``name``, or None."""
    if name not in SETS:
        raise KeyError(name)
    for loc in candidate_locations(data_dir):
        if has_set(loc.root, name):
            return loc
    return None


@dataclass(frozen=True)
class SetStatus:
    """One row of ``steer data list``."""

    name: str
    items: str
    what: str
    licence: str
    non_commercial: bool
    megabytes: float
    location: Location | None


def set_statuses(data_dir: str | os.PathLike | None = None) -> list[SetStatus]:
    """Every fetchable set: documented size, licence, and where it would be read from now."""
    from steer.data.registry import FOLDERS, files_of_set

    rows = []
    for name, spec in SETS.items():
        folder = FOLDERS[spec.folder]
        size = sum(e.bytes for e in files_of_set(name)) / 1e6
        rows.append(SetStatus(name, spec.items, spec.what, folder.licence, folder.non_commercial, size,
                              find_set(name, data_dir)))
    return rows
