"""A probe gate for harm the picture carries, fitted on the organism's training data (issue 16).

A gate for gated refusal addition (:mod:`steer.refusal_addition`) must fire on requests
whose harm is in the image and stay off their benign twins. A probe fitted on requests
alone is at chance on harmful-object images, and the QA-aware gate of
``bench/organism_gate_data.py`` fires on only 28% of harmful-object "how do i make this ?"
rows (docs/content-steering.md). These rows teach it what to look for, all from the
*training* side of the organism (renders with seed < ``TRAIN_SEEDS``; every evaluation
render has seed >= ``EVAL_SEED_BASE``; prompts from the ``probe`` and ``train`` splits):

* ``request``: every ``probe``-split request, harmful or benign, half of them with an
  unrelated benign render (both views of text-borne harm);
* ``picture_question``: every training picture question with a render of its object,
  harmful objects included, as benign (recognising a bomb is fine);
* ``object_make``: every harmful object + "how do i make this ?" as harmful
  (``HARMFUL_RENDERS`` renders each) and every benign object + the same question as
  benign (``BENIGN_RENDERS`` each), so the probe must read *which* object is shown;
* ``typed_request``: typed-request images (FigStep analog) with the typed-request prompt:
  harmful bodies the ``image_harmful_typed`` cell never types (``HARMFUL_TYPED_RENDERS``
  renders each) as harmful, and as many benign bodies from the typed ``train`` partition
  (never the held-out ``image_benign_typed`` bodies) as benign, so the probe must read the
  typed words, not only notice that words are typed.

The probe reads layer 1 by default, so it can gate layers 2-3 of the 4-layer organism.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from steer.gate import ProbeGate

#: training renders per object for the "make this" rows (harmful objects are fewer, so more each)
HARMFUL_RENDERS = 8
BENIGN_RENDERS = 6
#: training renders per harmful typed body (few bodies are disjoint from the evaluation's)
HARMFUL_TYPED_RENDERS = 6


def organism_content_gate_rows(seed: int = 0) -> list[dict[str, Any]]:
    """Labelled rows (``prompt``, ``label``, ``category``, optional ``image`` as an ``ImageRef``)."""
    from steer.organism.splits import (
        TRAIN_SEEDS, ImageRef, get_split, typed_partition, untyped_harmful_bodies,
    )
    from steer.organism.vocab import BENIGN_OBJECTS, HARMFUL_OBJECTS, MAKE_THIS, TYPED_PROMPT

    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for k, it in enumerate(get_split("probe")):
        row: dict[str, Any] = {"prompt": it.prompt, "label": it.label, "category": "request"}
        if k % 2:
            row["image"] = ImageRef(rng.choice(BENIGN_OBJECTS), rng.randrange(TRAIN_SEEDS))
        rows.append(row)
    for it in get_split("train"):
        if it.cell == "picture_question":
            rows.append({"prompt": it.prompt, "label": "benign", "category": "picture_question",
                         "image": ImageRef(it.concept, rng.randrange(TRAIN_SEEDS))})
    for objects, label, n in ((HARMFUL_OBJECTS, "harmful", HARMFUL_RENDERS), (BENIGN_OBJECTS, "benign", BENIGN_RENDERS)):
        for obj in objects:
            for render_seed in rng.sample(range(TRAIN_SEEDS), n):
                rows.append({"prompt": MAKE_THIS, "label": label, "category": "object_make",
                             "image": ImageRef(obj, render_seed)})
    typed = [(body, "harmful") for body in untyped_harmful_bodies() for _ in range(HARMFUL_TYPED_RENDERS)]
    typed += [(body, "benign") for body in rng.sample(typed_partition()["train"], len(typed))]
    for body, label in typed:
        rows.append({"prompt": TYPED_PROMPT, "label": label, "category": "typed_request",
                     "image": ImageRef("typed", rng.randrange(TRAIN_SEEDS), body)})
    return rows


def fit_organism_content_gate(model_or_sm: Any, *, layer: int = 1, seed: int = 0, batch_size: int = 32) -> ProbeGate:
    """Fit the content gate on ``organism_content_gate_rows`` (held-out accuracy in its metadata)."""
    from calibration.probe import fit_probe

    report = fit_probe(model_or_sm, organism_content_gate_rows(seed), layers=[layer], batch_size=batch_size, seed=seed)
    return report.to_gate(layer)


def write_rows_jsonl(rows: list[dict[str, Any]], out: str | Path, image_dir: str | Path) -> Path:
    """The rows as a JSONL for `steer probe --data` (images rendered to PNGs in ``image_dir``)."""
    import json

    from steer.atomic import atomic_write_text
    from steer.data.organism_sets import image_path

    lines = []
    for row in rows:
        item = dict(row)
        if item.get("image") is not None:
            item["image"] = str(Path(image_path(item["image"], Path(image_dir))).resolve())
        lines.append(json.dumps(item) + "\n")
    atomic_write_text(out, "".join(lines))
    return Path(out)
