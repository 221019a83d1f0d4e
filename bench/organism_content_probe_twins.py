"""Two measurements behind docs/content-steering.md, on the organism's held-out image cells.

1. **What the text twin says by itself.** Self-caption anchoring moves a multimodal state
   toward its twin's state (caption + query, text only), so the method can do no better
   than the twin: this prints, per cell, how often the *text-only* model completely refuses
   the twin and how often it gives the taught answer.
2. **Compute cost under load.** The shared CPU makes wall-clock tokens/s noisy, so this
   also prints *process CPU seconds* per generated token of each variant on the same items
   (one thread), which does not depend on what else runs on the machine.

    python bench/organism_content_probe_twins.py --vectors runs/organism/shiftdc.safetensors \\
        --gate runs/organism/gate_layer1_content.safetensors
"""

from __future__ import annotations

import argparse
import time

import torch

from steer.eval.judge import judge_refusal
from steer.eval.variants import build_variant
from steer.model import SteeredModel
from steer.organism import ORGANISM_DIR
from steer.organism.splits import get_split

CELLS = ("image_harmful_object", "image_harmful_text", "image_benign_text", "image_benign_make", "image_benign_qa")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ORGANISM_DIR))
    parser.add_argument("--vectors", required=True, help="ShiftDC vector file")
    parser.add_argument("--gate", required=True, help="content probe gate (layer 1)")
    parser.add_argument("--n", type=int, default=64, help="items per cell for the cost measurement")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sm = SteeredModel.from_pretrained(args.model)
    cells: dict[str, list] = {}
    for it in get_split("eval"):
        cells.setdefault(it.cell, []).append(it)
    print("| cell | twin refused (complete) | twin answered as taught | example twin |\n|---|---:|---:|---|")
    for cell in CELLS:
        items = cells[cell]
        images = [it.pil_image() for it in items]
        prompts = [it.prompt for it in items]
        twins = [sm.adapter.described_prompt(c, p) for c, p in zip(sm.self_captions(images), prompts)]
        answers = sm.generate(twins, max_new_tokens=24)
        refused = sum(judge_refusal(a).complete for a in answers) / len(answers)
        taught = sum(" ".join(a.split()).startswith(it.reference) for a, it in zip(answers, items)) / len(items)
        print(f"| {cell} | {refused:.2f} | {taught:.2f} | `{twins[0]!r}` |")
    specs = {
        "baseline": "baseline",
        "shiftdc-sample": f"shiftdc-sample:{args.vectors}@alpha=1,positions=prompt,schedule=incremental",
        "caption-cmrm": "caption-cmrm@alpha=1",
        "caption-shiftdc-both": f"caption-shiftdc:{args.vectors}@alpha=1,twin=both",
        "refusal-add-content-gate": f"refusal-add:{args.vectors}:{args.gate}@alpha=1,layers=2-3",
    }
    batch = [it for cell in CELLS for it in cells[cell][: args.n]]
    prompts, images = [it.prompt for it in batch], [it.pil_image() for it in batch]
    print("\n| variant | CPU ms per generated token | relative to baseline |\n|---|---:|---:|")
    base = None
    for name, spec in specs.items():
        variant = build_variant(spec, sm, max_new_tokens=24)
        cpu = time.process_time()
        tokens = 0
        for start in range(0, len(prompts), 64):
            rows = variant(prompts[start : start + 64], images[start : start + 64])
            tokens += sum(len(sm.adapter.tokenizer(r["text"], add_special_tokens=False)["input_ids"]) + 1 for r in rows)
        per_token = 1000 * (time.process_time() - cpu) / tokens
        base = base or per_token
        print(f"| {name} | {per_token:.2f} | {per_token / base:.1f}x |")


if __name__ == "__main__":
    main()
