"""``--data hf:ORG/NAME[:split][@revision]``: any Hugging Face dataset (or local data file) as eval items.

Loaded with ``datasets.load_dataset`` (streamed when only the first ``limit`` rows are
needed), then each row goes through the same conversion as a user file
(:func:`steer.data.user_rows.rows_to_items`): ``prompt`` (required), ``image``, ``label``,
``category``, ``answer``, ``id``; ``--prompt-column`` / ``--image-column`` /
``--label-column`` (or ``columns=``) name the dataset's own columns when they differ.

* Images stored in the dataset (an ``Image`` feature holding bytes) are written once to
  ``$STEER_CACHE/data/hf-images/<sha256>.<ext>`` so every item has a file path.
* ``ClassLabel`` labels are turned into their names (``safe`` / ``unsafe`` ...).
* The same path reads local files and folders: ``hf:data.parquet``, ``hf:rows.csv``, a
  folder of data files, or a folder written by ``save_to_disk``; a bare ``.parquet`` /
  ``.arrow`` path given as ``--data`` comes here too.
* Offline it fails fast, in one line naming the dataset: with ``HF_HUB_OFFLINE=1`` only
  the local ``datasets`` cache is tried; otherwise the hub endpoint (``$HF_ENDPOINT``) is
  probed with a short TCP connect first, so a machine without network never hangs in retries.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import socket
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from steer.data.user_rows import UserDatasetError, rows_to_items

__all__ = ["HubDatasetError", "HubSpec", "hub_offline", "load_hf_items", "parse_hf_spec"]

PREFIX = "hf:"
PROBE_TIMEOUT_S = 3.0
LOCAL_BUILDERS = {".parquet": "parquet", ".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json",
                  ".arrow": "arrow", ".txt": "text"}


class HubDatasetError(UserDatasetError):
    """A hub dataset could not be loaded (unknown id, split, offline, bad columns)."""


@dataclass(frozen=True)
class HubSpec:
    """``hf:ORG/NAME[:split][@revision]`` parsed; ``repo`` may also be a local path."""

    repo: str
    split: str | None = None
    revision: str | None = None

    def describe(self) -> str:
        return self.repo + (f":{self.split}" if self.split else "") + (f"@{self.revision}" if self.revision else "")


def parse_hf_spec(text: str) -> HubSpec:
    """``'hf:org/name:test@v1.0'`` -> ``HubSpec('org/name', 'test', 'v1.0')`` (the ``hf:`` prefix is optional)."""
    body = text.strip()
    if body.lower().startswith(PREFIX):
        body = body[len(PREFIX):]
    if not body:
        raise HubDatasetError("empty hub dataset id: use hf:ORG/NAME[:split][@revision]")
    if Path(body).expanduser().exists():  # a local file or folder, whatever characters its name has
        return HubSpec(body)
    revision = None
    if "@" in body:
        body, revision = body.rsplit("@", 1)
    split = None
    if ":" in body:
        body, split = body.split(":", 1)
    if not body or (revision is not None and not revision) or (split is not None and not split):
        raise HubDatasetError(f"bad hub dataset spec {text!r}: use hf:ORG/NAME[:split][@revision]")
    return HubSpec(body, split, revision)


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` set to a true value."""
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _unreachable(timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why the hub endpoint cannot be reached (None when a TCP connection opens)."""
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    url = urllib.parse.urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=timeout).close()
    except OSError as err:
        return f"cannot reach {endpoint} ({err.strerror or err})"
    return None


@contextmanager
def _offline_libraries(offline: bool) -> Iterator[None]:
    """Make ``datasets`` and ``huggingface_hub`` honour ``HF_HUB_OFFLINE`` even when it was set after
    they were imported (they read it once, at import); restored afterwards."""
    if not offline:
        yield
        return
    import datasets.config
    import huggingface_hub.constants as hub_constants

    saved = (datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE = saved


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def _load(spec: HubSpec, streaming: bool) -> Any:
    """The ``datasets`` object for ``spec`` (a Dataset/IterableDataset, or a dict of splits)."""
    import datasets

    path = Path(spec.repo).expanduser()
    if path.exists():
        if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()
                              or (path / "state.json").exists()):
            return datasets.load_from_disk(str(path))
        if path.is_file():
            builder = LOCAL_BUILDERS.get(path.suffix.lower())
            if builder is None:
                raise HubDatasetError(f"{path}: no datasets builder for {path.suffix!r} files")
            return datasets.load_dataset(builder, data_files=str(path), split=spec.split or "train")
        return datasets.load_dataset(str(path), split=spec.split)
    return datasets.load_dataset(spec.repo, split=spec.split, revision=spec.revision, streaming=streaming)


def _pick_split(ds: Any, spec: HubSpec) -> Any:
    if isinstance(ds, dict) or type(ds).__name__ in ("DatasetDict", "IterableDatasetDict"):
        names = list(ds)
        if spec.split is None:
            if len(names) != 1:
                raise HubDatasetError(f"{spec.repo} has splits {names}: pick one with hf:{spec.repo}:SPLIT")
            return ds[names[0]]
        if spec.split not in ds:
            raise HubDatasetError(f"{spec.repo} has no split {spec.split!r}; splits: {names}")
        return ds[spec.split]
    return ds


def _image_file(value: Any, cache: Path) -> Any:
    """An ``Image`` feature value (``{"bytes", "path"}``, or a decoded PIL image from a stream) as a
    file path; other values unchanged."""
    if hasattr(value, "save") and hasattr(value, "size"):  # PIL image: streaming may decode before we can cast
        import io

        buf = io.BytesIO()
        value.save(buf, format="PNG")
        value = {"bytes": buf.getvalue(), "path": None}
    if not isinstance(value, dict) or "bytes" not in value:
        return value
    data, path = value.get("bytes"), value.get("path")
    if not data:
        return path
    digest = hashlib.sha256(data).hexdigest()
    ext = Path(path).suffix if path and Path(path).suffix else ".png"
    target = cache / f"{digest}{ext}"
    if not target.is_file():
        from steer.atomic import atomic_path

        with atomic_path(target) as tmp:
            tmp.write_bytes(data)
    return str(target)


def load_hf_items(
    text: str,
    *,
    split: str | None = None,
    limit: int | None = None,
    default_label: str | None = None,
    columns: dict[str, str] | None = None,
    check_images: bool = True,
) -> list:
    """Items of a hub dataset or local data file (see the module docstring).

    ``columns`` maps standard names to the dataset's (``{"prompt": "question"}``); ``None``
    means the options in force (the CLI's ``--prompt-column`` ...).
    """
    from steer.data.fetch import data_cache_dir
    from steer.data.options import current_data_options

    spec = parse_hf_spec(text)
    if split is not None:
        spec = HubSpec(spec.repo, split, spec.revision)
    columns = current_data_options().columns() if columns is None else columns
    local = Path(spec.repo).expanduser().exists()
    if not local and not hub_offline():
        reason = _unreachable()
        if reason:
            raise HubDatasetError(
                f"cannot load hub dataset {spec.describe()!r}: {reason}; connect, or set HF_HUB_OFFLINE=1 to use a cached copy"
            )
    try:
        import datasets

        datasets.utils.logging.set_verbosity_error()
        with _offline_libraries(hub_offline()):
            ds = _pick_split(_load(spec, streaming=limit is not None and not local), spec)
    except HubDatasetError:
        raise
    except Exception as err:  # noqa: BLE001 - datasets raises many types; the user needs one line
        where = "offline (HF_HUB_OFFLINE=1) and not in the local datasets cache" if hub_offline() and not local else ""
        raise HubDatasetError(
            f"cannot load {'dataset' if local else 'hub dataset'} {spec.describe()!r}"
            f"{': ' + where if where else ''}: {_one_line(err)}"
        ) from None
    names = list(getattr(ds, "column_names", None) or [])
    features = getattr(ds, "features", None) or {}
    rename = {theirs: mine for mine, theirs in columns.items()}
    missing = [c for c in rename if names and c not in names]
    if missing:
        raise HubDatasetError(f"{spec.describe()}: no column {missing[0]!r}; columns: {', '.join(names)}")
    for theirs, mine in rename.items():
        if mine in names and mine != theirs:
            ds = ds.remove_columns([mine])
    image_col = columns.get("image", "image")
    feat = features.get(image_col) if hasattr(features, "get") else None
    if feat is not None and type(feat).__name__ == "Image" and getattr(feat, "decode", False):
        ds = ds.cast_column(image_col, datasets.Image(decode=False))
    label_col = columns.get("label", "label")
    label_feat = features.get(label_col) if hasattr(features, "get") else None
    rows = itertools.islice(iter(ds), limit) if limit is not None else iter(ds)
    cache = data_cache_dir() / "hf-images"
    base = Path(spec.repo).expanduser().resolve()
    base = base if base.is_dir() else base.parent if local else Path.cwd()

    def convert(row: dict) -> dict:
        row = {rename.get(k, k): v for k, v in row.items()}
        if "image" in row:
            row["image"] = _image_file(row["image"], cache)
        if label_feat is not None and type(label_feat).__name__ == "ClassLabel" and isinstance(row.get("label"), int):
            row["label"] = label_feat.int2str(row["label"])
        return row

    source = Path(f"hf:{spec.describe()}") if not local else Path(spec.repo)
    stem = spec.repo.rstrip("/").split("/")[-1]
    return rows_to_items((convert(dict(r)) for r in rows), source, base, stem,
                         default_label=default_label, check_images=check_images)
