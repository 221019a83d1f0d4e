"""TGA -- Text-Guided vision-language Alignment (arXiv 2410.12662): train the projector.

TGA changes how a VLM's multimodal projector is trained so that the LLM's hidden states
of image tokens sit where the hidden states of the image's caption would; the LLM's
text-trained safety then applies to images. The LLM and the vision tower stay frozen by
default (``train_llm=True`` unfreezes the LLM's decoder layers and final norm; the input
embeddings and the LM head stay frozen in every mode).

Loss per batch, for layers ``l`` in a band ``B``::

    loss = CE(answer | Retrieved Text: R. <image> question)
         + guide_weight * sum_{l in B} mean_batch[ -cos(I_l, C_l)
                                                   + log(1 + exp(-(cos(I_l, C_l) - cos(R_l, C_l)))) ]

* ``I_l``: mean over the image-token positions of layer l's raw output in the training
  forward (the multimodal prompt + answer) -- it depends on the projector, so the guide
  terms carry gradient into it;
* ``C_l`` / ``R_l``: mean over the (non-special) tokens of layer l's raw output for a
  text-only forward of the ground-truth caption / the retrieved text alone.

**Targets are detached** (computed under ``torch.no_grad``). With the LLM frozen they
depend on no trainable weight anyway; with ``train_llm`` detaching keeps the guide term
from pulling the *text* states toward the image states (which could let the LLM
collapse text representations instead of aligning images), so the guide moves only the
image side, as the method intends. ``cos(R_l, C_l)`` is therefore a constant margin: the
ranking term asks the image to be closer to its caption than the retrieved text is.

The layer band defaults to the logit-lens suggestion (:mod:`calibration.logit_lens`) on
``harmful_prompts`` (a few generic ones when not given). Layer indices are 0-based
decoder layers (layer i's output = HF ``hidden_states[i + 1]``).

The caller's model is never changed beyond the duration of training: a deep copy of the
projector is trained (swapped in while training, the original put back after, in a
``finally``); with ``train_llm`` the LLM's weights are snapshot and restored;
``requires_grad`` flags and train/eval mode are restored too. The result is a
:class:`steer.projector.ProjectorArtifact` (``result.save(path)``) that
``SteeredModel.from_pretrained(..., projector=PATH)`` swaps in.

Data (``data``): a ``.jsonl`` / ``.json`` file or a list of dicts /
:class:`TGAExample`: ``image`` (path, relative paths resolved against the file's
folder, or a PIL image; required), ``caption`` (required), ``question`` (default
``question=``), ``answer`` (default: the caption), ``retrieved`` (optional: precomputed
R), ``id`` (optional).

Checkpoints: ``checkpoint=PATH`` writes the trainable weights, the optimizer state and the
loss history every ``checkpoint_every`` steps (atomically); a rerun with the same settings
and ``resume=True`` continues from it and ends with the same weights as an uninterrupted
run (the batch order is a pure function of ``seed`` and the epoch).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from calibration.accumulator import load_checkpoint
from calibration.logit_lens import DEFAULT_HARMFUL_PROMPTS, logit_lens
from calibration.retrieval import ColumnRetriever, NearestCaptionRetriever, Retriever
from steer.adapters.base import ModelAdapter
from steer.atomic import atomic_path
from steer.data.user_files import read_json_rows
from steer.errors import SteerInputError
from steer.interrupts import interrupt_note
from steer.model import as_adapter
from steer.resume_key import parameters_digest
from steer.steering import normalize_layers
from steer.images import load_image
from steer.projector import ProjectorArtifact, language_model_module, projector_path
from steer.version import __version__

DEFAULT_PROMPT_FORMAT = "Retrieved Text: {R}. <image>\n{question}"
DEFAULT_QUESTION = "Describe the image briefly."
IMAGE_MARKER = "<image>"
CHECKPOINT_VERSION = 1
_MAX_STORED_LOSSES = 2000


# ====================================================================== data
@dataclass
class TGAExample:
    """One training image with its ground-truth caption, question and answer."""

    image: "str | Image.Image"
    caption: str
    question: str = DEFAULT_QUESTION
    answer: str | None = None
    retrieved: str | None = None
    id: str | None = None
    where: str = ""

    def __post_init__(self) -> None:
        if self.answer is None:
            self.answer = self.caption


def _example(item: Any, where: str, question: str, base: Path | None) -> TGAExample:
    if isinstance(item, TGAExample):
        return item if item.where else TGAExample(**{**item.__dict__, "where": where})
    if not isinstance(item, Mapping):
        raise SteerInputError(f"{where}: expected a row with 'image' and 'caption', got a {type(item).__name__}")
    missing = [k for k in ("image", "caption") if item.get(k) in (None, "")]
    if missing:
        found = ", ".join(repr(k) for k in item) or "none"
        raise SteerInputError(
            f"{where}: missing required column(s) {', '.join(repr(m) for m in missing)} (found: {found}); "
            "TGA rows need 'image' and 'caption' (optional: 'question', 'answer', 'retrieved', 'id')"
        )
    image = item["image"]
    if isinstance(image, Mapping) and "path" in image:
        image = image["path"]
    if isinstance(image, os.PathLike):
        image = str(image)
    if isinstance(image, str):
        path = Path(image).expanduser()
        if not path.is_absolute() and base is not None and not path.exists():
            path = base / path
        if not path.is_file():
            raise SteerInputError(f"{where}: image file not found: {path}")
        image = str(path)
    elif not isinstance(image, Image.Image):
        raise SteerInputError(f"{where}: 'image' must be a file path or a PIL image, got {type(image).__name__}")
    for key in ("caption", "question", "answer", "retrieved"):
        value = item.get(key)
        if value is not None and not isinstance(value, str):
            raise SteerInputError(f"{where}: {key!r} must be a string, got {type(value).__name__}")
    caption = item["caption"].strip()
    if not caption:
        raise SteerInputError(f"{where}: empty caption")
    return TGAExample(
        image=image,
        caption=caption,
        question=(item.get("question") or question),
        answer=item.get("answer") or None,
        retrieved=item.get("retrieved") or None,
        id=None if item.get("id") is None else str(item["id"]),
        where=where,
    )


def load_tga_data(source: Any, *, question: str = DEFAULT_QUESTION) -> list[TGAExample]:
    """TGA training rows from a ``.jsonl`` / ``.json`` file or a list (see the module doc)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise SteerInputError(f"TGA data file not found: {path}")
        rows = read_json_rows(path, "TGA data file")
        examples = [_example(r, f"{path} row {i + 1}", question, path.parent) for i, r in enumerate(rows)]
        name = str(path)
    elif isinstance(source, Sequence) and not isinstance(source, (str, bytes)):
        examples = [_example(r, f"TGA data row {i + 1}", question, None) for i, r in enumerate(source)]
        name = "the given data"
    else:
        raise SteerInputError(f"cannot read TGA data from a {type(source).__name__}")
    if not examples:
        raise SteerInputError(f"{name} holds no rows; TGA needs at least one (image, caption) row")
    return examples


def _image_bytes_digest(image: "str | Image.Image") -> bytes:
    if isinstance(image, Image.Image):
        h = hashlib.sha256(f"{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
        h.update(image.tobytes())
        return h.digest()
    h = hashlib.sha256()
    with open(image, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.digest()


def data_sha256(examples: Sequence[TGAExample], retrieved: Sequence[str]) -> str:
    """sha256 of the training rows in order: image bytes, caption, question, answer and the
    retrieved text actually used, each length-prefixed."""
    h = hashlib.sha256()
    for ex, r in zip(examples, retrieved):
        h.update(b"I" + _image_bytes_digest(ex.image))
        for text in (ex.caption, ex.question, ex.answer or "", r):
            b = text.encode("utf-8")
            h.update(len(b).to_bytes(8, "little") + b)
    return h.hexdigest()


# ====================================================================== prompts / batches
def _template_owner(adapter: ModelAdapter) -> Any:
    if getattr(adapter.processor, "chat_template", None):
        return adapter.processor
    if getattr(adapter.tokenizer, "chat_template", None):
        return adapter.tokenizer
    return None


def format_tga_prompt(adapter: ModelAdapter, prompt_format: str, retrieved: str, question: str) -> str:
    """The chat-formatted prompt text with the image placeholder where ``<image>`` is in
    ``prompt_format`` (``{R}`` = retrieved text, ``{question}`` = the question)."""
    if prompt_format.count(IMAGE_MARKER) != 1:
        raise SteerInputError(f"the prompt format must hold exactly one {IMAGE_MARKER}: {prompt_format!r}")
    retrieved, question = retrieved.replace(IMAGE_MARKER, " "), question.replace(IMAGE_MARKER, " ")
    try:
        filled = prompt_format.format(R=retrieved, question=question)
    except (KeyError, IndexError, ValueError) as err:
        raise SteerInputError(
            f"bad prompt format {prompt_format!r}: {err}; use the fields {{R}} and {{question}} and one {IMAGE_MARKER}"
        ) from None
    image_token = getattr(adapter.processor, "image_token", None) or IMAGE_MARKER
    text = filled.replace(IMAGE_MARKER, image_token)
    owner = _template_owner(adapter)
    if owner is None:
        return adapter.fallback_prompt(text, with_image=False)
    # The image token goes inside the one text part, exactly where the format puts it:
    # several hub templates (llava-hf) render image parts before all text parts, which
    # would move the image in front of the retrieved text.
    return owner.apply_chat_template(
        [{"role": "user", "content": [{"type": "text", "text": text}]}], add_generation_prompt=True, tokenize=False
    )


@dataclass
class _Batch:
    inputs: dict[str, torch.Tensor]  # input_ids, attention_mask, pixel_values, ...
    labels: torch.Tensor
    image_mask: torch.Tensor


def encode_batch(
    adapter: ModelAdapter,
    examples: Sequence[TGAExample],
    retrieved: Sequence[str],
    prompt_format: str = DEFAULT_PROMPT_FORMAT,
) -> _Batch:
    """Right-padded training inputs: prompt (with the image) + answer + EOS; labels are
    -100 everywhere but on the answer tokens and the EOS."""
    tok = adapter.tokenizer
    texts = [format_tga_prompt(adapter, prompt_format, r, ex.question) for ex, r in zip(examples, retrieved)]
    images = [load_image(ex.image) for ex in examples]
    old_side = getattr(tok, "padding_side", "right")
    tok.padding_side = "right"
    try:
        enc = adapter.processor_inputs(texts, images)
    finally:
        tok.padding_side = old_side
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    eos = tok.eos_token_id
    rows, label_rows = [], []
    for i, ex in enumerate(examples):
        prompt_ids = enc["input_ids"][i][enc["attention_mask"][i].bool()].tolist()
        # no leading space: sentencepiece tokenizers add their own word-start marker
        answer_ids = tok(ex.answer or ex.caption, add_special_tokens=False)["input_ids"]
        if eos is not None:
            answer_ids = answer_ids + [eos]
        rows.append(prompt_ids + answer_ids)
        label_rows.append([-100] * len(prompt_ids) + answer_ids)
    length = max(len(r) for r in rows)
    limit = getattr(adapter.text_config, "max_position_embeddings", None)
    if limit and length > limit:
        worst = max(range(len(rows)), key=lambda i: len(rows[i]))
        raise SteerInputError(
            f"{examples[worst].where or 'a row'}: prompt + answer is {len(rows[worst])} tokens, longer than the "
            f"model context of {limit}; shorten the caption, question or retrieved text"
        )
    input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), length), dtype=torch.long)
    labels = torch.full((len(rows), length), -100, dtype=torch.long)
    for i, (r, lab) in enumerate(zip(rows, label_rows)):
        input_ids[i, : len(r)] = torch.tensor(r)
        attention[i, : len(r)] = 1
        labels[i, : len(lab)] = torch.tensor(lab)
    device = adapter.device
    inputs: dict[str, torch.Tensor] = {"input_ids": input_ids.to(device), "attention_mask": attention.to(device)}
    for key, value in enc.items():
        if key in ("input_ids", "attention_mask") or not torch.is_tensor(value):
            continue
        if value.shape == enc["input_ids"].shape:
            # a per-token tensor of the processor (e.g. Qwen2-VL's mm_token_type_ids): re-lay it on the
            # rebuilt rows, prompt part as the processor made it, answer and padding as plain text (0)
            relaid = torch.zeros((len(rows), length), dtype=value.dtype)
            for i in range(len(rows)):
                kept = value[i][enc["attention_mask"][i].bool()]
                relaid[i, : kept.numel()] = kept
            value = relaid
        inputs[key] = value.to(device)  # pixel values stay as the processor made them, as in build_inputs: the model casts them to its vision tower's dtype
    mask = adapter.image_token_mask(inputs["input_ids"])
    if not bool(mask.any(dim=1).all()):
        raise SteerInputError("some training rows have no image tokens after processing; check the prompt format")
    return _Batch(inputs, labels.to(device), mask)


# ====================================================================== hidden states
class _Stop(Exception):
    pass


def _capture(layers: Sequence[int], decoder_layers: torch.nn.ModuleList, stop_after: bool):
    """Forward hooks that store each wanted layer's raw output (with its graph)."""
    found: dict[int, torch.Tensor] = {}
    deepest = max(layers)

    def make(layer: int):
        def hook(module, args, output):
            found[layer] = output if torch.is_tensor(output) else output[0]
            if stop_after and layer == deepest:
                raise _Stop

        return hook

    handles = [decoder_layers[l].register_forward_hook(make(l)) for l in sorted(set(layers))]
    return found, handles


def _masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(torch.float32).unsqueeze(-1)
    return (hidden.float() * m).sum(1) / m.sum(1).clamp_min(1.0)


@torch.no_grad()
def text_states(adapter: ModelAdapter, texts: Sequence[str], layers: Sequence[int]) -> dict[int, torch.Tensor]:
    """{layer: (B, d) float32} mean over the non-special tokens of each text, text only.

    The text is tokenized as is (no chat template), right-padded; the forward runs the
    language model alone and stops after the deepest requested layer.
    """
    tok = adapter.tokenizer
    old_side = getattr(tok, "padding_side", "right")
    tok.padding_side = "right"
    try:
        enc = tok(list(texts), padding=True, return_tensors="pt", return_special_tokens_mask=True)
    finally:
        tok.padding_side = old_side
    attention = enc["attention_mask"].bool()
    pool = attention & ~enc["special_tokens_mask"].bool()
    empty = ~pool.any(dim=1)
    pool[empty] = attention[empty]
    device = adapter.device
    found, handles = _capture(layers, adapter.decoder_layers, stop_after=True)
    try:
        language_model_module(adapter)(
            input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device), use_cache=False
        )
    except _Stop:
        pass
    finally:
        for h in handles:
            h.remove()
    return {l: _masked_mean(found[l], pool.to(found[l].device)) for l in layers}


def tga_loss(
    adapter: ModelAdapter,
    examples: Sequence[TGAExample],
    retrieved: Sequence[str],
    layers: Sequence[int],
    guide_weight: float,
    prompt_format: str = DEFAULT_PROMPT_FORMAT,
) -> tuple[torch.Tensor, dict[str, float]]:
    """(loss, parts) for one batch; ``loss`` has a graph into whatever requires grad.

    ``parts``: ``lm`` (answer cross-entropy), ``guide`` (the summed guide terms, before
    the weight), ``cos_ic`` / ``cos_rc`` (mean over the band and the batch), ``loss``.
    """
    layers = list(layers)
    batch = encode_batch(adapter, examples, retrieved, prompt_format)
    captions = text_states(adapter, [ex.caption for ex in examples], layers)
    retrieved_states = text_states(adapter, list(retrieved), layers)
    found, handles = _capture(layers, adapter.decoder_layers, stop_after=False)
    try:
        out = adapter.model(**batch.inputs, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    logits = out.logits[:, :-1].float()
    targets = batch.labels[:, 1:]
    lm = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
    guide = logits.new_zeros(())
    cos_ic_sum = cos_rc_sum = 0.0
    for l in layers:
        image_state = _masked_mean(found[l], batch.image_mask.to(found[l].device))
        c = captions[l].to(image_state.device)
        r = retrieved_states[l].to(image_state.device)
        cos_ic = F.cosine_similarity(image_state, c, dim=-1)
        cos_rc = F.cosine_similarity(r, c, dim=-1)
        term = -cos_ic + F.softplus(-(cos_ic - cos_rc))
        guide = guide + term.mean()
        cos_ic_sum += float(cos_ic.detach().mean())
        cos_rc_sum += float(cos_rc.mean())
    loss = lm + float(guide_weight) * guide
    parts = {
        "loss": float(loss.detach()),
        "lm": float(lm.detach()),
        "guide": float(guide.detach()),
        "cos_ic": cos_ic_sum / len(layers),
        "cos_rc": cos_rc_sum / len(layers),
    }
    return loss, parts


# ====================================================================== training
@dataclass
class TGAResult:
    """A trained projector artifact and its training record."""

    artifact: ProjectorArtifact
    history: list[dict[str, float]]
    layers: list[int]
    lens: dict[str, Any] | None = None
    resumed_from: int = 0

    @property
    def metadata(self) -> dict[str, Any]:
        return self.artifact.metadata

    @property
    def projector_state(self) -> dict[str, torch.Tensor]:
        return self.artifact.projector

    def save(self, path: str | os.PathLike) -> Path:
        return self.artifact.save(path)

    def plot_losses(self, path: str | os.PathLike, title: str | None = None) -> None:
        plot_loss_curves({"TGA": self.history}, path, title=title)


def plot_loss_curves(runs: Mapping[str, Sequence[Mapping[str, float]]], path: str | os.PathLike, title: str | None = None) -> None:
    """LM loss, guide loss and mean cos(I, C) per step, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for name, hist in runs.items():
        steps = [h["step"] for h in hist]
        for ax, key in zip(axes, ("lm", "guide", "cos_ic")):
            ax.plot(steps, [h[key] for h in hist], label=name, linewidth=1)
    for ax, label in zip(axes, ("LM cross-entropy", "guide terms (unweighted sum over band)", "mean cos(I_l, C_l)")):
        ax.set_xlabel("step")
        ax.set_title(label, fontsize=10)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    suffix = os.path.splitext(str(path))[1].lstrip(".") or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=suffix, dpi=110)
    plt.close(fig)


def _get_parent(root: torch.nn.Module, dotted: str) -> tuple[torch.nn.Module, str]:
    parts = dotted.split(".")
    obj = root
    for p in parts[:-1]:
        obj = getattr(obj, p)
    return obj, parts[-1]


def _llm_trainable(adapter: ModelAdapter) -> dict[str, torch.nn.Parameter]:
    """LLM parameters ``train_llm`` trains: all but the input embeddings (and the LM head,
    which sits outside the language-model module)."""
    lm = language_model_module(adapter)
    emb = adapter.model.get_input_embeddings()
    skip = {id(p) for p in emb.parameters()}
    return {n: p for n, p in lm.named_parameters() if id(p) not in skip}


def _batch_indices(n: int, batch_size: int, step: int, seed: int) -> list[int]:
    per_epoch = math.ceil(n / batch_size)
    epoch, b = divmod(step, per_epoch)
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=gen).tolist()
    return perm[b * batch_size : (b + 1) * batch_size]


def _thin(history: list[dict[str, float]]) -> dict[str, list[float]]:
    step = max(1, math.ceil(len(history) / _MAX_STORED_LOSSES))
    kept = history[::step]
    if history and kept[-1] is not history[-1]:
        kept.append(history[-1])
    return {key: [round(float(h[key]), 6) for h in kept] for key in ("step", "lm", "guide", "cos_ic", "loss")}


def train_tga_projector(
    model_or_sm: Any,
    data: Any,
    *,
    layers: Sequence[int] | None = None,
    retriever: Retriever | str | None = None,
    epochs: int = 1,
    steps: int | None = None,
    lr: float = 1e-3,
    guide_weight: float = 0.3,
    batch_size: int = 8,
    train_llm: bool = False,
    prompt_format: str = DEFAULT_PROMPT_FORMAT,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 50,
    resume: bool = True,
    progress: bool = True,
    seed: int = 0,
    question: str = DEFAULT_QUESTION,
    harmful_prompts: Sequence[str] | None = None,
    max_grad_norm: float | None = 1.0,
    callback: Callable[[dict[str, float]], None] | None = None,
) -> TGAResult:
    """Train a TGA projector on ``data`` and return it as an artifact (see the module doc).

    ``layers``: the guide band (None: the logit-lens suggestion on ``harmful_prompts``).
    ``retriever``: a :class:`Retriever`, ``"column"`` (the data's ``retrieved``
    column), ``"nearest"`` (nearest-caption retrieval over the data itself, the query
    image excluded) or None (``column`` when every row has ``retrieved``, else
    ``nearest``). ``steps`` overrides ``epochs`` (steps of ``batch_size`` rows).
    ``guide_weight`` 0.3 is the organism's measured default (the paper's loss is the
    unweighted sum, i.e. 1.0). ``callback(record)`` runs after every step with
    ``step``, ``lm``, ``guide``, ``cos_ic``, ``cos_rc``, ``loss``.
    """
    adapter = as_adapter(model_or_sm, "train")
    if not adapter.supports_images:
        raise SteerInputError(f"{adapter.family} models take no images: TGA trains a vision-language model's projector")
    if guide_weight < 0 or not math.isfinite(guide_weight):
        raise SteerInputError(f"guide_weight must be a finite number >= 0, got {guide_weight}")
    if lr <= 0 or not math.isfinite(lr):
        raise SteerInputError(f"lr must be > 0, got {lr}")
    if batch_size < 1:
        raise SteerInputError(f"batch_size must be >= 1, got {batch_size}")
    if steps is not None and steps < 1:
        raise SteerInputError(f"steps must be >= 1, got {steps}")
    if epochs < 1:
        raise SteerInputError(f"epochs must be >= 1, got {epochs}")
    format_tga_prompt(adapter, prompt_format, "r", "q")  # fail early on a bad format
    examples = load_tga_data(data, question=question)

    # ---- layer band
    lens_info: dict[str, Any] | None = None
    if layers is None:
        lens = logit_lens(adapter, list(harmful_prompts) if harmful_prompts else list(DEFAULT_HARMFUL_PROMPTS))
        band = lens.band
        lens_info = {"source": lens.band_source, "state_hits": lens.state_hits, "delta_hits": lens.delta_hits,
                     "tokens": lens.tokens, "top_k": lens.top_k, "n_prompts": lens.n_prompts}
    else:
        band = normalize_layers(layers, adapter.num_layers, "align (the TGA layer band is empty)")

    # ---- retrieval (once, with the frozen vision tower)
    if retriever is None:
        retriever = "column" if all(ex.retrieved for ex in examples) else "nearest"
    if isinstance(retriever, str):
        if retriever == "column":
            retriever = ColumnRetriever()
        elif retriever == "nearest":
            retriever = NearestCaptionRetriever(examples, adapter=adapter)
        else:
            raise SteerInputError(f"unknown retriever {retriever!r}; choose column or nearest")
    retrieved = retriever.retrieve(examples)
    if len(retrieved) != len(examples):
        raise SteerInputError(f"the retriever gave {len(retrieved)} texts for {len(examples)} rows")
    data_hash = data_sha256(examples, retrieved)

    per_epoch = math.ceil(len(examples) / batch_size)
    total = int(steps) if steps is not None else int(epochs) * per_epoch
    fingerprint = adapter.fingerprint()
    settings = {
        "data_sha256": data_hash,
        "layers": band,
        "lr": float(lr),
        "guide_weight": float(guide_weight),
        "batch_size": int(batch_size),
        "steps": total,
        "train_llm": bool(train_llm),
        "prompt_format": prompt_format,
        "seed": int(seed),
        "max_grad_norm": max_grad_norm,
        "model_weights": fingerprint["weights_sha256"],
        "model_params": parameters_digest(adapter.model),  # every layer and the dtype, not just embeddings
    }
    settings_key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()

    # ---- set up the trainable copy; remember everything we change
    model = adapter.model
    proj_path = projector_path(adapter)
    parent, attr = _get_parent(model, proj_path)
    original = getattr(parent, attr)
    trained = copy.deepcopy(original)
    flags = {id(p): p.requires_grad for p in model.parameters()}
    was_training = model.training
    llm_params = _llm_trainable(adapter) if train_llm else {}
    llm_snapshot = {n: p.detach().to("cpu", copy=True) for n, p in llm_params.items()}
    history: list[dict[str, float]] = []
    start = 0
    try:
        setattr(parent, attr, trained)
        for p in model.parameters():
            p.requires_grad_(False)
        for p in trained.parameters():
            p.requires_grad_(True)
        for p in llm_params.values():
            p.requires_grad_(True)
        model.eval()  # no dropout: deterministic, resumable
        named = {f"projector.{n}": p for n, p in trained.named_parameters()}
        named.update({f"llm.{n}": p for n, p in llm_params.items()})
        optimizer = torch.optim.AdamW(list(named.values()), lr=lr, weight_decay=0.0)

        ckpt = Path(checkpoint) if checkpoint is not None else None
        if ckpt is not None and ckpt.exists() and resume:
            state = load_checkpoint(ckpt)
            if not isinstance(state, dict):
                raise SteerInputError(f"checkpoint {ckpt} is not a steer TGA checkpoint; delete it to start over")
            if state.get("version") != CHECKPOINT_VERSION or state.get("settings_key") != settings_key:
                old = state.get("settings") or {}
                diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
                raise SteerInputError(
                    f"checkpoint {ckpt} was written with other settings (differ: {', '.join(diff) or 'version'}); "
                    "delete it, pass another --checkpoint, or start over with resume=False / --no-resume"
                )
            with torch.no_grad():
                for name, tensor in state["trainable"].items():
                    named[name].copy_(tensor.to(named[name]))
            optimizer.load_state_dict(state["optimizer"])
            history = list(state["history"])
            start = int(state["step"])

        def save_checkpoint(step: int) -> None:
            if ckpt is None:
                return
            payload = {
                "version": CHECKPOINT_VERSION,
                "settings_key": settings_key,
                "settings": settings,
                "step": step,
                "trainable": {n: p.detach().cpu().clone() for n, p in named.items()},
                "optimizer": optimizer.state_dict(),
                "history": history,
            }
            with atomic_path(ckpt) as tmp:
                torch.save(payload, tmp)

        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=start, desc="train-tga", unit="step", dynamic_ncols=True)
        def kept() -> str:
            if ckpt is not None and ckpt.exists():
                return f"checkpoint {ckpt} kept; rerun the same command to resume from it"
            return "nothing was written; rerun the command (--checkpoint-every N makes it resumable)"

        try:
            with interrupt_note(kept):
                for step in range(start, total):
                    idx = _batch_indices(len(examples), batch_size, step, seed)
                    rows = [examples[i] for i in idx]
                    texts = [retrieved[i] for i in idx]
                    optimizer.zero_grad(set_to_none=True)
                    loss, parts = tga_loss(adapter, rows, texts, band, guide_weight, prompt_format)
                    if not math.isfinite(parts["loss"]):
                        raise SteerInputError(f"the TGA loss became {parts['loss']} at step {step}; lower --lr")
                    loss.backward()
                    if max_grad_norm is not None:
                        torch.nn.utils.clip_grad_norm_(list(named.values()), max_grad_norm)
                    optimizer.step()
                    record = {"step": step, **parts}
                    history.append(record)
                    if callback is not None:
                        callback(record)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(lm=f"{parts['lm']:.3f}", guide=f"{parts['guide']:.3f}", cos=f"{parts['cos_ic']:.3f}")
                    done = step + 1
                    if ckpt is not None and checkpoint_every > 0 and (done % checkpoint_every == 0 or done == total):
                        save_checkpoint(done)
        finally:
            if bar is not None:
                bar.close()
        projector_state = {n: t.detach().cpu().clone() for n, t in trained.state_dict().items()}
        llm_state = {n: p.detach().cpu().clone() for n, p in llm_params.items()} if train_llm else None
    finally:
        setattr(parent, attr, original)
        with torch.no_grad():
            for n, p in llm_params.items():
                p.copy_(llm_snapshot[n].to(p))
        for p in model.parameters():
            p.requires_grad_(flags.get(id(p), p.requires_grad))
        model.train(was_training)

    tail = history[-min(len(history), 20) :] if history else []
    meta = {
        "kind": "tga_projector",
        "method": "tga",
        "model": fingerprint,
        "projector_class": type(original).__name__,
        "projector_path": proj_path,
        "layers": band,
        "layer_band": {"source": "given"} if lens_info is None else lens_info,
        "data_sha256": data_hash,
        "n_samples": len(examples),
        "steps": total,
        "epochs": None if steps is not None else int(epochs),
        "lr": float(lr),
        "guide_weight": float(guide_weight),
        "batch_size": int(batch_size),
        "train_llm": bool(train_llm),
        "prompt_format": prompt_format,
        "retriever": retriever.describe(),
        "targets": "detached text-only forwards, mean over non-special tokens",
        "losses": _thin(history),
        "final": {k: sum(h[k] for h in tail) / len(tail) for k in ("lm", "guide", "cos_ic")} if tail else {},
        "seed": int(seed),
        "max_grad_norm": max_grad_norm,
        "toolkit_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    artifact = ProjectorArtifact(projector_state, meta, llm_state)
    return TGAResult(artifact, history, band, lens_info, resumed_from=start)
