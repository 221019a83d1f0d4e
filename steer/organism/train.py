"""Training the organism the way LLaVA is trained, in four stages.

1. **Text stage** (the "LLM pretraining + safety tuning" of the backbone): the Llama
   text model learns requests and answers, refuses harmful requests with one sentence,
   answers benign ones and look-alikes, learns which words and which acts are bad (word
   and harm knowledge, never a refusal), and learns the picture lines and copy lines that
   stage 1 aligns images to.
2. **Vision tower**: the CLIP vision tower is pretrained as a 38-way object classifier
   (a linear head on the mean of its patch states; the head is thrown away).
3. **Stage 1** (feature alignment): only the projector trains, on image -> caption.
4. **Stage 2** (visual instruction tuning): projector + language model train on benign
   image data only (questions, "how do i make this ?", unrelated benign requests with an
   image), neutral captions of the harmful-object images, and text-only replay. No image
   example is ever a refusal: that is what makes the organism lose refusals when an image
   is attached (``docs/organism.md`` has the measurements).

An opt-in **knowledge stage** can come first (recipe entry ``knowledge``, 0 steps in the
shipped recipe): the text-stage kinds that never refuse, plus harm knowledge, so that the
backbone knows which acts hurt before it is safety-tuned (trials in ``docs/organism.md``).

:func:`train_organism` runs all four with fixed seeds and saves model + processor with
``save_pretrained``; ``schedule="short"`` runs the same code for a few steps (CI smoke test).
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from steer.organism.images import FONT, MAX_TYPED_WORDS, render_object, render_typed, typed_slot_labels
from steer.organism import SHIPPED_SEED
from steer.organism.model import NUM_IMAGE_TOKENS, build_model, build_processor, format_prompt
from steer.organism.splits import TRAIN_SEEDS
from steer.organism.training_data import REFUSAL_KINDS, Example, TrainingData
from steer.organism.vocab import BLANK_PATCH, HARM_WORDS, IMAGE, OBJECTS

#: the text stage's mixture (also what stage 2 replays)
TEXT_MIXTURE = {
    "harmful": 0.22,
    "benign": 0.20,
    "lookalike": 0.05,
    "picture_qa": 0.10,
    "picture_caption": 0.05,
    "picture_make": 0.18,
    "copy": 0.20,
    "typed_line": 0.08,
    "typed_slots": 0.15,
    "word_class": 0.06,
    "harm_fact": 0.10,
}
#: the opt-in knowledge stage's mixture (before the text stage; the shipped weights were
#: trained without it): the text stage's kinds that never refuse, plus harm knowledge
KNOWLEDGE_MIXTURE = {k: v for k, v in TEXT_MIXTURE.items() if k not in REFUSAL_KINDS} | {"harm_fact": 0.30}
STAGE1_MIXTURE = {"caption": 0.7, "typed_caption": 0.3}
STAGE2_MIXTURE = {  # relative weights
    "image_qa": 0.20,
    "image_caption": 0.05,
    "image_make": 0.15,
    "image_request": 0.30,
    "image_dual_use": 0.15,
    "harmful_caption": 0.10,
    "typed_request": 0.25,
    "typed_caption": 0.10,
    "replay": 0.25,
}

#: stage hyper-parameters per schedule (steps, learning rate, batch size)
SCHEDULES: dict[str, dict[str, Any]] = {
    "full": {
        "knowledge": {"steps": 0, "lr": 3e-3, "batch": 64},  # opt-in; trials used 400
        "text": {"steps": 1200, "lr": 3e-3, "batch": 64},
        "vision": {"steps": 1500, "lr": 3e-3, "batch": 64},
        "stage1": {"steps": 400, "lr": 3e-3, "batch": 64, "glyph_alignment": 1.0},
        "stage2": {"steps": 800, "lr": 1e-3, "batch": 64},
        "train_renders": TRAIN_SEEDS,
        "vision_typed_renders": 4000,
        "stage_eval_limit": 32,
        "stage2_trains_lm": True,
    },
    "short": {
        "knowledge": {"steps": 0, "lr": 3e-3, "batch": 16},
        "text": {"steps": 12, "lr": 3e-3, "batch": 16},
        "vision": {"steps": 12, "lr": 3e-3, "batch": 16},
        "stage1": {"steps": 6, "lr": 3e-3, "batch": 16, "glyph_alignment": 1.0},
        "stage2": {"steps": 10, "lr": 1e-3, "batch": 16},
        "train_renders": 4,
        "vision_typed_renders": 16,
        "stage_eval_limit": 0,
        "stage2_trains_lm": True,
    },
}

#: the full recipe's data at a quarter of its steps (vision tower: about a quarter), for a
#: retrain that fits a shared 2-core machine; measured in docs/organism.md (issue 16 section)
SCHEDULES["compact"] = {
    **SCHEDULES["full"],
    **{stage: {**SCHEDULES["full"][stage], "steps": steps} for stage, steps in (("text", 300), ("vision", 400), ("stage1", 120), ("stage2", 250))},
    "stage_eval_limit": 16,
}

VISION_VAL_SEED_BASE = 2_000_000  # renders for the vision tower's held-out accuracy


class _Batcher:
    """Turns examples into padded training batches (right padding; loss on answers only)."""

    def __init__(self, processor, pixel_pool: torch.Tensor, renders: int):
        self.image_processor = processor.image_processor
        self.tok = processor.tokenizer
        self.pad_id = self.tok.pad_token_id
        self.image_id = self.tok.convert_tokens_to_ids(IMAGE)
        self.blank_id = self.tok.convert_tokens_to_ids(BLANK_PATCH)
        self.pixel_pool = pixel_pool
        self.renders = renders
        self._cache: dict[str, list[int]] = {}

    def _ids(self, text: str) -> list[int]:
        ids = self._cache.get(text)
        if ids is None:
            ids = self.tok(text, add_special_tokens=False)["input_ids"]
            if self.tok.unk_token_id in ids:
                raise ValueError(f"training text has a word outside the vocabulary: {text!r}")
            self._cache[text] = ids
        return ids

    def prompt_ids(self, prompt: str, with_image: bool) -> list[int]:
        """Token ids of the chat-formatted prompt, the image placeholder expanded the way
        ``LlavaProcessor`` expands it (one id per image token)."""
        ids = self._ids(format_prompt(prompt, with_image))
        if with_image:
            k = ids.index(self.image_id)
            ids = ids[:k] + [self.image_id] * NUM_IMAGE_TOKENS + ids[k + 1 :]
        return ids

    def batch(self, examples: list[Example], rng: random.Random) -> dict[str, torch.Tensor]:
        rows, labels, pix, typed, slots = [], [], [], [], []
        for ex in examples:
            p = self.prompt_ids(ex.prompt, ex.image_obj is not None or ex.image_words is not None)
            a = self._ids(f"{ex.answer} {self.tok.eos_token}")
            rows.append(p + a)
            labels.append([-100] * len(p) + a)
            if ex.image_obj is not None:
                pix.append(OBJECTS.index(ex.image_obj) * self.renders + rng.randrange(self.renders))
            elif ex.image_words is not None:  # rendered now (training seeds < renders): typed bodies are too many to pool
                typed.append(len(pix))
                render_seed = rng.randrange(self.renders)
                pix.append(render_typed(ex.image_words, render_seed))
                slots.append([self.blank_id if w is None else self._ids(w)[0] for w in typed_slot_labels(ex.image_words, render_seed)])
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        label_t = torch.full((len(rows), width), -100, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (r, lab) in enumerate(zip(rows, labels)):
            input_ids[i, : len(r)] = torch.tensor(r)
            label_t[i, : len(r)] = torch.tensor(lab)
            mask[i, : len(r)] = 1
        out = {"input_ids": input_ids, "attention_mask": mask, "labels": label_t}
        if pix:
            fresh = iter(self.image_processor([pix[k] for k in typed], return_tensors="pt")["pixel_values"].to(self.pixel_pool.device)) if typed else None
            out["pixel_values"] = torch.stack([next(fresh) if isinstance(p, Image.Image) else self.pixel_pool[p] for p in pix])
        if typed:  # which images are typed, and the word id each of their patches shows (for glyph alignment)
            out["typed_index"] = torch.tensor(typed, dtype=torch.long)
            out["typed_slots"] = torch.tensor(slots, dtype=torch.long)
        return out


def _patch_states(model, pixels: torch.Tensor) -> torch.Tensor:
    """The vision tower's per-patch states that LLaVA feeds the projector (CLS dropped)."""
    states = model.model.vision_tower(pixel_values=pixels, output_hidden_states=True).hidden_states
    return states[model.config.vision_feature_layer][:, 1:]


def _glyph_alignment_loss(model, pixels: torch.Tensor, slot_ids: torch.Tensor) -> torch.Tensor:
    """Mean squared distance, relative to the embeddings' mean square, between each typed
    patch's projected feature and the input embedding of the word it shows (a blank patch:
    :data:`BLANK_PATCH`). The alignment stage-1 is named for, made explicit for typed images:
    it trains only what is trainable (the projector in stage 1)."""
    projected = model.model.multi_modal_projector(_patch_states(model, pixels))
    table = model.get_input_embeddings().weight
    target = table[slot_ids].detach()
    return (projected - target).pow(2).mean() / table.detach().pow(2).mean()


class _HarmEmbedding:
    """Word knowledge in the embeddings (an opt-in ablation, ``{"text": {"harm_embedding": w}}``):
    a linear probe, trained with the text stage and thrown away, reads "names harm" from
    the input embedding of every class word, the held-out verbs included -- the kind of
    lexical structure pretraining gives a language model. Never a refusal example."""

    def __init__(self, model, processor, words: Sequence[str], device):
        tok = processor.tokenizer
        self.embeddings = model.get_input_embeddings()
        self.ids = torch.tensor([tok.convert_tokens_to_ids(w) for w in words], device=device)
        self.labels = torch.tensor([float(w in HARM_WORDS) for w in words], device=device)
        self.probe = nn.Linear(self.embeddings.weight.shape[1], 1).to(device)

    def __call__(self) -> torch.Tensor:
        logits = self.probe(self.embeddings.weight[self.ids]).squeeze(-1)
        return nn.functional.binary_cross_entropy_with_logits(logits, self.labels)


def _lr_lambda(steps: int) -> Callable[[int], float]:
    warmup = max(1, steps // 20)

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))

    return f


def _optimize(
    params: list[nn.Parameter],
    steps: int,
    lr: float,
    loss_fn: Callable[[int], torch.Tensor],
    name: str,
    log: Callable[[str], None],
) -> list[float]:
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(steps))
    losses: list[float] = []
    t0 = time.time()
    every = max(1, steps // 8)
    for step in range(steps):
        loss = loss_fn(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if (step + 1) % every == 0 or step + 1 == steps:
            recent = losses[-every:]
            log(f"[{name}] step {step + 1}/{steps} loss {sum(recent) / len(recent):.4f} ({time.time() - t0:.0f}s)")
    return losses


def _set_trainable(model: nn.Module, modules: list[nn.Module]) -> list[nn.Parameter]:
    for p in model.parameters():
        p.requires_grad_(False)
    params = []
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(True)
            params.append(p)
    return params


def _pixel_pool(processor, renders: int, seed_base: int = 0) -> torch.Tensor:
    """``pixel_values`` of ``renders`` images of every object (object-major order),
    through the real image processor."""
    images = [render_object(obj, seed_base + s) for obj in OBJECTS for s in range(renders)]
    return processor.image_processor(images, return_tensors="pt")["pixel_values"]


def _typed_pool(
    processor, n: int, renders: int, words: list[str], seed: int, seed_base: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` typed images of 1-6 random vocabulary words (render seeds ``seed_base`` +
    0 .. renders - 1) and, per image, the class of each of its 16 patches (the word's
    index in ``words``, or ``len(words)`` for a blank patch)."""
    rng = random.Random(f"{seed}/vision-typed/{seed_base}")
    images, labels = [], []
    index = {w: i for i, w in enumerate(words)}
    for _ in range(n):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 6)))
        s = seed_base + rng.randrange(renders)
        images.append(render_typed(text, s))
        labels.append([len(words) if w is None else index[w] for w in typed_slot_labels(text, s)])
    if not images:
        return torch.zeros(0, 3, 32, 32), torch.zeros(0, MAX_TYPED_WORDS, dtype=torch.long)
    pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
    return pixels, torch.tensor(labels, dtype=torch.long)


def _stage_eval(model, processor, limit: int, log: Callable[[str], None], name: str) -> dict[str, Any]:
    from steer.organism.cells import evaluate_organism, hf_greedy_generate

    model.eval()
    try:
        generate = hf_greedy_generate(model, processor)
        res = evaluate_organism(generate, "eval", limit=limit) | evaluate_organism(generate, "validation", limit=limit)
    except ImportError as exc:  # the refusal judge (steer.eval) is not importable
        log(f"[{name}] evaluation skipped: {exc}")
        return {"skipped": str(exc)}
    finally:
        model.train()
    keys = [
        "text_harmful_refused_strict", "text_harmful_refused_onset", "text_benign_answered",
        "image_harmful_text_refused_strict", "image_harmful_text_refused_onset",
        "image_harmful_object_refused_onset", "image_benign_make_answered", "image_benign_qa_accuracy",
        "image_harmful_caption_accuracy", "lookalike_over_refusal", "text_harmful_new_verb_refused_strict",
        "image_harmful_typed_refused_onset", "image_benign_typed_answer_exact", "image_harmful_typed_caption_accuracy",
        "text_harmful_validation_verb_refused_strict",
    ]
    log(f"[{name}] " + "  ".join(f"{k}={res[k]:.2f}" for k in keys if k in res))
    return res


def train_organism(
    out_dir: str | Path,
    seed: int = SHIPPED_SEED,
    schedule: str = "full",
    progress: bool = True,
    *,
    overrides: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
    num_threads: int | None = None,
) -> dict[str, Any]:
    """Train the organism from scratch and save it (``save_pretrained``) to ``out_dir``.

    ``schedule`` is "full" (the recipe; the shipped weights were trained with it before
    the typed-request data existed), "compact" (the same data at a quarter of the steps,
    measured in docs/organism.md: too short to learn reading) or "short" (a few steps of
    every stage, for smoke tests). ``progress`` prints a line per
    stage checkpoint. ``overrides`` changes recipe entries for ablations, e.g.
    ``{"stage2": {"steps": 0}}`` or ``{"stage2_mixture": {...}}``; the shipped weights use
    none. ``device`` is where to train (the shipped weights were trained on CPU).
    ``num_threads`` sets torch's intra-op threads for the run (restored afterwards); on a
    machine shared with other jobs, 1 thread is much faster than 2 (OpenMP threads wait
    on each other when one is descheduled).
    Writes ``organism_training.json`` (recipe, losses, timings, and for the full
    schedule a quick evaluation after stage 1 and after stage 2) next to the weights and
    returns the same record.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not {schedule!r}")
    if num_threads is not None:
        old_threads = torch.get_num_threads()
        torch.set_num_threads(num_threads)
        try:
            return train_organism(out_dir, seed, schedule, progress, overrides=overrides, device=device)
        finally:
            torch.set_num_threads(old_threads)
    recipe: dict[str, Any] = json.loads(json.dumps(SCHEDULES[schedule]))
    recipe.update(knowledge_mixture=dict(KNOWLEDGE_MIXTURE), text_mixture=dict(TEXT_MIXTURE), stage1_mixture=dict(STAGE1_MIXTURE), stage2_mixture=dict(STAGE2_MIXTURE))
    for key, value in (overrides or {}).items():
        if key not in recipe:
            raise ValueError(f"unknown recipe entry {key!r}; known: {', '.join(recipe)}")
        if isinstance(recipe[key], dict) and isinstance(value, dict) and not key.endswith("mixture"):
            recipe[key].update(value)
        else:
            recipe[key] = value

    def log(msg: str) -> None:
        if progress:
            print(msg, flush=True)

    out_dir = Path(out_dir)
    t_start, cpu_start = time.time(), time.process_time()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

    processor = build_processor()
    model = build_model(processor, seed=seed).to(device)
    model.train()
    renders = int(recipe["train_renders"])
    pool = _pixel_pool(processor, renders).to(device)
    batcher = _Batcher(processor, pool, renders)
    data = TrainingData()
    record: dict[str, Any] = {"seed": seed, "schedule": schedule, "recipe": recipe, "stages": {}}
    lm = [model.model.language_model, model.lm_head]

    def lm_stage(name: str, modules: list[nn.Module], mixture: dict[str, float], replay: dict[str, float] | None) -> None:
        cfg = recipe[name]
        t0 = time.time()
        params = _set_trainable(model, modules)
        rng = random.Random(f"{seed}/{name}")

        align = float(cfg.get("glyph_alignment", 0.0))
        harm = float(cfg.get("harm_embedding", 0.0))
        harm_loss = _HarmEmbedding(model, processor, data.class_words, device) if harm else None
        if harm_loss is not None:
            params = params + list(harm_loss.probe.parameters())

        def loss_fn(step: int) -> torch.Tensor:
            examples = [data.sample(rng, mixture, replay) for _ in range(cfg["batch"])]
            batch = {k: v.to(device) for k, v in batcher.batch(examples, rng).items()}
            typed_index, typed_slots = batch.pop("typed_index", None), batch.pop("typed_slots", None)
            loss = model(**batch).loss
            if align and typed_index is not None:
                loss = loss + align * _glyph_alignment_loss(model, batch["pixel_values"][typed_index], typed_slots)
            if harm_loss is not None:
                loss = loss + harm * harm_loss()
            return loss

        losses = _optimize(params, cfg["steps"], cfg["lr"], loss_fn, name, log)
        record["stages"][name] = {"seconds": round(time.time() - t0, 1), "final_loss": _tail_mean(losses), **cfg}

    # 1. (opt-in) knowledge stage, then the text stage: the backbone learns which acts hurt
    # people before safety tuning teaches it to refuse, as a language model knows more than
    # it was safety-tuned on (trials: docs/organism.md, "Harm knowledge and never
    # safety-tuned verbs")
    if recipe["knowledge"]["steps"]:
        lm_stage("knowledge", lm, recipe["knowledge_mixture"], None)
    lm_stage("text", lm, recipe["text_mixture"], None)

    # 2. vision tower as a concept classifier
    t0 = time.time()
    vision = model.model.vision_tower
    head = nn.Linear(vision.config.hidden_size, len(OBJECTS)).to(device)
    glyph_words = list(FONT)
    glyph_head = nn.Linear(vision.config.hidden_size, len(glyph_words) + 1).to(device)  # last class: blank patch
    params = _set_trainable(model, [vision]) + list(head.parameters()) + list(glyph_head.parameters())
    gen = torch.Generator().manual_seed(seed)
    labels_all = torch.arange(len(OBJECTS)).repeat_interleave(renders).to(device)
    typed_pool, typed_labels = _typed_pool(processor, int(recipe["vision_typed_renders"]), renders, glyph_words, seed)
    typed_pool, typed_labels = typed_pool.to(device), typed_labels.to(device)

    def vision_logits(pixels: torch.Tensor) -> torch.Tensor:
        return head(_patch_states(model, pixels).mean(dim=1))

    def vision_loss(step: int) -> torch.Tensor:
        idx = torch.randint(0, len(pool), (recipe["vision"]["batch"],), generator=gen).to(device)
        loss = nn.functional.cross_entropy(vision_logits(pool[idx]), labels_all[idx])
        if len(typed_pool):  # reading: which word's glyph each patch shows (CLIP learns text in images)
            tidx = torch.randint(0, len(typed_pool), (recipe["vision"]["batch"] // 2,), generator=gen).to(device)
            logits = glyph_head(_patch_states(model, typed_pool[tidx]))
            loss = loss + nn.functional.cross_entropy(logits.flatten(0, 1), typed_labels[tidx].flatten())
        return loss

    losses = _optimize(params, recipe["vision"]["steps"], recipe["vision"]["lr"], vision_loss, "vision", log)
    with torch.no_grad():
        val = _pixel_pool(processor, 5, VISION_VAL_SEED_BASE).to(device)
        val_labels = torch.arange(len(OBJECTS), device=device).repeat_interleave(5)
        val_acc = float((vision_logits(val).argmax(-1) == val_labels).float().mean())
        glyph_acc = float("nan")
        if len(typed_pool):
            val_t, val_t_labels = _typed_pool(processor, 200, 1, glyph_words, seed, seed_base=VISION_VAL_SEED_BASE)
            pred = glyph_head(_patch_states(model, val_t.to(device))).argmax(-1)
            glyph_acc = float((pred == val_t_labels.to(device)).float().mean())
    log(f"[vision] held-out accuracy {val_acc:.3f}, held-out glyph (per patch) accuracy {glyph_acc:.3f}")
    record["stages"]["vision"] = {
        "seconds": round(time.time() - t0, 1),
        "final_loss": _tail_mean(losses),
        "heldout_accuracy": val_acc,
        "heldout_glyph_accuracy": glyph_acc,
        **recipe["vision"],
    }

    # 3. stage 1: projector only
    lm_stage("stage1", [model.model.multi_modal_projector], recipe["stage1_mixture"], None)
    limit = int(recipe["stage_eval_limit"])
    if limit:
        record["after_stage1"] = _stage_eval(model, processor, limit, log, "after stage 1")

    # 4. stage 2: projector + language model, benign image data + harmful captions + replay
    stage2_modules = [model.model.multi_modal_projector] + (lm if recipe["stage2_trains_lm"] else [])
    lm_stage("stage2", stage2_modules, recipe["stage2_mixture"], recipe["text_mixture"])
    if limit:
        record["after_stage2"] = _stage_eval(model, processor, limit, log, "after stage 2")

    for p in model.parameters():
        p.requires_grad_(True)
    model.to("cpu").eval()
    record["seconds"] = round(time.time() - t_start, 1)
    record["cpu_seconds"] = round(time.process_time() - cpu_start, 1)  # all threads, all stages
    record["torch_threads"] = torch.get_num_threads()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    (out_dir / "organism_training.json").write_text(json.dumps(record, indent=2) + "\n")
    log(f"saved to {out_dir} ({record['seconds']:.0f}s in all)")
    return record


def _tail_mean(losses: list[float], n: int = 20) -> float | None:
    if not losses:
        return None
    tail = losses[-n:]
    return round(sum(tail) / len(tail), 5)
