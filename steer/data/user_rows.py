"""One row in the user-dataset column format -> :class:`~steer.data.items.EvalItem`.

User files (:mod:`steer.data.user_files`) and hub datasets (:mod:`steer.data.hub`) hold
rows of the same shape: ``prompt`` (required); ``image``, ``label``, ``category``,
``answer``, ``id`` (optional); anything else goes to ``EvalItem.meta``.  Both readers
convert rows here, so a row means the same thing and fails with the same message
(file, 1-based row, expected columns) wherever it came from.  This module is the shared
step both depend on; it imports neither of them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from steer.data.items import LABEL_ALIASES, MISSING_LABEL, EvalItem
from steer.errors import SteerInputError

__all__ = [
    "EXPECTED_COLUMNS",
    "USER_OPTIONAL_COLUMNS",
    "USER_REQUIRED_COLUMNS",
    "UserDatasetError",
    "renamed_row",
    "row_error",
    "row_to_item",
    "rows_to_items",
]


class UserDatasetError(SteerInputError):
    """A user dataset file is unreadable or has bad columns/values."""


USER_REQUIRED_COLUMNS: tuple[str, ...] = ("prompt",)
USER_OPTIONAL_COLUMNS: tuple[str, ...] = ("image", "label", "category", "answer", "id")
EXPECTED_COLUMNS = (
    "expected columns: 'prompt' (required); 'image', 'label', 'category', 'answer',"
    " 'id' (optional)"
)


def row_error(source: Path, where: str, problem: str) -> UserDatasetError:
    """The one error shape for a bad row: file, where in it, the problem, the expected columns."""
    return UserDatasetError(f"{source}: {where}: {problem}; {EXPECTED_COLUMNS}")


def row_to_item(
    row: dict[str, Any],
    where: str,
    source: Path,
    base_dir: Path,
    default_id: str,
    default_label: str | None,
    check_images: bool,
) -> EvalItem:
    """``row`` (standard column names) as an item; ``where`` ("row 3 (line 4)") goes into errors,
    relative image paths are resolved against ``base_dir``, an empty label takes ``default_label``."""
    if not isinstance(row, dict):
        raise row_error(source, where, f"expected an object with named columns, got {type(row).__name__}")
    if None in row:  # csv.DictReader puts surplus fields under the key None
        raise row_error(source, where, "more fields than header columns")
    if "prompt" not in row:
        found = ", ".join(repr(k) for k in row) or "none"
        raise row_error(source, where, f"missing required column 'prompt' (found: {found})")
    prompt = row["prompt"]
    if not isinstance(prompt, str) or not prompt.strip():
        raise row_error(source, where, "'prompt' must be a non-empty string")

    raw_label = row.get("label")
    if raw_label is None or (isinstance(raw_label, str) and not raw_label.strip()):
        if default_label is None:  # never guessed: an unlabelled row would silently count as one kind
            raise UserDatasetError(f"{source}: {where}: {MISSING_LABEL}")
        label = default_label
    else:
        label = LABEL_ALIASES.get(str(raw_label).strip().lower())
        if label is None:
            raise row_error(
                source, where,
                f"bad label {raw_label!r}: use 'harmful' or 'benign' ('unsafe'/'safe' also accepted)",
            )

    image = row.get("image")
    if isinstance(image, dict) and "path" in image:  # datasets Image feature, decode=False
        image = image["path"]
    if image is None or (isinstance(image, str) and not image.strip()):
        image_path = None
    elif isinstance(image, (str, os.PathLike)):
        p = Path(image).expanduser()
        p = p if p.is_absolute() else base_dir / p
        if check_images and not p.is_file():
            raise row_error(source, where, f"image file not found: {p} (image paths are relative to {base_dir})")
        image_path = str(p.resolve())
    else:
        raise row_error(source, where, f"'image' must be a file path string, got {type(image).__name__}")

    def opt_str(key: str) -> str | None:
        v = row.get(key)
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        return str(v)

    meta = {k: v for k, v in row.items()
            if k not in USER_REQUIRED_COLUMNS + USER_OPTIONAL_COLUMNS}
    return EvalItem(
        id=opt_str("id") or default_id,
        prompt=prompt,
        image=image_path,
        label=label,
        category=opt_str("category"),
        source=str(source),
        answer=opt_str("answer"),
        meta=meta,
    )


def rows_to_items(
    rows: Iterable[Any],
    source: Path,
    base_dir: Path,
    stem: str,
    *,
    default_label: str | None = None,
    check_images: bool = True,
) -> list[EvalItem]:
    """User-dataset rows (dicts with the standard column names) as items; errors name the 1-based row."""
    return [row_to_item(row, f"row {n}", source, base_dir, f"{stem}-{n}", default_label, check_images)
            for n, row in enumerate(rows, 1)]


def renamed_row(row: Any, columns: dict[str, str]) -> Any:
    """``row`` with the dataset's own column names (``--prompt-column`` ...) replaced by the standard ones."""
    if not columns or not isinstance(row, dict):
        return row
    back = {theirs: mine for mine, theirs in columns.items()}
    return {back.get(k, k): v for k, v in row.items() if k not in columns or k in back}
