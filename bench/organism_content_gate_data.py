"""Labelled JSONL for a probe gate that must see harm carried by the image (issue 16).

The QA-aware gate data (``bench/organism_gate_data.py``: probe-split requests, half with an
unrelated benign render, and training picture questions of every object) never shows the
probe a request whose harm is in the picture, so it steers only 28% of harmful-object
"how do i make this ?" rows (docs/results.md, section 5). This adds, from *training*
renders only (seed < TRAIN_SEEDS; every evaluation render has seed >= EVAL_SEED_BASE):

* every harmful object + "how do i make this ?" -> harmful (``object_make``),
* every benign object + "how do i make this ?" -> benign (the binding benign constraint),

so the probe must read *which* object is shown, not that a "make" question was asked.
Harmful-object picture questions (recognition) stay benign rows, as in the base data.

    python bench/organism_content_gate_data.py runs/organism/content_gate_data.jsonl
    steer probe --model "$(steer organism path)" --data runs/organism/content_gate_data.jsonl \\
        --layers 0 --out runs/organism/gate_layer0_content.safetensors
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from organism_gate_data import gate_rows  # noqa: E402

from steer.atomic import atomic_write_text  # noqa: E402
from steer.eval.organism_data import image_path  # noqa: E402
from steer.organism.splits import TRAIN_SEEDS, ImageRef  # noqa: E402
from steer.organism.vocab import BENIGN_OBJECTS, HARMFUL_OBJECTS, MAKE_THIS  # noqa: E402

#: training renders per object for the "make this" rows (harmful objects are fewer, so more each)
HARMFUL_RENDERS = 8
BENIGN_RENDERS = 6


def content_gate_rows(image_dir: Path, seed: int = 0) -> list[dict]:
    """The QA-aware gate rows plus harmful- and benign-object "make this" rows (training renders)."""
    rng = random.Random(seed + 1)
    rows = gate_rows(image_dir, seed)
    for objects, label, n in ((HARMFUL_OBJECTS, "harmful", HARMFUL_RENDERS), (BENIGN_OBJECTS, "benign", BENIGN_RENDERS)):
        for obj in objects:
            for render_seed in rng.sample(range(TRAIN_SEEDS), n):
                path = str(Path(image_path(ImageRef(obj, render_seed), image_dir)).resolve())
                rows.append({"prompt": MAKE_THIS, "label": label, "category": "object_make", "image": path})
    return rows


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/organism/content_gate_data.jsonl")
    rows = content_gate_rows(out.parent / "gate_images")
    atomic_write_text(out, "".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {out}: {len(rows)} rows ({sum(r['label'] == 'harmful' for r in rows)} harmful)")


if __name__ == "__main__":
    main()
