"""Shared by the peer benchmark scripts, which run in venvs of their own.

Needs only torch + transformers (4.x or 5.x) + safetensors: it must import in a venv that
has a peer library (``steering-vectors`` pins ``transformers<5``, ``repeng`` pins
``numpy<2``) and not ``steer``. ``bench/run.py`` writes a *work folder*:

``model/``                    ``config.json`` (plain Llama keys every transformers version reads) +
                             ``model.safetensors`` (the random weights), loaded with ``from_pretrained``
``vectors.safetensors``       ``delta.{layer}``: what each peer must ADD to layer ``layer``'s output
                             (steer subtracts ``alpha * v``, so ``delta = -alpha * v``)
``reference.safetensors``     ``check_ids`` / ``check_mask``, ``native_logits`` (steer's steered
                             prefill logits on them), ``plain_logits`` (unsteered), ``native_gen``
                             (steer's steered greedy ids), and ``prompt_b{B}`` per batch size
``spec.json``                 batch sizes, new tokens, warm-up and repetitions, check tokens

A peer script loads the same model, builds its own steering from ``vectors.safetensors``,
checks that its steered logits and greedy tokens match steer's (same vector, same layers,
same positions: every non-padding position of a text-only model, generated tokens
included), then times unsteered ``generate`` and steered ``generate`` interleaved in the
same process, and prints one JSON object.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file

def load_model(work: Path) -> torch.nn.Module:
    """The benchmark's LlamaForCausalLM via ``from_pretrained`` (float32, eval, sdpa)."""
    from transformers import LlamaForCausalLM

    folder = str(work / "model")
    try:
        model = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="sdpa")
    except TypeError:  # older transformers spell it torch_dtype
        model = LlamaForCausalLM.from_pretrained(folder, torch_dtype=torch.float32, attn_implementation="sdpa")
    model.eval()
    gc = model.generation_config
    gc.eos_token_id = None  # random weights: never stop early, every run makes exactly max_new_tokens
    gc.pad_token_id = 0
    gc.do_sample = False
    return model


def load_work(work: Path) -> tuple[dict, dict[int, torch.Tensor], dict[str, torch.Tensor]]:
    spec = json.loads((work / "spec.json").read_text())
    torch.set_num_threads(int(spec.get("threads", torch.get_num_threads())))  # as in bench/run.py
    raw = load_file(str(work / "vectors.safetensors"))
    deltas = {int(k.split(".", 1)[1]): v for k, v in raw.items()}
    ref = load_file(str(work / "reference.safetensors"))
    return spec, deltas, ref


def generate(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, new_tokens: int) -> torch.Tensor:
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=False, use_cache=True,
            eos_token_id=None, pad_token_id=0,
        )
    if out.shape[1] != ids.shape[1] + new_tokens:
        raise RuntimeError(f"generation made {out.shape[1] - ids.shape[1]} tokens, expected {new_tokens}")
    return out


def check(model, ref: dict[str, torch.Tensor], spec: dict, steered: Callable[[], Any]) -> dict:
    """Steered prefill logits and greedy ids vs steer's (the same work), and unsteered vs steer's."""
    ids, mask = ref["check_ids"], ref["check_mask"]
    # explicit (B, T) position_ids: repeng 0.4 builds its padding mask from them and cannot
    # broadcast the (1, T) ones transformers 5 makes for a plain forward; same positions
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        plain = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
        with steered():
            logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
        with steered():
            gen = generate(model, ids, mask, int(spec["check_new_tokens"]))
    effect = float((ref["native_logits"] - ref["plain_logits"]).abs().max())
    diff = float((logits - ref["native_logits"]).abs().max())
    plain_diff = float((plain - ref["plain_logits"]).abs().max())
    same_tokens = bool(torch.equal(gen, ref["native_gen"]))
    ok = same_tokens and diff <= 1e-4 * max(1.0, effect) and plain_diff <= 1e-4 * max(1.0, effect)
    return {
        "ok": ok,
        "max_abs_diff_steered_logits": diff,
        "max_abs_diff_unsteered_logits": plain_diff,
        "steering_effect_max_abs": effect,
        "same_greedy_tokens": same_tokens,
        "check_new_tokens": int(spec["check_new_tokens"]),
    }


def time_interleaved(
    model, spec: dict, ref: dict[str, torch.Tensor], contenders: dict[str, Callable[[], Any]]
) -> dict[str, dict[str, Any]]:
    """{batch: {name: [seconds per rep]}}: warm-up, then reps with the contenders interleaved
    (the order rotates every rep, so drift on a shared machine hits every contender alike)."""
    out: dict[str, dict[str, Any]] = {}
    new_tokens = int(spec["new_tokens"])
    names = list(contenders)
    for batch in spec["batch_sizes"]:
        ids = ref[f"prompt_b{batch}"]
        mask = torch.ones_like(ids)
        times: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(int(spec["warmup"])):
            for name in names:
                with contenders[name]():
                    generate(model, ids, mask, new_tokens)
        for rep in range(int(spec["reps"])):
            order = names[rep % len(names):] + names[: rep % len(names)]
            for name in order:
                with contenders[name]():
                    start = time.perf_counter()
                    generate(model, ids, mask, new_tokens)
                    times[name].append(time.perf_counter() - start)
        out[str(batch)] = {
            name: {"seconds": ts, "median_s": statistics.median(ts), "tokens_per_s": batch * new_tokens / statistics.median(ts)}
            for name, ts in times.items()
        }
    return out


def per_call_us(fn: Callable[[], Any], number: int = 2000) -> float:
    """Mean microseconds of one call of ``fn`` (after a few warm-up calls)."""
    for _ in range(20):
        fn()
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number * 1e6


def environment(extra: dict[str, str]) -> dict[str, Any]:
    import transformers

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        **extra,
    }


def main_args() -> Path:
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: {Path(sys.argv[0]).name} WORK_DIR (written by bench/run.py)")
    return Path(sys.argv[1])
