"""Write a labelled JSONL for a probe gate on the organism that has seen picture questions.

Why: a gate fitted on the ``probe`` split (harmful vs benign *requests*) scores every
benign picture question ("what is in the picture ?") as risky (docs/results.md, section
5): it never saw that kind of prompt, so the gate steers them and cannot give back the
image-QA accuracy that steering costs. This file adds the *training* picture questions,
each with a training render of its object (seed < TRAIN_SEEDS), as benign rows, and the
``probe`` split's requests, half of them with an unrelated training render attached, so
the probe sees both views. No evaluation item or render is used.

    python bench/organism_gate_data.py runs/organism/gate_data.jsonl
    steer probe --model "$(steer organism path)" --data runs/organism/gate_data.jsonl --layers 0 --out gate.safetensors
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from steer.atomic import atomic_write_text
from steer.data.organism_sets import image_path
from steer.organism.splits import TRAIN_SEEDS, ImageRef, get_split
from steer.organism.vocab import BENIGN_OBJECTS


def gate_rows(image_dir: Path, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)

    def image(obj: str) -> str:
        return str(Path(image_path(ImageRef(obj, rng.randrange(TRAIN_SEEDS)), image_dir)).resolve())

    rows = []
    for k, it in enumerate(get_split("probe")):
        row = {"prompt": it.prompt, "label": it.label, "category": "request"}
        if k % 2:
            row["image"] = image(rng.choice(BENIGN_OBJECTS))
        rows.append(row)
    for it in get_split("train"):
        if it.cell == "picture_question":
            rows.append({"prompt": it.prompt, "label": "benign", "category": "picture_question", "image": image(it.concept)})
    return rows


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/organism/gate_data.jsonl")
    rows = gate_rows(out.parent / "gate_images")
    atomic_write_text(out, "".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {out}: {len(rows)} rows ({sum(r['label'] == 'harmful' for r in rows)} harmful)")


if __name__ == "__main__":
    main()
