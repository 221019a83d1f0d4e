"""``steer data fetch``: download named sets from their pinned upstream commits into a cache.

Each file of a set (:mod:`steer.data.registry`) is downloaded over HTTP(S) from
``{mirror}/{owner}/{repo}/{commit}/{path}`` (``mirror`` defaults to
raw.githubusercontent.com; ``$STEER_DATA_MIRROR`` or ``mirror=`` replace it, e.g. for an
internal mirror or a test server), into ``<cache>/.partial/<path>.part``:

* an interrupted download resumes with an HTTP ``Range`` request on the next fetch;
* a finished download is checked against the registry's byte size and SHA-256; only
  then is it moved into place with ``os.replace`` (atomic), so a reader never sees a
  half-written or altered file; a mismatch deletes the download and stops with one line;
* a file already in the cache is re-hashed: a corrupted copy is deleted and fetched again.

Next to the files each set folder gets its licence (the upstream file, or ``LICENSE.md``
when upstream has none) and a ``SOURCE.md`` note saying where the files came from.
Non-commercial licences are printed when such a set is fetched.

Cache folder: ``$STEER_CACHE/data`` if ``STEER_CACHE`` is set, else the platform cache
folder (``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux, ``~/Library/Caches`` on macOS,
``%LOCALAPPDATA%`` on Windows) + ``steer/data``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import http.client
import os
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterable

from steer.atomic import atomic_write_text
from steer.data.registry import FOLDERS, GITHUB_RAW, SETS, FileEntry, files_of_set, registry_files, upstream_url
from steer.errors import SteerInputError

__all__ = ["FetchError", "data_cache_dir", "fetch_sets", "mirror_base", "sha256_file", "steer_cache_root"]

MIRROR_ENV = "STEER_DATA_MIRROR"
TIMEOUT_S = 30.0
_CHUNK = 1 << 16


class FetchError(SteerInputError):
    """A download failed (offline, HTTP error) or its bytes differ from the pinned SHA-256."""


def steer_cache_root() -> Path:
    """``$STEER_CACHE``, else the platform's per-user cache folder + ``steer``."""
    env = os.environ.get("STEER_CACHE")
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "steer"


def data_cache_dir() -> Path:
    """Where fetched sets are stored: ``steer_cache_root() / "data"``, in the shared layout."""
    return steer_cache_root() / "data"


def mirror_base(mirror: str | None = None) -> str:
    """The base URL files are fetched from: ``mirror``, ``$STEER_DATA_MIRROR`` or GitHub raw."""
    return (mirror or os.environ.get(MIRROR_ENV) or GITHUB_RAW).rstrip("/")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _is_good(path: Path, entry: FileEntry) -> bool:
    try:
        return path.stat().st_size == entry.bytes and sha256_file(path) == entry.sha256
    except FileNotFoundError:
        return False


def _bar(entry: FileEntry, initial: int, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=entry.bytes, initial=initial, unit="B", unit_scale=True, leave=False,
                desc=entry.path, disable=not progress, file=sys.stderr)


def _download(entry: FileEntry, url: str, part: Path, progress: bool) -> None:
    """Append the missing bytes of ``url`` to ``part`` (resuming from its current size)."""
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    if have > entry.bytes:  # not a prefix of the right file
        part.unlink()
        have = 0
    if have == entry.bytes:
        return
    request = urllib.request.Request(url, headers={"User-Agent": "steer-data-fetch"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp:
            if have and resp.status != 206:  # the server ignored the range: start over
                have = 0
            with part.open("ab" if have else "wb") as out, _bar(entry, have, progress) as bar:
                while True:
                    block = resp.read(_CHUNK)
                    if not block:
                        break
                    out.write(block)
                    bar.update(len(block))
                out.flush()
                os.fsync(out.fileno())
    except urllib.error.HTTPError as err:
        if err.code == 416:  # our partial file is not a prefix the server knows: start over
            part.unlink(missing_ok=True)
        raise FetchError(f"cannot download {url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, socket.timeout) as err:
        reason = getattr(err, "reason", None) or err
        raise FetchError(
            f"cannot download {url}: {reason}; check the network (or set {MIRROR_ENV} to a mirror);"
            " run the fetch again to resume"
        ) from None


def fetch_file(entry: FileEntry, root: Path, base: str, progress: bool = True) -> bool:
    """Make ``root/entry.path`` a verified copy; True if it was downloaded, False if the cache had it."""
    target = root / entry.path
    if _is_good(target, entry):
        return False
    target.unlink(missing_ok=True)  # absent, or corrupted: never kept
    part = root / ".partial" / (entry.path + ".part")
    url = upstream_url(entry.path, base)
    _download(entry, url, part, progress)
    size = part.stat().st_size
    if size < entry.bytes:  # the connection ended early: keep the part, the next fetch resumes it
        raise FetchError(
            f"cannot download {url}: the connection closed after {size} of {entry.bytes} bytes;"
            " run the fetch again to resume"
        )
    actual = sha256_file(part)
    if size != entry.bytes or actual != entry.sha256:
        part.unlink()
        raise FetchError(
            f"{url}: sha256 {actual} ({size} bytes) differs from the pinned {entry.sha256} ({entry.bytes} bytes);"
            " the download was discarded (upstream changed, or a proxy altered it)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, target)
    return True


def _source_note(folder_name: str, files: list[FileEntry], base: str) -> str:
    folder = FOLDERS[folder_name]
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# {folder_name} (fetched by `steer data fetch`)",
        "",
        f"- Repository: github `{folder.repo}`, commit `{folder.commit}`",
        f"- Licence: {folder.licence}" + (" (non-commercial use only)" if folder.non_commercial else ""),
        f"- Downloaded from: {base} on {when}",
        "- Every file below was checked against its pinned SHA-256 before it was stored.",
        "",
        "| file | upstream URL | bytes | sha256 |",
        "|---|---|---|---|",
    ]
    lines += [f"| `{e.path}` | {upstream_url(e.path)} | {e.bytes} | `{e.sha256}` |" for e in files]
    return "\n".join(lines) + "\n"


def licence_notice(name: str) -> str | None:
    """The line printed when a non-commercial set is fetched (None for permissive licences)."""
    folder = FOLDERS[SETS[name].folder]
    if not folder.non_commercial:
        return None
    return f"note: {name} is licensed {folder.licence}: research / non-commercial use only; do not redistribute it."


def fetch_sets(
    names: Iterable[str],
    *,
    cache_dir: str | Path | None = None,
    mirror: str | None = None,
    entries: dict[str, FileEntry] | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> Path:
    """Download the named sets into ``cache_dir`` (default :func:`data_cache_dir`); returns it.

    ``entries`` replaces the embedded registry (tests serve their own small files).
    Already cached, intact files are not downloaded again.
    """
    wanted = list(dict.fromkeys(n.strip().lower().replace("_", "-") for n in names))
    unknown = [n for n in wanted if n not in SETS]
    if unknown:
        raise SteerInputError(f"unknown dataset {unknown[0]!r}; fetchable: {', '.join(SETS)}")
    root = Path(cache_dir) if cache_dir is not None else data_cache_dir()
    base = mirror_base(mirror)
    for name in wanted:
        files = files_of_set(name, entries)
        if not files:
            raise SteerInputError(f"no files registered for {name!r}")
        notice = licence_notice(name)
        if notice:
            echo(notice)
        got = sum(fetch_file(e, root, base, progress) for e in files)
        folder = SETS[name].folder
        note = FOLDERS[folder].licence_note
        if note:
            atomic_write_text(root / folder / "LICENSE.md", note)
        pool = registry_files() if entries is None else entries  # the note covers every set of the folder
        present = [e for p, e in sorted(pool.items()) if p.startswith(folder + "/") and (root / p).is_file()]
        atomic_write_text(root / folder / "SOURCE.md", _source_note(folder, present, base))
        size = sum(e.bytes for e in files)
        echo(f"{name}: {len(files)} files, {size / 1e6:.1f} MB ({got} downloaded, {len(files) - got} already cached)"
             f" in {root / folder}")
    return root
