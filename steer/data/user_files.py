"""User dataset files as :class:`~steer.data.items.EvalItem` rows, and plain JSON row files.

:func:`load_user_dataset` reads what a user brings (``--data FILE``): ``.jsonl``,
``.csv`` / ``.tsv`` and ``.json`` here, and ``.parquet`` / ``.arrow`` files or dataset
folders through ``datasets`` (:mod:`steer.data.hub`).  Each row goes through
:func:`steer.data.user_rows.row_to_item`, so every format has the same columns and the same
error messages.  :func:`read_json_rows` is the raw reader calibration uses for its own
``.json`` / ``.jsonl`` inputs (contrast pairs, lens prompts, TGA examples).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from steer.data.items import LABELS, EvalItem
from steer.data.user_rows import EXPECTED_COLUMNS, UserDatasetError, renamed_row, row_error, row_to_item
from steer.errors import SteerInputError

__all__ = ["load_user_dataset", "read_json_rows"]


def read_json_rows(path: Path, what: str = "data file") -> list[Any]:
    """The rows of a ``.json`` file (a list, or a dict with ``data``/``rows``) or of a
    ``.jsonl`` file (one JSON value per non-empty line); errors name the file and line."""
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserDatasetError(f"{path}: invalid JSON ({exc})") from None
        if isinstance(rows, dict):
            rows = rows.get("data") or rows.get("rows") or []
        if not isinstance(rows, list):
            raise UserDatasetError(f"{path}: a .json {what} must hold a list of rows")
        return rows
    rows = []
    for i, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise UserDatasetError(f"{path} line {i + 1}: not JSON ({exc})") from None
    return rows


def load_user_dataset(
    path: str | Path,
    *,
    split: str | None = None,
    default_label: str | None = None,
    check_images: bool = True,
) -> list[EvalItem]:
    """Read a user dataset: a ``.jsonl`` file, a ``.csv`` file, a ``.json`` list, or, through
    ``datasets`` (:mod:`steer.data.hub`), a ``.parquet`` / ``.arrow`` file, a folder written by
    ``save_to_disk`` or a folder of data files.  ``--prompt-column`` and friends
    (:func:`steer.data.options.using_data_options`) rename the dataset's own columns.

    Columns: ``prompt`` (required); ``image`` (path, relative to the file's folder, or
    to the dataset folder itself), ``label`` ("harmful"/"benign"; "unsafe"/"safe" are
    accepted; empty means ``default_label``, and with no ``default_label`` an unlabelled
    row is an error: labels are never guessed), ``category``, ``answer``, ``id``
    (optional).  Other columns go to ``EvalItem.meta``.  Errors name the file, the row
    (1-based data row) and the expected columns.
    """
    if default_label is not None and default_label not in LABELS:
        raise SteerInputError(f"default_label must be one of {LABELS}, got {default_label!r}")
    path = Path(path).expanduser()
    if not path.exists():
        raise UserDatasetError(f"dataset not found: {path}")
    kwargs = dict(default_label=default_label, check_images=check_images)
    suffix = path.suffix.lower()
    if path.is_dir() or suffix in (".parquet", ".arrow"):
        from steer.data.hub import load_hf_items  # folders and columnar files: through `datasets`

        return load_hf_items(str(path), split=split, **kwargs)
    from steer.data.options import current_data_options

    columns = current_data_options().columns()
    stem = path.stem
    base = path.parent.resolve()
    items: list[EvalItem] = []
    if suffix in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8-sig") as f:
            n = 0
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                n += 1
                where = f"row {n} (line {lineno})"
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise row_error(path, where, f"invalid JSON ({exc.msg})") from None
                items.append(row_to_item(renamed_row(row, columns), where, path, base, f"{stem}-{n}", **kwargs))
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as exc:
            raise UserDatasetError(f"{path}: invalid JSON ({exc})") from None
        if not isinstance(data, list):
            raise UserDatasetError(f"{path}: a .json dataset must be a list of objects")
        for n, row in enumerate(data, 1):
            items.append(row_to_item(renamed_row(row, columns), f"row {n}", path, base, f"{stem}-{n}", **kwargs))
    elif suffix in (".csv", ".tsv"):
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
            if reader.fieldnames is None:
                raise UserDatasetError(f"{path}: empty file (no header row); {EXPECTED_COLUMNS}")
            if columns.get("prompt", "prompt") not in reader.fieldnames:
                raise row_error(
                    path, "row 1 (header)",
                    f"missing required column 'prompt' (header: {', '.join(map(repr, reader.fieldnames))})",
                )
            for n, row in enumerate(reader, 1):
                where = f"row {n} (line {reader.line_num})"
                items.append(row_to_item(renamed_row(row, columns), where, path, base, f"{stem}-{n}", **kwargs))
    else:
        raise UserDatasetError(
            f"{path}: unsupported file type {suffix!r}; use .jsonl, .csv, .json, .parquet, a datasets"
            " folder, or hf:ORG/NAME for a hub dataset"
        )
    return items
