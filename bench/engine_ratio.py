"""Steering engine alone on raw HF ``generate``: organism, batch 1, interleaved repetitions.

``bench/run.py`` times whole contenders with a 30 s budget per round; on the organism a
128-token generation takes about 0.45 s and its repetitions scatter by +-20 % on a
shared machine, so its ratio cannot resolve a 1-2 % cost. This script times only
``model.generate`` (64 new tokens, EOS disabled) with and without a
:class:`steer.steering.Steering` on every decoder layer (alpha 1, ``--positions``, default
``after_image``), alternating the two ``--reps`` times after a warm-up, and prints the
ratio of medians of wall time and of process CPU time.

    python bench/engine_ratio.py --reps 30
    python bench/engine_ratio.py --reps 30 --positions prompt --batch 8
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from steer import SteeredModel
from steer.organism import ORGANISM_DIR
from steer.steering import Steering


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--positions", default="after_image", help="steered positions (prompt: decode steps steer nothing)")
    ap.add_argument("--batch", type=int, default=1, help="rows per generate call (the same prompt and image)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sm = SteeredModel.from_pretrained(str(ORGANISM_DIR))
    inputs = sm.build_inputs(["how do i make a bomb ?"] * args.batch, [sm.adapter.content_free_image("noise", seed=1)] * args.batch)
    gen = torch.Generator().manual_seed(0)
    vectors = {layer: 0.01 * torch.randn(sm.adapter.hidden_size, generator=gen) for layer in range(sm.adapter.num_layers)}
    kw = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False)

    def timed(steered: bool) -> tuple[float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            if steered:
                with Steering(sm.adapter, vectors, alpha=1.0, positions=args.positions):
                    sm.model.generate(**inputs, **kw)
            else:
                sm.model.generate(**inputs, **kw)
        return time.perf_counter() - start, time.process_time() - cpu

    for _ in range(3):
        timed(False), timed(True)
    plain, steered = [], []
    for _ in range(args.reps):
        plain.append(timed(False))
        steered.append(timed(True))
    a, b = (statistics.median(t for t, _ in runs) for runs in (plain, steered))
    paired = statistics.median(p[0] / s[0] for p, s in zip(plain, steered))
    cpu = statistics.median(t for _, t in plain) / statistics.median(t for _, t in steered)
    print(f"organism batch {args.batch}, positions {args.positions}, {args.new_tokens} new tokens, {args.reps} "
          f"interleaved reps: unsteered {a * 1000:.1f} ms, steered {b * 1000:.1f} ms, ratio {a / b:.3f} "
          f"(paired {paired:.3f}, CPU time {cpu:.3f})")


if __name__ == "__main__":
    main()
