"""Steering vectors for any behaviour, from contrastive (positive, negative) prompt pairs.

Each pair is two prompts that differ in the behaviour only ("answer honestly: ..." /
"answer deceptively: ..."); strings or chat conversations (:mod:`steer.chat`), with an
optional picture shared by both sides. Both sides are formatted with the model's chat
template and run as one batch; per layer ``l`` the pooled hidden states give
``d_l,i = h_l(positive_i) - h_l(negative_i)`` (``pool="last"``: the last prompt token,
where the model is about to answer; ``"mean"``: the mean over the prompt's text tokens).

Methods (``CONTRAST_METHODS``):

``mean_diff``  the mean difference ``m_l = mean_i d_l,i`` (float64 sums).
``pca``        the first principal direction ``u_l`` of the differences, *uncentred* (the
               top right singular vector of the n x d matrix of ``d_l,i``): centring would
               subtract ``m_l``, the very signal consistent pairs share, leaving only their
               disagreement. ``u_l`` is oriented so that ``m_l . u_l > 0`` (positives project
               higher: the sign is fixed by the data, never by the solver) and scaled to the
               mean difference's component on it, ``(m_l . u_l) u_l``, so ``alpha`` means the
               same for both methods. Needs at least two pairs.

Orientation: like every `steer` vector file, the stored vector is what the engine
*subtracts* at ``alpha = 1``, so a contrast file stores ``-m_l`` (resp. ``-(m_l . u_l) u_l``):
``alpha > 0`` moves the model toward the positive side, ``alpha < 0`` toward the negative.

Defaults stored in the file: ``positions="text"`` (every text token, generated ones
included; image tokens are left alone since the vector was read at text positions) and
``schedule="incremental"`` (the differences are measured on the residual stream, so each
layer's includes what earlier layers passed up; see :mod:`steer.schedule`).

Per-layer statistics (``stats``): ``norm``, ``agreement`` (share of pairs whose own
difference points the same way as the vector: 1.0 = every pair agrees), ``cos_pc1_mean``
(cosine between the principal direction and the mean difference) and ``pc1_share`` (share
of the differences' second moment along ``u_l``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch

from calibration.cmrm import _image_digest, describe_source
from calibration.recipes import check_settings
from steer.capture import POOLS, capture_pooled, text_tail_lengths
from steer.chat import Prompt, check_conversation, is_conversation
from steer.errors import SteerInputError
from steer.model import as_adapter
from steer.steering import normalize_layers
from steer.vectors import ShiftVectors

CONTRAST_METHODS = ("mean_diff", "pca")
ORIENTATION = "stored vector = mean(negative) - mean(positive) (pca: its component on the principal direction); alpha > 0 steers toward the positive prompts"


@dataclass(frozen=True)
class ContrastPair:
    """Two prompts that differ in one behaviour; ``image`` (optional) goes with both."""

    positive: Prompt
    negative: Prompt
    image: Any = None
    where: str = ""


def _prompt(value: Any, where: str, side: str) -> Prompt:
    if isinstance(value, str):
        if not value.strip():
            raise SteerInputError(f"{where}: '{side}' is empty")
        return value
    if is_conversation(value):
        return check_conversation(value)
    raise SteerInputError(f"{where}: '{side}' must be a prompt string or a chat message list, got {type(value).__name__}")


def _pair(item: Any, where: str) -> ContrastPair:
    if isinstance(item, ContrastPair):
        return ContrastPair(_prompt(item.positive, where, "positive"), _prompt(item.negative, where, "negative"), item.image, where)
    if isinstance(item, Mapping):
        missing = [k for k in ("positive", "negative") if k not in item]
        if missing:
            found = ", ".join(repr(k) for k in item) or "none"
            raise SteerInputError(
                f"{where}: missing {' and '.join(repr(m) for m in missing)} (found: {found}); a pair needs "
                "'positive' and 'negative' prompts (and optionally 'image')"
            )
        image = item.get("image") or None
        return ContrastPair(_prompt(item["positive"], where, "positive"), _prompt(item["negative"], where, "negative"), image, where)
    if isinstance(item, (tuple, list)) and len(item) in (2, 3) and not is_conversation(item):
        return _pair(dict(zip(("positive", "negative", "image"), item)), where)
    raise SteerInputError(f"{where}: cannot read a {type(item).__name__} as a pair; give (positive, negative) or a dict")


def load_pairs(source: Any) -> list[ContrastPair]:
    """Pairs from a ``.jsonl`` / ``.json`` file (rows with ``positive``, ``negative``, optional
    ``image`` relative to the file) or an in-memory list of pairs, tuples or dicts."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise SteerInputError(f"pairs file not found: {path} (give a .jsonl with 'positive' and 'negative' fields)")
        rows = _read_rows(path)
        pairs = [_pair(row, f"{path} row {i + 1}") for i, row in enumerate(rows)]
        pairs = [
            ContrastPair(p.positive, p.negative, _relative(p.image, path.parent), p.where) if isinstance(p.image, str) else p
            for p in pairs
        ]
        where = str(path)
    elif isinstance(source, Iterable) and not isinstance(source, (bytes, Mapping)):
        pairs = [_pair(item, f"pair {i + 1}") for i, item in enumerate(source)]
        where = "the given pairs"
    else:
        raise SteerInputError(f"cannot read contrast pairs from a {type(source).__name__}")
    if not pairs:
        raise SteerInputError(f"{where} holds no pairs; give at least one (positive, negative) pair")
    return pairs


def _read_rows(path: Path) -> list[Any]:
    if path.suffix.lower() not in (".jsonl", ".json"):
        raise SteerInputError(f"{path}: pairs are read from .jsonl or .json files, not {path.suffix or 'no suffix'}")
    from steer.data.user_files import read_json_rows

    return read_json_rows(path, what="pairs file")


def _relative(image: str, base: Path) -> str:
    path = Path(image).expanduser()
    return str(path if path.is_absolute() or path.exists() else base / path)


def pairs_sha256(pairs: Sequence[ContrastPair]) -> str:
    """sha256 of the pairs in order (prompts as canonical JSON, images by their bytes)."""
    h = hashlib.sha256()
    for p in pairs:
        for side in (p.positive, p.negative):
            data = json.dumps(side, sort_keys=True, ensure_ascii=False).encode("utf-8")
            h.update(len(data).to_bytes(8, "little") + data)
        h.update(b"N" if p.image is None else b"I" + _image_digest(p.image, p.where or "pair"))
    return h.hexdigest()


def orient_pc1(diffs: torch.Tensor, mean: torch.Tensor) -> tuple[torch.Tensor, float]:
    """(unit first principal direction of the uncentred ``diffs`` with ``mean . u >= 0``, its share).

    When ``mean . u`` is exactly 0 the sign falls back to making the largest-magnitude
    component positive, so the result never depends on the solver.
    """
    _, sing, vh = torch.linalg.svd(diffs, full_matrices=False)
    u = vh[0]
    dot = float(mean @ u)
    if dot < 0 or (dot == 0 and float(u[u.abs().argmax()]) < 0):
        u = -u
    total = float((sing**2).sum())
    return u, (float(sing[0] ** 2) / total if total > 0 else 0.0)


def contrast_vectors(diffs: Mapping[int, torch.Tensor], method: str) -> tuple[dict[int, torch.Tensor], dict[str, dict]]:
    """{layer: vector to subtract} and per-layer stats from per-pair differences ``(n, d)`` float64."""
    vectors, stats = {}, {}
    for layer, d in diffs.items():
        mean = d.mean(dim=0)
        u, share = orient_pc1(d, mean)
        toward = mean if method == "mean_diff" else (mean @ u) * u
        norm = float(toward.norm())
        agree = float(((d @ toward) > 0).double().mean()) if norm > 0 else 0.0
        vectors[layer] = (-toward).float()
        stats[str(layer)] = {
            "norm": norm,
            "agreement": agree,
            "cos_pc1_mean": float(mean @ u) / max(float(mean.norm()), 1e-30),
            "pc1_share": share,
            "mean_diff_norm": float(mean.norm()),
        }
    return vectors, stats


def train_vector(
    model: Any,
    pairs: Any,
    layers: Sequence[int] | None = None,
    method: str = "mean_diff",
    *,
    pool: str = "last",
    batch_size: int = 8,
    positions: str = "text",
    schedule: str = "incremental",
    default_alpha: float = 1.0,
    name: str | None = None,
) -> ShiftVectors:
    """A vector file for the behaviour that separates ``pairs``' positive prompts from their negatives.

    ``model``: a SteeredModel, adapter, (model, processor) pair or model path. ``pairs``:
    anything :func:`load_pairs` reads. ``layers``: decoder layers (None = all). See the
    module docstring for the methods, the orientation and the stored defaults; ``name``
    labels the vectors in arithmetic expressions (``0.5 * honesty + ...``).
    """
    start = time.perf_counter()
    if method not in CONTRAST_METHODS:
        raise SteerInputError(f"unknown contrast method {method!r}; choose one of: {', '.join(CONTRAST_METHODS)}")
    if pool not in POOLS:
        raise SteerInputError(f"unknown pooling {pool!r}; choose one of: {', '.join(POOLS)}")
    if batch_size < 1:
        raise SteerInputError(f"batch_size must be >= 1, got {batch_size}")
    default_alpha = check_settings(positions, schedule, default_alpha)
    items = load_pairs(pairs)
    if method == "pca" and len(items) < 2:
        raise SteerInputError("method 'pca' needs at least two pairs (one pair has no principal direction); use mean_diff")
    adapter = as_adapter(model, "train a vector on")
    chosen = list(range(adapter.num_layers)) if layers is None else normalize_layers(layers, adapter.num_layers, "train")
    if schedule == "single" and len(chosen) != 1:
        raise SteerInputError(f"schedule 'single' steers one layer, but {len(chosen)} layers are trained; give one layer")
    if any(p.image is not None for p in items) and not adapter.supports_images:
        raise SteerInputError(f"{adapter.family} models take no images; drop the pairs' 'image' field")
    digest = pairs_sha256(items)
    parts: dict[int, list[torch.Tensor]] = {layer: [] for layer in chosen}
    from steer.images import load_image

    for begin in range(0, len(items), batch_size):
        batch = items[begin : begin + batch_size]
        images = [None if p.image is None else load_image(p.image) for p in batch] * 2
        inputs = adapter.build_inputs([p.positive for p in batch] + [p.negative for p in batch], images)
        tail = text_tail_lengths(adapter, inputs["input_ids"], inputs.get("attention_mask")) if pool == "mean" else None
        pooled = capture_pooled(adapter, inputs, chosen, pool=pool, tail_len=tail)
        n = len(batch)
        for layer, h in pooled.items():
            parts[layer].append(h[:n] - h[n:])
    diffs = {layer: torch.cat(chunks) for layer, chunks in parts.items()}
    vectors, stats = contrast_vectors(diffs, method)
    meta = {
        "method": "contrast",
        "model": adapter.fingerprint(),
        "pooling": pool,
        "positions": positions,
        "schedule": schedule,
        "default_alpha": float(default_alpha),
        "n_samples": len(items),
        "data_sha256": digest,
        "stats": stats,
        "contrast": {
            "method": method,
            "n_pairs": len(items),
            "data": describe_source(pairs),
            "orientation": ORIENTATION,
            "batch_size": int(batch_size),
            "accumulation": "float64",
            "elapsed_s": round(time.perf_counter() - start, 3),
        },
    }
    if name:
        meta["name"] = str(name)
    return ShiftVectors(vectors, None, meta)
