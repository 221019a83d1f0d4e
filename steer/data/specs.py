"""What one ``--data`` entry means, and the items it names.

An entry is ``NAME[:SPLIT][@IMAGE_MODE]`` (a named set, :mod:`steer.data.named_sets`, the
organism's splits included), ``hf:ORG/NAME[:SPLIT][@REVISION][@IMAGE_MODE]`` (a hub dataset,
:mod:`steer.data.hub`) or ``PATH[@IMAGE_MODE]`` (a user file, :mod:`steer.data.user_files`).
:func:`load_items` is the one reader every command and library function goes through, so
``steer eval``, ``steer calibrate``, ``steer probe`` and the Python API read an entry the same way.

``@IMAGE_MODE`` replaces each item's image (:data:`IMAGE_MODES`), so harmful *text* sets can
be run text-only, with a blank image, or with an unrelated natural image.  A blank or noise
image depends on the model's image size, so it is left as a marker (:data:`BLANK_IMAGE`,
:data:`NOISE_IMAGE`) that the evaluation runner turns into a picture at generation time.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from steer.data.items import EvalItem
from steer.data.named_sets import DATASET_NAMES, load_dataset_by_name
from steer.data.user_files import load_user_dataset
from steer.errors import SteerInputError

__all__ = [
    "BLANK_IMAGE",
    "IMAGE_MODES",
    "NOISE_IMAGE",
    "DataSpec",
    "apply_image_mode",
    "check_image_mode",
    "load_items",
    "parse_data_spec",
]

IMAGE_MODES = ("as_given", "none", "blank", "noise", "unrelated")
#: image markers of the ``blank`` / ``noise`` modes, made into pictures in the model's size at generation time
BLANK_IMAGE = "<blank>"
NOISE_IMAGE = "<noise>"




def check_image_mode(mode: str | None) -> tuple[str, str | None]:
    """``'unrelated:PATH'`` / ``'unrelated=PATH'`` -> ``('unrelated', PATH)``; others -> ``(mode, None)``."""
    mode = (mode or "as_given").strip()
    cut = re.search(r"[:=]", mode)
    name, arg = (mode[: cut.start()], mode[cut.end() :].strip()) if cut else (mode, "")
    name = name.strip().lower().replace("-", "_")
    if name == "text" or name == "text_only":
        name = "none"
    if name not in IMAGE_MODES:
        raise SteerInputError(
            f"unknown image mode {mode!r}; one of: as_given, none (text only), blank, noise, unrelated:PATH"
        )
    if name == "unrelated":
        if not arg:
            raise SteerInputError("image mode 'unrelated' needs an image: unrelated:PATH (a natural photo)")
        path = Path(arg).expanduser()
        if not path.is_file():
            raise SteerInputError(f"unrelated image not found: {path}")
        return name, str(path.resolve())
    if arg:
        raise SteerInputError(f"image mode {name!r} takes no argument (got {mode!r})")
    return name, None


def apply_image_mode(items: Sequence[EvalItem], mode: str | None) -> list[EvalItem]:
    """Items with their image replaced: ``as_given`` (unchanged), ``none`` (text only),
    ``blank`` / ``noise`` (a content-free image in the model's size, made at generation
    time), ``unrelated:PATH`` (the same natural image for every item).  Ids are kept; the
    mode is recorded in each result row."""
    name, arg = check_image_mode(mode)
    if name == "as_given":
        return list(items)
    new = {"none": None, "blank": BLANK_IMAGE, "noise": NOISE_IMAGE, "unrelated": arg}[name]
    out = []
    for it in items:
        meta = dict(it.meta)
        meta["original_image"] = it.image
        out.append(EvalItem(it.id, it.prompt, new, it.label, it.category, it.source, it.answer, meta))
    return out


@dataclass(frozen=True)
class DataSpec:
    """A parsed ``--data`` entry: ``NAME[:SPLIT][@IMAGE_MODE]``, ``hf:ORG/NAME[:SPLIT][@REVISION][@IMAGE_MODE]``
    or ``PATH[@IMAGE_MODE]``."""

    source: str
    split: str | None = None
    image_mode: str = "as_given"
    label: str = ""


def _is_image_mode(text: str) -> bool:
    try:
        check_image_mode(text)
    except SteerInputError:
        return False
    return True


def parse_data_spec(text: str, image_mode: str | None = None) -> DataSpec:
    """Parse one dataset entry; ``image_mode`` is the default when the entry has no ``@MODE``."""
    raw = text.strip()
    if not raw:
        raise SteerInputError("empty dataset name")
    mode = image_mode
    src = raw
    if "@" in raw and not Path(raw).expanduser().exists():  # an existing path may itself contain '@'
        head, tail = raw.rsplit("@", 1)
        if not raw.lower().startswith("hf:") or _is_image_mode(tail):  # hf:ORG/NAME@REVISION keeps its revision
            src, mode = head, tail
    mode_name, mode_arg = check_image_mode(mode)
    split = None
    key = src.strip().lower().replace("_", "-")
    if key.startswith("hf:"):  # a hub dataset: split and revision stay in the source (steer.data.hub)
        pass
    elif ":" in key and key.split(":", 1)[0] in DATASET_NAMES and not Path(src).exists():
        key, split = key.split(":", 1)
        src = key
    elif key in DATASET_NAMES:
        src = key
    label = raw if "@" in raw or mode_name == "as_given" else f"{raw}@{mode_name}"
    full_mode = mode_name if mode_arg is None else f"{mode_name}:{mode_arg}"
    return DataSpec(src.strip(), split, full_mode, label)


def load_items(
    spec: str | os.PathLike | DataSpec,
    limit: int | None = None,
    *,
    image_mode: str | None = None,
    data_dir: str | Path | None = None,
    default_label: str | None = None,
) -> list[EvalItem]:
    """Items of a shared set (checked against the shared manifest) or a user file, with the
    image mode applied and at most ``limit`` items.

    ``default_label``: the label of a user file's rows that have none (``--label``); None
    (the default) refuses such rows, since an unlabelled row counted as harmful or benign
    would silently change every rate."""
    ds = spec if isinstance(spec, DataSpec) else parse_data_spec(os.fspath(spec), image_mode)
    if ds.source in DATASET_NAMES:
        items = load_dataset_by_name(ds.source, limit, ds.split, data_dir=data_dir)
    elif ds.source.lower().startswith("hf:"):
        from steer.data.hub import load_hf_items

        items = load_hf_items(ds.source, limit=limit, default_label=default_label)
    else:
        path = Path(ds.source).expanduser()
        if not path.exists():
            if path.suffix or os.sep in ds.source:  # meant as a file
                raise SteerInputError(f"dataset not found: {path} (no such file or folder)")
            raise SteerInputError(
                f"unknown dataset {ds.source!r}: not a shared set ({', '.join(DATASET_NAMES)}) and no such file"
            )
        items = load_user_dataset(path, split=ds.split, default_label=default_label)
        if limit is not None:
            items = items[:limit]
    return apply_image_mode(items, ds.image_mode)
