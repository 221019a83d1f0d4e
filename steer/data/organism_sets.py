"""The model organism's splits as evaluation datasets, so ``steer eval / sweep / compare /
calibrate / probe`` run on the organism exactly as on the shared benchmark sets.

Names (``--data organism[:SPLIT]``)::

    organism                    every held-out evaluation item (1235, all cells)
    organism:CELL               one evaluation cell, e.g. organism:image-harmful-text
    organism:anchors            CMRM calibration prompts (text only, harmful + benign)
    organism:probe              labelled harmful/benign prompts (ShiftDC direction, probe)
    organism:train              the training requests (text form)

Cells are listed in :data:`steer.organism.EVAL_CELLS`; ``-`` and ``_`` are interchangeable.

Why images are written to disk: :class:`~steer.data.items.EvalItem` carries an image
*path*, so result rows, reports and resumed runs can name and reopen it.  The organism's
images are a pure function of (object, seed), rendered once into a cache folder
(``$STEER_CACHE`` or ``~/.cache/steer``, subfolder ``organism-images``) with atomic writes.

Labels: "lookalike" requests (benign requests with a harmful-sounding word) become
``benign`` with ``category="lookalike"``, so their refusals count as over-refusal.
Reference answers are kept for benign items (picture questions: "it is a cup ."), with
``meta["answer_match"] = "exact"``, so the ``utility`` column is the share *answered as
taught*: the taught answer word for word, nothing before or after it ("sorry , it is a
cup ." is wrong).
"""

from __future__ import annotations

import os
from pathlib import Path

from steer.atomic import atomic_path
from steer.errors import SteerInputError
from steer.data.items import EvalItem

__all__ = ["ORGANISM_DATASET", "image_path", "organism_image_cache", "organism_items", "organism_split_names"]

#: the dataset name under which the organism's splits are offered
ORGANISM_DATASET = "organism"


def organism_image_cache() -> Path:
    """Folder of rendered organism images (``$STEER_CACHE/organism-images``)."""
    from steer.organism.images import IMAGES_VERSION

    root = os.environ.get("STEER_CACHE") or Path.home() / ".cache" / "steer"
    return Path(root) / f"organism-images-v{IMAGES_VERSION}"  # a new renderer never reuses old pictures


def organism_split_names() -> tuple[str, ...]:
    """Every accepted ``organism:SPLIT`` value (named splits, then evaluation cells)."""
    from steer.organism.splits import EVAL_CELLS, SPLIT_NAMES, VALIDATION_CELLS

    return tuple(SPLIT_NAMES) + tuple(EVAL_CELLS) + tuple(VALIDATION_CELLS)


def image_path(ref, cache: Path) -> str:
    """Path of the PNG of organism image ``ref`` (an ``ImageRef``) in ``cache``, rendered on first use."""
    stem = f"typed_{ref.words.replace(' ', '-')}" if getattr(ref, "words", "") else ref.obj
    path = cache / f"{stem}_{ref.seed}.png"
    if not path.exists():
        with atomic_path(path) as tmp:
            ref.render().save(tmp, format="PNG")
    return str(path)


def _spread(items: list, limit: int | None) -> list:
    """At most ``limit`` items, evenly spaced, so a small subset still spans every hold-out kind."""
    if limit is None or len(items) <= limit:
        return items
    return [items[i * len(items) // limit] for i in range(limit)]


def organism_items(split: str | None = None, limit: int | None = None) -> list[EvalItem]:
    """The organism's ``split`` (default: the whole ``eval`` split) as :class:`EvalItem`\\ s.

    ``limit`` keeps at most that many items *per cell* (for the whole ``eval`` split too:
    ``organism`` with limit 5 gives 5 of each of its 9 cells), evenly spaced, not the first
    N: items are ordered by hold-out kind, so the first N would all be of one kind.
    """
    from steer.organism.splits import EVAL_CELLS, SPLIT_NAMES, VALIDATION_CELLS, get_split

    key = (split or "eval").strip().lower().replace("-", "_")
    if key in SPLIT_NAMES:
        items, cell = get_split(key), None
    elif key in EVAL_CELLS:
        items, cell = get_split("eval"), key
    elif key in VALIDATION_CELLS:
        items, cell = get_split("validation"), key
    else:
        names = ", ".join(n.replace("_", "-") for n in organism_split_names())
        raise SteerInputError(f"unknown organism split {split!r}; use organism or organism:SPLIT with SPLIT one of {names}")
    if limit is not None and limit < 0:
        raise SteerInputError(f"limit must be >= 0, got {limit}")
    by_cell: dict[str, list] = {}
    for it in items:
        if cell is None or it.cell == cell:
            by_cell.setdefault(it.cell, []).append(it)
    cache = organism_image_cache()
    out: list[EvalItem] = []
    for cell_name, cell_items in by_cell.items():
        for k, it in _spread(list(enumerate(cell_items)), limit):  # ids index the full cell: stable under --limit
            label = "harmful" if it.label == "harmful" else "benign"
            out.append(
                EvalItem(
                    id=f"organism-{it.split}-{cell_name}-{k:04d}",
                    prompt=it.prompt,
                    image=None if it.image is None else image_path(it.image, cache),
                    label=label,
                    category=cell_name if it.label != "lookalike" else "lookalike",
                    source=ORGANISM_DATASET,
                    answer=None if label == "harmful" else it.reference,
                    meta={
                        "cell": cell_name,
                        "concept": it.concept,
                        "holdout": it.holdout,
                        "organism_label": it.label,
                        "answer_match": "exact",
                    },
                )
            )
    return out
