"""Calibration overhead: `calibrate_cmrm` wall time / wall time of the bare forward passes it needs.

Builds a fixed random LLaVA in memory (Llama text model d=256, 8 layers, 4 heads, MLP
1024; CLIP vision 168 px / patch 14 -> 144 image tokens; the word-level tokenizer of the
test models), makes a fixed anchor set, and times, interleaved in one process:

* ``calibrate``: ``calibration.calibrate_cmrm(sm, anchors, batch_size=B)`` end to end
  (reading/hashing the anchors, preflight, input building, capture hooks, float64
  accumulation, statistics and the separability probe);
* ``bare``: the forward passes that calibration needs -- for each batch, the
  content-free-image view and the text-only view -- as plain ``model(**inputs)`` calls on
  inputs built beforehand (``logits_to_keep=1``: no full-vocabulary projection).

Reports the medians over ``--reps`` repetitions and their ratio (target <= 1.1).

    python bench/calibration_overhead.py [--anchors 48] [--batch-size 8] [--reps 7] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def build_model(device: str):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    from tests.tiny_models import build_tokenizer, llava_processor

    tok = build_tokenizer("llava")
    size, patch = 168, 14
    processor = llava_processor(tok, size, patch)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=128, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
            image_size=size, patch_size=patch, projection_dim=128,
        ),
        text_config=LlamaConfig(
            vocab_size=len(tok), hidden_size=256, intermediate_size=1024, num_hidden_layers=8,
            num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
            pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        ),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config).to(device).eval()
    return model, processor


def make_anchors(n: int) -> list[str]:
    from tests.tiny_models import WORDS

    words = [w for w in WORDS if w.isalpha() and len(w) > 2]
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(words, size=int(rng.integers(8, 31)))) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--anchors", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: stable timings on a shared machine; 0: torch's default)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.reps < 3:
        parser.error("--reps must be >= 3 (the figure is a median)")
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    from calibration import calibrate_cmrm
    from steer import SteeredModel

    model, processor = build_model(args.device)
    sm = SteeredModel(model, processor)
    adapter = sm.adapter
    anchors = make_anchors(args.anchors)
    blank = adapter.content_free_image("blank")
    batches = []
    for start in range(0, len(anchors), args.batch_size):
        chunk = anchors[start : start + args.batch_size]
        batches.append(adapter.build_inputs(chunk, [blank] * len(chunk)))
        batches.append(adapter.build_inputs(chunk, None))
    n_img_tokens = int(adapter.image_token_mask(batches[0]["input_ids"])[0].sum())

    def sync() -> None:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    def timed(fn) -> tuple[float, float]:
        """(wall seconds, process CPU seconds) of fn()."""
        sync()
        w, c = time.perf_counter(), time.process_time()
        fn()
        sync()
        return time.perf_counter() - w, time.process_time() - c

    def calibration_run() -> None:
        calibrate_cmrm(sm, anchors, batch_size=args.batch_size, progress=False)

    @torch.inference_mode()
    def bare_run() -> None:
        for inputs in batches:
            model(**inputs, use_cache=False, logits_to_keep=1)

    timed(calibration_run), timed(bare_run)  # warm-up: imports, allocator, kernels
    cal, bare, cal_cpu, bare_cpu = [], [], [], []
    for rep in range(args.reps):  # interleaved, alternating which goes first
        for which in ((0, 1) if rep % 2 == 0 else (1, 0)):
            w, c = timed(calibration_run if which == 0 else bare_run)
            (cal if which == 0 else bare).append(w)
            (cal_cpu if which == 0 else bare_cpu).append(c)
    ratio = statistics.median(cal) / statistics.median(bare)
    per_rep = statistics.median(c / b for c, b in zip(cal, bare))
    cpu_ratio = statistics.median(cal_cpu) / statistics.median(bare_cpu)
    command = "python bench/calibration_overhead.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    print(
        f"model: random LLaVA, text d=256 x 8 layers, {n_img_tokens} image tokens; {len(anchors)} anchors, "
        f"batch {args.batch_size}, {len(batches)} forwards; device {args.device}, {torch.get_num_threads()} threads"
    )
    print(f"calibrate  median {statistics.median(cal):.3f} s  (runs: {', '.join(f'{c:.3f}' for c in cal)})")
    print(f"bare fwd   median {statistics.median(bare):.3f} s  (runs: {', '.join(f'{b:.3f}' for b in bare)})")
    print(f"ratio (median calibrate / median bare) = {ratio:.3f}   median per-rep ratio = {per_rep:.3f}   target <= 1.1")
    if not args.device.startswith("cuda"):
        print(
            f"CPU-time ratio = {cpu_ratio:.3f} (calibrate {statistics.median(cal_cpu):.3f} s / bare "
            f"{statistics.median(bare_cpu):.3f} s of process CPU; robust to other load on the machine)"
        )
    print(f"command: {command.strip()}")


if __name__ == "__main__":
    main()
