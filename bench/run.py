"""Steering overhead benchmark: steer (native hooks, nnsight) against unsteered HF and peers.

    python bench/run.py --out DIR [--quick] [--peer-venvs /tmp] [--device cpu|cuda] [--dtype float32|bfloat16]

writes ``DIR/benchmarks.json``. Per model and batch size, each contender's median greedy
tokens/s and its ratio to unsteered measured in the same run:

``unsteered``        ``model.generate`` with no steering
``steer_native``     steer's hook engine (``Steering`` applied + ``prompt()`` lock + ``generate``,
                     what ``SteeredModel.generate`` does per batch)
``steer_nnsight``    the same steering as an nnsight trace (``steer.nnsight_backend.run_generate``),
                     on a deep copy of the model (nnsight instruments every submodule for good)
``steering_vectors`` the ``steering-vectors`` library, in a venv of its own (``--peer-venvs``)
``repeng``           ``repeng``, in a venv of its own (``--peer-venvs``)

Peers run in their own processes and venvs (their pins clash with steer's), each timed
against an unsteered baseline in that same process; their ``ratio`` is to that baseline.

Models (float32 on CPU unless ``--device``/``--dtype``):

``organism``         the shipped LLaVA organism (``steer.organism.load_organism``), or, when its
                     weights are absent, the same architecture with untrained weights (timing
                     depends on the architecture, not the weights) -- images on every row,
                     ``after_image`` positions
``llama_d1024_L16``  a random-weight Llama (d=1024, 16 layers, vocab 32000) -- generation, peers
``llava_d1024_L16``  a random-weight LLaVA with the same text model and the organism's vision
                     tower and processor -- prefill of a ~1k-token prompt with a real image

Every steered contender steers every decoder layer with the same vectors (``op=subtract``,
alpha 1, ``after_image``: on a text-only model that is every non-padding position,
generated tokens included). Before timing, each contender's steered logits and greedy
tokens are checked against steer native's; a contender that differs is not timed.

Timing: one warm-up per contender, then ``reps`` repetitions with the contenders
interleaved in an order that rotates every repetition; medians. Greedy decoding never
stops early (EOS disabled), so every run makes exactly ``new_tokens`` tokens per row.
"""

from __future__ import annotations

import argparse
import copy
import gc
import hashlib
import json
import os
import platform
import statistics
import subprocess
import threading
import sys
import time
import traceback
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from steer.adapters import get_adapter  # noqa: E402
from steer.steering import Steering  # noqa: E402

PEERS = {
    "steering_vectors": ("venv-sv", "run_steering_vectors.py"),
    "repeng": ("venv-repeng", "run_repeng.py"),
}
LLAMA_CONFIG = dict(
    vocab_size=32000, hidden_size=1024, intermediate_size=2816, num_hidden_layers=16, num_attention_heads=16,
    num_key_value_heads=16, max_position_embeddings=2048, rms_norm_eps=1e-5, rope_theta=10000.0,
    tie_word_embeddings=False, attention_bias=False, mlp_bias=False, hidden_act="silu", initializer_range=0.02,
    bos_token_id=1, eos_token_id=2, pad_token_id=0,
)


@dataclass
class Settings:
    new_tokens: int = 128
    batch_sizes: tuple[int, ...] = (1, 8)
    warmup: int = 1
    reps: int = 5
    prompt_tokens: int = 32
    prefill_tokens: int = 1024
    prefill_reps: int = 5
    prefill_warmup: int = 1  # the equality check before timing runs each contender once more
    organism_prefill_tokens: int = 128  # the organism's whole context (max_position_embeddings)
    check_new_tokens: int = 12
    calib_samples: int = 512
    calib_samples_mid: int = 64
    budget_s: float = 30.0  # per timing block: fast cases get more reps to fill it (see interleave)
    nnsight_idle: bool = True  # also time plain generate on the nnsight-wrapped copy
    compare_batch: int = 64  # sample-level generation in the organism compare run's shape (docs/results.md)
    compare_new_tokens: int = 24


FULL = Settings()
QUICK = Settings(new_tokens=8, reps=3, prefill_tokens=512, prefill_reps=2, prefill_warmup=1, check_new_tokens=8,
                 calib_samples=128, calib_samples_mid=0, nnsight_idle=False, budget_s=6.0)


# ---------------------------------------------------------------------------- helpers
def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class SM:
    """What steer's runners need of a SteeredModel: ``model`` and ``adapter``."""

    def __init__(self, model: torch.nn.Module, processor: Any = None):
        self.model = model
        self.processor = processor
        self.adapter = get_adapter(model, processor)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call: CPU time next to wall time shows when
    another job on a shared machine, not the contender, made a repetition slow."""
    _sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    _sync(device)
    return time.perf_counter() - start, time.process_time() - cpu


def interleave(contenders: dict[str, Callable[[], Any]], warmup: int, reps: int, device: torch.device,
               budget_s: float = 0.0) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """(wall, CPU) seconds per rep for each contender: the same warm-up for every contender,
    then reps in a rotating order.

    ``budget_s``: when one round of all contenders is fast, run more reps (up to 10x
    ``reps``) to fill about this many seconds -- cheap cases get more samples."""
    names = list(contenders)
    for _ in range(warmup):
        for name in names:
            contenders[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    rep = 0
    while rep < reps:
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            wall, used = _timed(contenders[name], device)
            times[name].append(wall)
            cpu[name].append(used)
        if rep == 0 and budget_s > 0:
            round_s = sum(ts[0] for ts in times.values())
            reps = max(reps, min(10 * reps, int(budget_s / max(round_s, 1e-9))))
        rep += 1
    return times, cpu


def summarize(times: dict[str, list[float]], work_units: float, unit: str, baseline: str = "unsteered",
              cpu: dict[str, list[float]] | None = None) -> dict[str, Any]:
    """Medians; ``ratio`` = median baseline time / median time (= throughput ratio);
    ``paired_ratio`` = median over reps of baseline time / time of the same rep (the two ran
    next to each other, so slow drifts of a shared machine's load cancel); with ``cpu``, the
    same ratio of process CPU time (``cpu_ratio``)."""
    base = statistics.median(times[baseline])
    out = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        paired = statistics.median(b / x for b, x in zip(times[baseline], ts))
        entry = {"median_s": med, "seconds": ts, "ratio": base / med, "paired_ratio": paired}
        if cpu is not None:
            entry["median_cpu_s"] = statistics.median(cpu[name])
            entry["cpu_ratio"] = statistics.median(cpu[baseline]) / max(entry["median_cpu_s"], 1e-12)
        if unit == "tokens":
            entry["tokens_per_s"] = work_units / med
        else:
            entry["latency_ratio"] = med / base
        out[name] = entry
    return out


def machine_info(device: torch.device) -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
        "device": str(device),
    }
    try:
        import nnsight

        info["nnsight"] = nnsight.__version__
    except ImportError:
        info["nnsight"] = None
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    return info


def _no_eos(model: torch.nn.Module) -> None:
    gc_ = model.generation_config
    gc_.eos_token_id = None
    if gc_.pad_token_id is None:
        gc_.pad_token_id = 0
    gc_.do_sample = False


def _vectors(num_layers: int, d: int, scale: float, seed: int = 0) -> dict[int, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {layer: scale * torch.randn(d, generator=gen) for layer in range(num_layers)}


# ---------------------------------------------------------------------------- models
def random_weights(model_cls: type, config: Any, seed: int, keep: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """A random state dict for ``model_cls(config)`` without running its initialisers (fast):
    matrices N(0, 0.02), norm weights 1, biases 0; tensors in ``keep`` are taken as they are."""
    with torch.device("meta"):
        shapes = {k: (v.shape, v.dtype) for k, v in model_cls(config).state_dict().items()}
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, (shape, dtype) in shapes.items():
        if keep and name in keep:
            out[name] = keep[name].detach().clone().contiguous()
        elif len(shape) == 1 and "norm" in name and name.endswith("weight"):
            out[name] = torch.ones(shape, dtype=dtype)
        elif len(shape) == 1:
            out[name] = torch.zeros(shape, dtype=dtype)
        else:
            out[name] = (0.02 * torch.randn(shape, generator=gen)).to(dtype)
    return out


def build_llama(folder: Path, dtype: torch.dtype) -> Path:
    """Random-weight Llama, saved as a plain from_pretrained folder (cached by config hash)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    keys = {**LLAMA_CONFIG, "architectures": ["LlamaForCausalLM"], "model_type": "llama", "torch_dtype": "float32"}
    tag = hashlib.sha256(json.dumps({**keys, "weights": "random_weights v1, seed 0"}, sort_keys=True).encode()).hexdigest()[:12]
    model_dir = folder / "model"
    if (model_dir / "tag").is_file() and (model_dir / "tag").read_text() == tag:
        return model_dir
    model_dir.mkdir(parents=True, exist_ok=True)
    state = random_weights(LlamaForCausalLM, LlamaConfig(**LLAMA_CONFIG), seed=0)
    save_file(state, str(model_dir / "model.safetensors"), metadata={"format": "pt"})
    (model_dir / "config.json").write_text(json.dumps(keys, indent=1))
    (model_dir / "tag").write_text(tag)
    del state
    gc.collect()
    return model_dir


def load_llama(model_dir: Path, device: torch.device, dtype: torch.dtype) -> SM:
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(str(model_dir), dtype=dtype, attn_implementation="sdpa").to(device).eval()
    _no_eos(model)
    return SM(model, None)


def load_organism_sm(device: torch.device, dtype: torch.dtype) -> tuple[SM, str]:
    from steer.organism import ORGANISM_DIR, load_organism

    if (ORGANISM_DIR / "config.json").is_file():
        model, processor = load_organism(dtype=dtype)
        weights = "trained (steer/organism/weights)"
    else:
        from steer.organism.model import build_model, build_processor

        processor = build_processor()
        model = build_model(processor, seed=0).to(dtype)
        weights = "untrained: steer/organism/weights absent, same architecture with seed-0 initial weights"
    model = model.to(device).eval()
    _no_eos(model)
    return SM(model, processor), weights


def build_llava_mid(device: torch.device, dtype: torch.dtype) -> SM:
    """LLaVA: the mid-size Llama text model behind the organism's vision tower + processor."""
    from transformers import LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    from steer.organism.model import build_model, build_processor

    processor = build_processor()
    small = build_model(processor, seed=0)
    tok = processor.tokenizer
    text = {**LLAMA_CONFIG, "vocab_size": len(tok), "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
            "pad_token_id": tok.pad_token_id}
    config = LlavaConfig(
        vision_config=small.config.vision_config,
        text_config=LlamaConfig(**text),
        image_token_id=small.config.image_token_id,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        image_seq_length=small.config.image_seq_length,
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
    )
    # the organism's vision tower as it is, random text model and projector
    keep = {k: v for k, v in small.state_dict().items() if "vision_tower" in k}
    state = random_weights(LlavaForConditionalGeneration, config, seed=1, keep=keep)
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    model.load_state_dict(state, strict=True, assign=True)
    # non-persistent buffers (rotary frequencies, position ids) are not in a state dict: take
    # them from a model built on the CPU the ordinary way, without its weights
    buffers = dict(model.named_buffers())
    if any(b.is_meta for b in buffers.values()):
        from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

        for name, module in model.named_modules():
            if isinstance(module, LlamaRotaryEmbedding):
                fresh = LlamaRotaryEmbedding(config=config.text_config)
                for bname, buf in fresh.named_buffers(recurse=False):
                    setattr(module, bname, buf)
            for bname, buf in list(module.named_buffers(recurse=False)):
                if buf.is_meta and name.startswith("model.vision_tower"):
                    src = small.get_submodule(name).get_buffer(bname)
                    module.register_buffer(bname, src.clone(), persistent=False)
    leftover = [n for n, b in model.named_buffers() if b.is_meta] + [n for n, p in model.named_parameters() if p.is_meta]
    if leftover:
        raise RuntimeError(f"uninitialised tensors in the mid-size LLaVA: {leftover[:5]}")
    model = model.to(device=device, dtype=dtype).eval()
    _no_eos(model)
    return SM(model, processor)


def nnsight_copy(sm: SM) -> SM:
    clone = copy.deepcopy(sm.model)
    return SM(clone, sm.processor)


# ---------------------------------------------------------------------------- contenders
def steerings(sm: SM, sm_nn: SM, vectors, positions: str) -> tuple[Steering, Steering]:
    return (
        Steering(sm.adapter, vectors, alpha=1.0, op="subtract", positions=positions),
        Steering(sm_nn.adapter, vectors, alpha=1.0, op="subtract", positions=positions),
    )


def vector_file(sm: SM, vectors, folder: Path) -> Path:
    """The vectors as a vector file for this model, as ``steer calibrate`` writes one."""
    from steer.vectors import ShiftVectors

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"bench-{sm.adapter.family}-{sm.adapter.hidden_size}x{sm.adapter.num_layers}.safetensors"
    return ShiftVectors(dict(vectors), None, {"method": "cmrm", "model": sm.adapter.fingerprint()}).save(path)


def api_steering(sm: SM, path: Path, positions: str) -> Steering:
    """What ``SteeredModel.generate`` builds per call: read and check the file, then a Steering."""
    from steer.model import SteeredModel

    api = SteeredModel(sm.model, sm.processor, adapter=sm.adapter)
    return api.steering(path, alpha=1.0, positions=positions, schedule="cumulative")


def api_sample_steering(sm: SM, rows: list[str]) -> Steering:
    """What ``SteeredModel.generate(steer="sample")`` builds per call: each query's own shift."""
    from steer.model import SteeredModel

    return SteeredModel(sm.model, sm.processor, adapter=sm.adapter).sample_steering(rows)


def padded_sample_steering(sm: SM, rows: list[str]) -> Steering:
    """Sample-level CMRM measured the old way (2B left-padded rows, prefix recomputed), same steering."""
    from steer.sample_shift import padded_query_shifts
    from steer.schedule import apply_schedule

    shifts = padded_query_shifts(sm.adapter, rows, list(range(sm.adapter.num_layers)))
    return Steering(sm.adapter, apply_schedule(shifts, "incremental"), positions="prompt")


def gen_fns(sm: SM, sm_nn: SM, native: Steering, nn_steering: Steering, inputs, new_tokens: int, idle: bool,
            path: Path | None = None, positions: str = "after_image", rows: list[str] | None = None):
    """Contenders for one batch. ``steer_native*`` build their steering inside the timed call
    from the vector file at ``path`` (as the API does per generate); ``steer_native_prompt`` /
    ``_all`` steer ``prompt`` / ``all`` positions; ``steer_sample`` (``rows``: the batch's
    prompts, VLMs only) measures each query's shift first, as ``generate(steer="sample")``."""
    from steer.nnsight_backend import run_generate

    kw = dict(max_new_tokens=new_tokens, do_sample=False, use_cache=True)

    def unsteered():
        with torch.inference_mode():
            return sm.model.generate(**inputs, **kw)

    def run_native(make: Callable[[], Steering]) -> Callable[[], Any]:
        def run():
            with torch.inference_mode():
                steering = make()
                with steering, steering.prompt(inputs["input_ids"]):
                    return sm.model.generate(**inputs, **kw)

        return run

    def steer_nnsight():
        with torch.inference_mode():
            return run_generate(sm_nn, inputs, nn_steering, max_new_tokens=new_tokens, use_cache=True)

    if path is None:
        steer_native = run_native(lambda: native)
    else:
        steer_native = run_native(lambda: api_steering(sm, path, positions))
    fns = {"unsteered": unsteered, "steer_native": steer_native}
    if path is not None:
        fns["steer_native_prompt"] = run_native(lambda: api_steering(sm, path, "prompt"))
        fns["steer_native_all"] = run_native(lambda: api_steering(sm, path, "all"))
    if rows is not None:
        fns["steer_sample"] = run_native(lambda: api_sample_steering(sm, rows))
    fns["steer_nnsight"] = steer_nnsight
    if idle:
        def unsteered_nnsight_wrapped():
            with torch.inference_mode():
                return sm_nn.model.generate(**inputs, **kw)

        fns["unsteered_nnsight_wrapped"] = unsteered_nnsight_wrapped
    return fns


def check_in_process(sm: SM, sm_nn: SM, native: Steering, nn_steering: Steering, inputs, new_tokens: int) -> dict[str, Any]:
    """steer_nnsight vs steer_native: identical steered logits and greedy tokens (bitwise)."""
    from steer.nnsight_backend import run_forward, run_generate

    with torch.inference_mode():
        plain = sm.model(**inputs).logits
        with native:
            ref = sm.model(**inputs).logits
        got = run_forward(sm_nn, inputs, nn_steering).logits
        with native, native.prompt(inputs["input_ids"]):
            ref_ids = sm.model.generate(**inputs, max_new_tokens=new_tokens, do_sample=False)
        got_ids = run_generate(sm_nn, inputs, nn_steering, max_new_tokens=new_tokens)
    return {
        "steering_effect_max_abs": float((ref - plain).abs().max()),
        "steer_nnsight": {
            "identical_logits": bool(torch.equal(got, ref)),
            "max_abs_diff": float((got.float() - ref.float()).abs().max()),
            "same_greedy_tokens": bool(torch.equal(got_ids, ref_ids)),
            "ok": bool(torch.equal(got, ref) and torch.equal(got_ids, ref_ids)),
        },
        "plain_logits": plain,
        "native_logits": ref,
        "native_gen": ref_ids,
    }


def bench_generation(sm, sm_nn, vectors, positions, prompts_for_batch, s: Settings, device, path: Path | None = None,
                     rows_for_batch: Callable[[int], list[str]] | None = None) -> dict[str, Any]:
    native, nn_steering = steerings(sm, sm_nn, vectors, positions)
    out: dict[str, Any] = {}
    for batch in s.batch_sizes:
        inputs = prompts_for_batch(batch)
        rows = None if rows_for_batch is None else rows_for_batch(batch)
        fns = gen_fns(sm, sm_nn, native, nn_steering, inputs, s.new_tokens, s.nnsight_idle, path, positions, rows)
        with torch.inference_mode():
            made = fns["unsteered"]().shape[1] - inputs["input_ids"].shape[1]
        if made != s.new_tokens:
            raise RuntimeError(f"generation made {made} tokens instead of {s.new_tokens}")
        log(f"  batch {batch}: timing {', '.join(fns)} ({s.warmup} warm-up + >= {s.reps} reps)")
        times, cpu = interleave(fns, s.warmup, s.reps, device, s.budget_s)
        out[str(batch)] = summarize(times, batch * s.new_tokens, "tokens", cpu=cpu)
        out[str(batch)]["prompt_tokens"] = int(inputs["input_ids"].shape[1])
        log("    " + ", ".join(f"{k} {v['tokens_per_s']:.1f} tok/s (x{v['ratio']:.3f}, paired x{v['paired_ratio']:.3f})"
                               for k, v in out[str(batch)].items() if isinstance(v, dict)))
    return out


def engine_overhead(sm, sm_nn, vectors, positions, inputs, s: Settings, device) -> dict[str, Any]:
    """Per cached decode step: the native engine's own cost (pre-hook mask + one layer hook,
    timed alone), and one decode-step forward unsteered / native / nnsight, interleaved."""
    import timeit

    from transformers import DynamicCache

    from steer.nnsight_backend import run_forward

    native, nn_steering = steerings(sm, sm_nn, vectors, positions)
    ids = inputs["input_ids"]
    batch, length = ids.shape
    with torch.inference_mode():
        cache = DynamicCache(config=sm.model.config)
        out = sm.model(**inputs, cache=cache, use_cache=True)
        step_ids = out.logits[:, -1:].argmax(-1)
        mask = torch.cat([inputs["attention_mask"], torch.ones(batch, 1, dtype=inputs["attention_mask"].dtype,
                                                             device=ids.device)], dim=1)
        step = {"input_ids": step_ids, "attention_mask": mask, "cache": cache, "use_cache": True, "logits_to_keep": 1}
        n = 300
        with native.prompt(ids):
            prehook = timeit.timeit(lambda: native._on_model_forward(sm.model, (), step), number=n) / n
            layer = native.layers[len(native.layers) // 2]
            hook = native._make_layer_hook(layer)
            hidden = torch.randn(batch, 1, sm.adapter.hidden_size, device=ids.device, dtype=next(sm.model.parameters()).dtype)
            layer_hook = timeit.timeit(lambda: hook(None, (), hidden), number=n) / n

        # one cached decode step per call; the native hooks are applied around the timed forward
        # (apply/remove is a per-generate cost, measured in the generation benchmark)
        cache_nn = DynamicCache(config=sm_nn.model.config)  # the nnsight copy has its own weights and cache
        sm_nn.model(**inputs, cache=cache_nn, use_cache=True)
        step_nn = {**step, "cache": cache_nn}

        def unsteered() -> float:
            start = time.perf_counter()
            sm.model(**step)
            return time.perf_counter() - start

        def steer_native() -> float:
            with native, native.prompt(ids):
                start = time.perf_counter()
                sm.model(**step)
                return time.perf_counter() - start

        def steer_nnsight() -> float:
            # nnsight takes its layout from this call's input_ids (one token): the same mask
            # arithmetic per step, though not the prompt's positions -- for timing only
            start = time.perf_counter()
            run_forward(sm_nn, step_nn, nn_steering)
            return time.perf_counter() - start

        fns = {"unsteered": unsteered, "steer_native": steer_native, "steer_nnsight": steer_nnsight}
        times = {name: [] for name in fns}
        names = list(fns)
        for rep in range(2 + (10 if s.reps < 5 else 30)):
            shift = rep % len(names)
            for name in names[shift:] + names[:shift]:
                elapsed = fns[name]()
                (cache_nn if name == "steer_nnsight" else cache).crop(-1)
                if rep >= 2:  # two warm-up rounds
                    times[name].append(elapsed)
    layers = len(native.layers)
    step_s = statistics.median(times["unsteered"])
    engine = prehook + layers * layer_hook
    out = {
        "batch": batch,
        "steered_layers": layers,
        "native_prehook_us": prehook * 1e6,
        "native_layer_hook_us": layer_hook * 1e6,
        "native_engine_us_per_step": engine * 1e6,
        "unsteered_decode_step_ms": step_s * 1e3,
        "implied_native_ratio": step_s / (step_s + engine),
        "decode_step": summarize(times, 1, "latency"),
    }
    log(f"  engine: pre-hook {prehook * 1e6:.0f} us + {layers} x {layer_hook * 1e6:.1f} us per decode step of "
        f"{step_s * 1e3:.1f} ms -> implied ratio {out['implied_native_ratio']:.4f}; measured decode step: " +
        ", ".join(f"{k} x{v['paired_ratio']:.3f}" for k, v in out["decode_step"].items()))
    return out


def bench_prefill(sm, sm_nn, vectors, positions, inputs, s: Settings, device) -> dict[str, Any]:
    from steer.nnsight_backend import run_forward

    native, nn_steering = steerings(sm, sm_nn, vectors, positions)
    call = {**inputs, "use_cache": True, "logits_to_keep": 1}

    def unsteered():
        with torch.inference_mode():
            return sm.model(**call)

    def steer_native():
        with torch.inference_mode(), native:
            return sm.model(**call)

    def steer_nnsight():
        with torch.inference_mode():
            return run_forward(sm_nn, call, nn_steering)

    with torch.inference_mode():  # equality check, and a first run of each contender
        unsteered()
        ref = steer_native().logits
        same = bool(torch.equal(steer_nnsight().logits, ref))
    from steer.positions import PromptLayout

    ids = inputs["input_ids"]
    layout = PromptLayout.from_prompt(ids, sm.adapter.image_token_mask(ids), sm.adapter.supports_images)
    steered_positions = int(layout.chunk_mask(positions, 0, ids.shape[1], inputs.get("attention_mask")).sum())
    log(f"  prefill {ids.shape[1]} tokens ({steered_positions} steered): timing ({s.prefill_warmup} warm-up + "
        f">= {s.prefill_reps} reps)")
    times, cpu = interleave({"unsteered": unsteered, "steer_native": steer_native, "steer_nnsight": steer_nnsight},
                            s.prefill_warmup, s.prefill_reps, device, s.budget_s)
    out = summarize(times, 1, "latency", cpu=cpu)
    out.update(prompt_tokens=int(ids.shape[1]), steered_positions=steered_positions, positions=positions,
               image_tokens=int(sm.adapter.image_token_mask(ids).sum()), nnsight_identical_logits=same)
    log("    " + ", ".join(f"{k} {v['median_s'] * 1000:.0f} ms (x{v['latency_ratio']:.3f})" for k, v in out.items()
                           if isinstance(v, dict)))
    return out


def bench_sample_prefill(sm: SM, rows_for_batch: Callable[[int], list[str]], s: Settings, device) -> dict[str, Any]:
    """The whole sample-level prefill phase against a plain prefill of the same batch.

    ``steer_sample``: what ``generate(steer="sample")`` does before decoding -- measure each
    query's shift (the cached content-free-image prefix plus one forward over the 2B short
    text parts) and run the steered prefill. ``steer_sample_padded``: the same with the
    padded 2B-row measurement (the path before the prefix cache, and Qwen2-VL's path).
    The prefix is computed once per model, in the warm-up."""
    from steer.sample_shift import padded_query_shifts, query_shifts

    img = sm.adapter.content_free_image("noise", seed=3)
    layers = list(range(sm.adapter.num_layers))
    out: dict[str, Any] = {}
    for batch in s.batch_sizes:
        rows = rows_for_batch(batch)
        inputs = sm.adapter.build_inputs(rows, [img] * batch)
        call = {**inputs, "use_cache": True, "logits_to_keep": 1}

        def unsteered():
            with torch.inference_mode():
                return sm.model(**call)

        def steered(make: Callable[[], Steering]) -> Callable[[], Any]:
            def run():
                with torch.inference_mode():
                    steering = make()
                    with steering, steering.prompt(inputs["input_ids"]):
                        return sm.model(**call)

            return run

        with torch.inference_mode():
            fast, slow = query_shifts(sm.adapter, rows, layers), padded_query_shifts(sm.adapter, rows, layers)
        diff = max(float((fast[l] - slow[l]).abs().max()) for l in layers)
        fns = {"unsteered": unsteered, "steer_sample": steered(lambda: api_sample_steering(sm, rows)),
               "steer_sample_padded": steered(lambda: padded_sample_steering(sm, rows))}
        log(f"  sample-level prefill, batch {batch} ({inputs['input_ids'].shape[1]} tokens a row): timing")
        times, cpu = interleave(fns, max(1, s.prefill_warmup), s.prefill_reps, device, s.budget_s)
        out[str(batch)] = summarize(times, 1, "latency", cpu=cpu)
        out[str(batch)].update(prompt_tokens=int(inputs["input_ids"].shape[1]),
                               image_tokens=int(sm.adapter.image_token_mask(inputs["input_ids"][:1]).sum()),
                               shift_max_abs_diff_vs_padded=diff)
        log("    " + ", ".join(f"{k} {v['median_s'] * 1000:.0f} ms (x{v['latency_ratio']:.3f})"
                               for k, v in out[str(batch)].items() if isinstance(v, dict)))
    return out


def bench_sample_generation(sm: SM, rows_for_batch: Callable[[int], list[str]], s: Settings, device) -> dict[str, Any]:
    """Whole greedy generation, shift measurement included, in the shape of the organism
    compare run (``s.compare_batch`` rows with images, ``s.compare_new_tokens`` tokens):
    unsteered, sample-level CMRM as the API runs it, and the same with the padded measurement."""
    img = sm.adapter.content_free_image("noise", seed=3)
    batch, new_tokens = s.compare_batch, s.compare_new_tokens
    rows = rows_for_batch(batch)
    inputs = sm.adapter.build_inputs(rows, [img] * batch)
    # EOS disabled: every contender generates exactly new_tokens per row, the count the
    # tokens/s below assumes (steered rows may otherwise stop at another step than unsteered ones)
    kw = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, use_cache=True)

    def run(make: Callable[[], Steering] | None) -> Callable[[], Any]:
        def call():
            with torch.inference_mode():
                if make is None:
                    return sm.model.generate(**inputs, **kw)
                steering = make()
                with steering, steering.prompt(inputs["input_ids"]):
                    return sm.model.generate(**inputs, **kw)

        return call

    fns = {"unsteered": run(None), "steer_sample": run(lambda: api_sample_steering(sm, rows)),
           "steer_sample_padded": run(lambda: padded_sample_steering(sm, rows))}
    with torch.inference_mode():
        same = bool(torch.equal(fns["steer_sample"](), fns["steer_sample_padded"]()))
    log(f"  sample-level generation, batch {batch}, {new_tokens} new tokens: timing (same tokens: {same})")
    times, cpu = interleave(fns, s.warmup, s.reps, device, s.budget_s)
    out = summarize(times, batch * new_tokens, "tokens", cpu=cpu)
    out.update(batch=batch, new_tokens=new_tokens, same_tokens_as_padded=same)
    log("    " + ", ".join(f"{k} {v['tokens_per_s']:.0f} tok/s (x{v['ratio']:.3f}, paired x{v['paired_ratio']:.3f})"
                           for k, v in out.items() if isinstance(v, dict)))
    return out


# ---------------------------------------------------------------------------- peers
def run_peers(work: Path, peer_venvs: Path | None, timeout: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (venv, script) in PEERS.items():
        if peer_venvs is None:
            out[name] = {"skipped": "no --peer-venvs DIR given (see docs/benchmarks.md, 'Peers', for the venv set-up)"}
            continue
        python = peer_venvs / venv / "bin" / "python"
        if not python.exists():
            out[name] = {"skipped": f"venv not found: {python} (see docs/benchmarks.md, 'Peers')"}
            continue
        log(f"  peer {name}: {python} bench/peers/{script}")
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                [str(python), str(ROOT / "bench" / "peers" / script), str(work)],
                capture_output=True, text=True, timeout=timeout, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
            )
        except subprocess.TimeoutExpired:
            out[name] = {"skipped": f"timed out after {timeout:.0f} s"}
            continue
        if proc.returncode != 0:
            out[name] = {"skipped": f"peer script failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}"}
            continue
        try:
            result = json.loads(proc.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            out[name] = {"skipped": f"peer script printed no JSON: {proc.stdout[-300:]} {proc.stderr[-300:]}"}
            continue
        result["wall_s"] = time.perf_counter() - start
        out[name] = result
        log(f"    check ok={result['check']['ok']} (max |diff| {result['check']['max_abs_diff_steered_logits']:.2e})")
    return out


def peer_entries(peer: dict[str, Any], batch: int) -> dict[str, Any]:
    """A peer's entry for one batch size, ratio to its own unsteered baseline."""
    if "skipped" in peer:
        return {"skipped": peer["skipped"]}
    if not peer["check"]["ok"]:
        return {"skipped": "steered logits/tokens differ from steer's: not timed", "check": peer["check"]}
    t = peer["timings"][str(batch)]
    base, steered = t["unsteered"]["median_s"], t["steered"]["median_s"]
    paired = statistics.median(b / x for b, x in zip(t["unsteered"]["seconds"], t["steered"]["seconds"]))
    return {
        "tokens_per_s": t["steered"]["tokens_per_s"],
        "median_s": steered,
        "seconds": t["steered"]["seconds"],
        "ratio": base / steered,
        "paired_ratio": paired,
        "unsteered_tokens_per_s_same_process": t["unsteered"]["tokens_per_s"],
        "unsteered_seconds_same_process": t["unsteered"]["seconds"],
        "env": peer["env"],
        "per_layer_hook_us": peer.get("per_layer_hook_us"),
    }


# ---------------------------------------------------------------------------- calibration
def calibration(s: Settings, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    try:
        from calibration.cmrm import calibrate_cmrm  # noqa: F401
    except ImportError as err:
        return {"skipped": f"calibration.cmrm.calibrate_cmrm not available ({err})"}
    out: dict[str, Any] = {}
    for model, samples in (("organism", s.calib_samples), ("llava_d1024_L16", s.calib_samples_mid)):
        if samples <= 0:
            out[model] = {"skipped": "not in --quick"}
            continue
        args = json.dumps({"model": model, "samples": samples, "device": str(device),
                           "dtype": str(dtype).replace("torch.", ""), "threads": torch.get_num_threads()})
        log(f"calibration: calibrate_cmrm on {model}, {samples} anchors (subprocess, for peak memory)")
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--calibration-worker", args],
                              capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            out[model] = {"skipped": f"calibration worker failed: {proc.stderr.strip()[-800:]}"}
            continue
        out[model] = json.loads(proc.stdout.strip().splitlines()[-1])
        c = out[model]
        log(f"  {c['anchors_per_s']:.1f} anchors/s, peak {c['peak_rss_above_model_mb']:.0f} MB above the model")
    return out


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def calibration_worker(raw: str) -> None:
    from calibration.cmrm import calibrate_cmrm
    from steer.organism import split_prompts

    args = json.loads(raw)
    torch.set_num_threads(int(args["threads"]))
    device = torch.device(args["device"])
    dtype = getattr(torch, args["dtype"])
    if args["model"] == "organism":
        sm, weights = load_organism_sm(device, dtype)
    else:
        sm, weights = build_llava_mid(device, dtype), "random"
    anchors = (split_prompts("anchors") * 8)[: args["samples"]]
    import sklearn.linear_model  # noqa: F401  (what calibration imports lazily, so it is not counted)

    gc.collect()
    rss_model = _rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base_cuda = torch.cuda.memory_allocated(device)
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:  # RSS every 2 ms, over the warm-up and the timed run
        while not stop.is_set():
            samples.append(_rss_mb())
            stop.wait(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    calibrate_cmrm(sm, anchors[:8], batch_size=8, progress=False)  # warm-up
    rss_before = _rss_mb()
    start = time.perf_counter()
    vecs = calibrate_cmrm(sm, anchors, batch_size=8, progress=False)
    elapsed = time.perf_counter() - start
    stop.set()
    sampler.join()
    out = {
        "model": args["model"],
        "weights": weights,
        "anchors": len(anchors),
        "batch_size": 8,
        "layers": len(vecs.layers),
        "seconds": elapsed,
        "anchors_per_s": len(anchors) / elapsed,
        "forward_passes_per_s": 2 * len(anchors) / elapsed,  # two views (content-free image + prompt, prompt) per anchor
        "rss_after_model_load_mb": rss_model,
        "rss_before_timed_run_mb": rss_before,
        "peak_rss_mb": max(samples, default=rss_before),
        "peak_rss_above_model_mb": max(samples, default=rss_before) - rss_model,
        "memory_note": "CPU: RSS sampled every 2 ms over a warm-up calibration (8 anchors) and the timed one, minus "
        "RSS after loading the model and sklearn; freed memory the allocator keeps counts until the end. Not "
        "ru_maxrss: Linux carries the parent's peak over fork+exec, so a child's ru_maxrss starts at the "
        "benchmark process's size",
    }
    if device.type == "cuda":
        out["cuda_peak_above_model_mb"] = (torch.cuda.max_memory_allocated(device) - base_cuda) / 2**20
    print(json.dumps(out))


# ---------------------------------------------------------------------------- main
def organism_inputs(sm: SM, prompts: list[str]):
    img = sm.adapter.content_free_image("noise", seed=3)

    def make(batch: int):
        rows = (prompts * batch)[:batch]
        return sm.adapter.build_inputs(rows, [img] * batch)

    return make


def long_prompt(sm: SM, tokens: int) -> dict[str, torch.Tensor]:
    """One row: an image plus words up to about ``tokens`` prompt tokens in all."""
    from steer.organism.vocab import all_words

    words = all_words()
    img = sm.adapter.content_free_image("noise", seed=3)
    base = sm.adapter.build_inputs(["x"], [img])["input_ids"].shape[1]  # template + image tokens + 1 word
    text = " ".join(words[i % len(words)] for i in range(max(1, tokens - base + 1)))
    inputs = sm.adapter.build_inputs([text], [img])
    return inputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=False, help="output folder (benchmarks.json)")
    parser.add_argument("--quick", action="store_true", help="fewer tokens and repetitions (< 5 min on 2 CPU cores)")
    parser.add_argument("--peer-venvs", type=Path, default=None,
                        help="folder holding venv-sv/ (steering-vectors) and venv-repeng/ (repeng)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/steer-bench-work"),
                        help="scratch folder for the random model shared with the peers (reused between runs)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads, here and in the peer processes (default 1: on a shared 2-core "
                        "machine two OpenMP threads stall each other whenever another job holds a core)")
    parser.add_argument("--only", default="organism,llama,llava,calibration",
                        help="comma-separated parts: organism, llama, llava, calibration")
    parser.add_argument("--calibration-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.calibration_worker is not None:
        calibration_worker(args.calibration_worker)
        return
    if args.out is None:
        parser.error("--out is required")
    warnings.filterwarnings("ignore", message=".*generation flags are not valid.*")
    s = QUICK if args.quick else FULL
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "meta": {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "quick": args.quick,
            "settings": asdict(s),
            "dtype": args.dtype,
            "machine_start": machine_info(device),
            "note": "timings on a shared machine (other jobs may run); ratios are within one run, contenders interleaved",
            "steering": "every decoder layer, op=subtract, alpha=1, positions=after_image, same vectors for every contender",
        },
        "models": {},
    }

    def save() -> None:
        (args.out / "benchmarks.json").write_text(json.dumps(result, indent=1))

    # -- organism -----------------------------------------------------------------------
    if "organism" in parts:
        log("organism: loading")
        sm, weights = load_organism_sm(device, dtype)
        sm_nn = nnsight_copy(sm)
        entry: dict[str, Any] = {"weights": weights, "architecture": "LLaVA: Llama d=160, 4 layers + CLIP 3 layers, 16 image tokens"}
        vectors = _vectors(sm.adapter.num_layers, sm.adapter.hidden_size, scale=2.0)
        from steer.organism import split_prompts

        anchors = split_prompts("anchors")[:8]
        make = organism_inputs(sm, anchors)
        rows = lambda batch: (anchors * batch)[:batch]  # noqa: E731 -- the rows organism_inputs builds
        path = vector_file(sm, vectors, args.work / "vectors")
        native, nn_steering = steerings(sm, sm_nn, vectors, "after_image")
        chk = check_in_process(sm, sm_nn, native, nn_steering, make(2), s.check_new_tokens)
        entry["checks"] = {k: v for k, v in chk.items() if not torch.is_tensor(v)}
        log(f"  check: steer_nnsight ok={chk['steer_nnsight']['ok']}")
        entry["generation"] = bench_generation(sm, sm_nn, vectors, "after_image", make, s, device, path, rows)
        entry["engine_overhead"] = engine_overhead(sm, sm_nn, vectors, "after_image", make(1), s, device)
        entry["sample_prefill"] = bench_sample_prefill(sm, rows, s, device)
        entry["sample_generation"] = bench_sample_generation(sm, lambda b: (split_prompts("anchors") * b)[:b], s, device)
        for batch in s.batch_sizes:
            for peer in PEERS:
                entry["generation"][str(batch)][peer] = {
                    "skipped": "peers run on the text-only Llama only: they cannot steer image-relative (after_image) "
                    "positions of a VLM's image rows"
                }
        entry["prefill"] = bench_prefill(sm, sm_nn, vectors, "after_image",
                                         long_prompt(sm, s.organism_prefill_tokens), s, device)
        result["models"]["organism"] = entry
        del sm, sm_nn, native, nn_steering
        gc.collect()
        save()

    # -- mid-size Llama: generation + peers -----------------------------------------------
    if "llama" in parts:
        log("llama_d1024_L16: building/loading")
        work = args.work / "llama_d1024_L16"
        model_dir = build_llama(work, dtype)
        sm = load_llama(model_dir, device, dtype)
        sm_nn = nnsight_copy(sm)
        d, n_layers = sm.adapter.hidden_size, sm.adapter.num_layers
        vectors = _vectors(n_layers, d, scale=0.05)
        gen = torch.Generator().manual_seed(1)
        prompts = {b: torch.randint(3, LLAMA_CONFIG["vocab_size"], (b, s.prompt_tokens), generator=gen) for b in s.batch_sizes}

        def make(batch: int):
            ids = prompts[batch].to(device)
            return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

        native, nn_steering = steerings(sm, sm_nn, vectors, "after_image")
        check_ids = torch.randint(3, LLAMA_CONFIG["vocab_size"], (2, 24), generator=gen)
        check_inputs = {"input_ids": check_ids.to(device), "attention_mask": torch.ones_like(check_ids).to(device)}
        chk = check_in_process(sm, sm_nn, native, nn_steering, check_inputs, s.check_new_tokens)
        log(f"  check: steer_nnsight ok={chk['steer_nnsight']['ok']}, steering effect {chk['steering_effect_max_abs']:.3f}")
        # what the peers need: the vectors as additions (steer subtracts alpha * v), the reference
        terms = {f"delta.{layer}": t.reshape(-1).float().cpu().contiguous() for layer, t in native._terms.items()}
        save_file(terms, str(work / "vectors.safetensors"))
        ref = {"check_ids": check_ids, "check_mask": torch.ones_like(check_ids),
               "native_logits": chk["native_logits"].float().cpu(), "plain_logits": chk["plain_logits"].float().cpu(),
               "native_gen": chk["native_gen"].cpu()}
        ref.update({f"prompt_b{b}": p for b, p in prompts.items()})
        save_file({k: v.contiguous() for k, v in ref.items()}, str(work / "reference.safetensors"))
        (work / "spec.json").write_text(json.dumps({
            # the same warm-up as steer's contenders get (their equality check runs the model too)
            "batch_sizes": list(s.batch_sizes), "new_tokens": s.new_tokens, "warmup": s.warmup,
            "reps": s.reps,
            "check_new_tokens": s.check_new_tokens, "threads": torch.get_num_threads(),
        }))
        entry = {"weights": "random (seed 0)", "config": LLAMA_CONFIG,
                 "checks": {k: v for k, v in chk.items() if not torch.is_tensor(v)}}
        path = vector_file(sm, vectors, args.work / "vectors")
        entry["generation"] = bench_generation(sm, sm_nn, vectors, "after_image", make, s, device, path)
        entry["engine_overhead"] = engine_overhead(sm, sm_nn, vectors, "after_image", make(1), s, device)
        result["models"]["llama_d1024_L16"] = entry
        del sm, sm_nn, native, nn_steering, chk
        gc.collect()
        save()
        if device.type == "cpu" and dtype == torch.float32:
            log("peers (each in its own venv and process, against its own unsteered baseline)")
            peers = run_peers(work, args.peer_venvs, timeout=3600)
        else:
            peers = {p: {"skipped": "peers are benchmarked on CPU float32 only"} for p in PEERS}
        entry["peers"] = {k: {kk: vv for kk, vv in v.items() if kk != "timings"} for k, v in peers.items()}
        for batch in s.batch_sizes:
            for peer, res in peers.items():
                entry["generation"][str(batch)][peer] = peer_entries(res, batch)
        save()

    # -- mid-size LLaVA: prefill of a ~1k-token prompt with an image -----------------------
    if "llava" in parts:
        log("llava_d1024_L16: building")
        sm = build_llava_mid(device, dtype)
        sm_nn = nnsight_copy(sm)
        vectors = _vectors(sm.adapter.num_layers, sm.adapter.hidden_size, scale=0.05)
        entry = {"weights": "random (seed 1)", "text_config": {**LLAMA_CONFIG, "vocab_size": sm.adapter.model.config.text_config.vocab_size},
                 "vision": "the organism's CLIP tower (3 layers, 16 image tokens) and processor"}
        entry["prefill"] = bench_prefill(sm, sm_nn, vectors, "after_image", long_prompt(sm, s.prefill_tokens), s, device)
        result["models"]["llava_d1024_L16"] = entry
        del sm, sm_nn
        gc.collect()
        save()
        log("llava_d256_L8_img144: building (bench/calibration_overhead.py's LLaVA: 144 image tokens)")
        from bench.calibration_overhead import build_model as build_llava144, make_anchors

        model, processor = build_llava144(str(device))
        model = model.to(dtype=dtype)
        sm = SM(model, processor)
        entry = {"weights": "random (seed 0)", "architecture": "LLaVA: Llama d=256, 8 layers + CLIP 2 layers at 168 px, "
                 "144 image tokens; word-level tokenizer of the test models", "prompts": "make_anchors: 8-30 words"}
        entry["sample_prefill"] = bench_sample_prefill(sm, make_anchors, s, device)
        result["models"]["llava_d256_L8_img144"] = entry
        del sm, model
        gc.collect()
        save()

    # -- calibration ---------------------------------------------------------------------
    if "calibration" in parts:
        try:
            result["calibration"] = calibration(s, device, dtype)
        except Exception as err:  # keep the rest of the results
            result["calibration"] = {"skipped": f"failed: {err!r}", "traceback": traceback.format_exc()[-1500:]}
    result["meta"]["machine_end"] = machine_info(device)
    result["meta"]["wall_s"] = time.perf_counter() - started
    save()
    log(f"wrote {args.out / 'benchmarks.json'} in {result['meta']['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
