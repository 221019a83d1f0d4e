"""A query's own modality shift (sample-level CMRM, arXiv 2410.09047; ShiftDC's delta).

``delta_l = h_l(content-free image + prompt) - h_l(prompt alone)`` at the last prompt
token, per query and per layer.

Without waste (the default where the family allows it): everything up to and including
the content-free image's last image token is the same for every query, so its KV cache is
computed once per model (and null image, dtype, device, weights) and kept. Each call then
runs one forward over 2B short rows: the B image-view suffixes (the text after the image,
attending to the cached prefix) and the B text-only prompts (attending only to the cached
chat-template opening they share with the prefix, the rest masked out, with their own
positions), right-padded to the longest of these short rows -- a text-only row is never
padded to an image row's length. Same shifts as the padded path below up to
float rounding (rotary position embeddings depend on relative positions only).

The rows' token split (prefix | text after the image) comes from the processor on a
model's first call; when the plain tokenizer reproduces it (LLaVA, LLaVA-NeXT: nothing
follows the image tokens in the expansion), later calls tokenize the chat text only and
preprocess no image at all.

Memory: a cached prefix is one row of keys and values (for LLaVA-1.5-7B in bf16, about
600 tokens x 32 layers: 0.3 GB on the model's device); at most two per model are kept
(e.g. two null-image kinds), entries for replaced weights are dropped, and
:func:`clear_prefix_cache` frees them.

Where the prefix is not shareable -- a family whose positions depend on the image in a
way a cached text-only step does not reproduce (Qwen2-VL's M-RoPE, see
``ModelAdapter.image_prefix_shareable``), a chat template that puts text before the image
that differs per query, or an image with nothing after it -- :func:`padded_query_shifts`
runs both views as one left-padded batch of 2B rows, as before.
"""

from __future__ import annotations

import copy
import json
import weakref
from collections import OrderedDict
from typing import Any, Mapping, Sequence

import torch

from steer.adapters.base import ModelAdapter
from steer.capture import capture_pooled, run_reading_layers
from steer.errors import SteerInputError
from steer.steering import steering_applied

#: model -> {(null image, prefix ids, dtype, device, weights state): one-row KV cache}; a few per model
_PREFIXES: "weakref.WeakKeyDictionary[torch.nn.Module, OrderedDict[tuple, Any]]" = weakref.WeakKeyDictionary()
_PREFIXES_PER_MODEL = 2
#: model -> {tokens before the image placeholder: the processor's prefix}, for splits the
#: tokenizer alone reproduces (learned per model on a first prompt)
_TOKENIZER_SPLITS: "weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple, list[int]]]" = weakref.WeakKeyDictionary()


def query_shifts(
    adapter: ModelAdapter,
    prompts: Sequence[str],
    layers: Sequence[int],
    null_image: str = "blank",
) -> dict[int, torch.Tensor]:
    """{layer: (B, d) float32} shift of each prompt's hidden state caused by a content-free image.

    The shift depends on the prompt alone (the query's own image plays no part), so a batch
    measures each distinct prompt once: a benchmark that sends one fixed text with every
    image (FigStep, the organism's typed and picture-question cells) costs one row, not B.
    """
    _check_images(adapter)
    keys = [_prompt_key(p) for p in prompts]
    distinct = list(dict.fromkeys(keys))
    if len(distinct) < len(keys):
        first: dict[str, int] = {}
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        measured = query_shifts(adapter, [prompts[first[key]] for key in distinct], layers, null_image=null_image)
        row_of = {key: i for i, key in enumerate(distinct)}
        where = torch.tensor([row_of[key] for key in keys])
        return {layer: values[where] for layer, values in measured.items()}
    # under an applied Steering the cached path is wrong: its hooks would steer the prefix forward
    # (which then sits in the cache, steered, for every later call) and take the cached suffix step
    # for a step of that one-row prefix; the padded path measures under the steering as is
    if getattr(adapter, "image_prefix_shareable", True) and not steering_applied(adapter.model):
        shifts = cached_prefix_query_shifts(adapter, prompts, layers, null_image=null_image)
        if shifts is not None:
            return shifts
    return padded_query_shifts(adapter, prompts, layers, null_image=null_image)


def padded_query_shifts(
    adapter: ModelAdapter,
    prompts: Sequence[str],
    layers: Sequence[int],
    null_image: str = "blank",
) -> dict[int, torch.Tensor]:
    """The reference path: both views of every prompt as one left-padded batch of 2B rows
    (text-only rows padded to the image rows' length; the image prefix recomputed per call)."""
    _check_images(adapter)
    blank = adapter.content_free_image(null_image)
    n = len(prompts)
    inputs = adapter.build_inputs(list(prompts) * 2, [blank] * n + [None] * n)
    pooled = capture_pooled(adapter, inputs, layers, pool="last")
    return {layer: (h[:n] - h[n:]).float() for layer, h in pooled.items()}


@torch.inference_mode()
def cached_prefix_query_shifts(
    adapter: ModelAdapter,
    prompts: Sequence[str],
    layers: Sequence[int],
    null_image: str = "blank",
) -> dict[int, torch.Tensor] | None:
    """The shifts from the cached content-free-image prefix plus one short forward, or None
    when these prompts do not share one prefix ending at the image (use the padded path)."""
    _check_images(adapter)
    if not layers:
        raise SteerInputError("no layers to capture")
    prompts = list(prompts)
    n = len(prompts)
    split = _split_by_tokenizer(adapter, prompts)
    if split is None:
        split = _split_by_processor(adapter, prompts, null_image)
    if split is None:
        return None
    prefix_ids, suffixes = split
    texts = _unpadded(adapter.build_inputs(prompts, None))
    cache = _prefix_cache(adapter, null_image, prefix_ids, prompts[0])
    prefix_len = len(prefix_ids)
    # the chat template's opening tokens (before the image) are the same in every text-only
    # row: causal attention makes their keys and values those already cached at positions
    # 0..shared-1, so text rows attend to that part of the cache and skip those tokens
    shared = _shared_start(prefix_ids, texts)
    rows = suffixes + [ids[shared:] for ids in texts]
    width = max(len(r) for r in rows)
    device = adapter.device
    pad = int(adapter.tokenizer.pad_token_id or 0)
    ids = torch.full((2 * n, width), pad, dtype=torch.long, device=device)
    # attention over [prefix | row]: image views see the whole prefix, text-only views its shared start
    attention = torch.zeros(2 * n, prefix_len + width, dtype=torch.long, device=device)
    attention[:n, :prefix_len] = 1
    attention[n:, :shared] = 1
    positions = torch.zeros(2 * n, width, dtype=torch.long, device=device)
    last = torch.empty(2 * n, dtype=torch.long, device=device)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long, device=device)
        attention[i, prefix_len : prefix_len + len(row)] = 1
        start = prefix_len if i < n else shared
        positions[i] = torch.arange(start, start + width, device=device)
        last[i] = len(row) - 1
    past = copy.deepcopy(cache)
    past.batch_repeat_interleave(2 * n)
    pooled = _capture_at(
        adapter,
        dict(input_ids=ids, attention_mask=attention, position_ids=positions, cache=past, use_cache=True),
        layers,
        last,
    )
    return {layer: (h[:n] - h[n:]).float() for layer, h in pooled.items()}


def clear_prefix_cache(model: torch.nn.Module | None = None) -> None:
    """Forget the cached content-free-image prefixes (of one model, or of all)."""
    if model is None:
        _PREFIXES.clear()
        _TOKENIZER_SPLITS.clear()
    else:
        _PREFIXES.pop(model, None)
        _TOKENIZER_SPLITS.pop(model, None)


# ---------------------------------------------------------------------------- helpers
def _check_images(adapter: ModelAdapter) -> None:
    if not adapter.supports_images:
        raise SteerInputError(f"sample-level steering measures an image shift; {adapter.family} models take no images")


def _prompt_key(prompt: Any) -> str:
    """A hashable identity of a prompt string or chat conversation."""
    return prompt if isinstance(prompt, str) else "\x00" + json.dumps(prompt, sort_keys=True, default=str)


def _unpadded(inputs: Mapping[str, torch.Tensor]) -> list[list[int]]:
    """Each row's token ids without its (left) padding."""
    ids = inputs["input_ids"]
    mask = inputs.get("attention_mask")
    if mask is None:
        return [row.tolist() for row in ids]
    return [row[keep.bool()].tolist() for row, keep in zip(ids, mask)]


def _split_by_processor(
    adapter: ModelAdapter, prompts: list[str], null_image: str
) -> tuple[list[int], list[list[int]]] | None:
    """(shared prefix ending at the last image token, each row's tokens after it), from the
    processor's image rows; None when the rows do not share such a prefix. Also learns
    whether the plain tokenizer gives the same split (see :func:`_split_by_tokenizer`)."""
    n = len(prompts)
    image_ids = _unpadded(adapter.build_inputs(prompts, [adapter.content_free_image(null_image)] * n))
    anchor = _last_image_index(adapter, image_ids[0])
    if anchor is None:
        return None
    prefix_ids = image_ids[0][: anchor + 1]
    suffixes = [ids[anchor + 1 :] for ids in image_ids]
    if any(ids[: anchor + 1] != prefix_ids for ids in image_ids) or any(not s for s in suffixes):
        return None
    first = _tokenizer_split(adapter, prompts[:1])
    if first is not None:
        before, after = first[0]
        start = int(adapter.image_token_mask(torch.tensor([prefix_ids]))[0].nonzero().min())
        if before == prefix_ids[:start] and after == suffixes[0]:
            _TOKENIZER_SPLITS.setdefault(adapter.model, {})[tuple(before)] = list(prefix_ids)
    return prefix_ids, suffixes


def _split_by_tokenizer(adapter: ModelAdapter, prompts: list[str]) -> tuple[list[int], list[list[int]]] | None:
    """The same split without preprocessing B images: tokenize the chat text with its image
    placeholder. Text after a special token tokenizes the same whatever the token expands
    to, so once one prompt's split matched the processor's (learned in
    :func:`_split_by_processor`), every prompt with that text before the image matches."""
    known = _TOKENIZER_SPLITS.get(adapter.model)
    if not known:
        return None
    rows = _tokenizer_split(adapter, prompts)
    if rows is None or any(before != rows[0][0] for before, _ in rows) or any(not after for _, after in rows):
        return None
    prefix_ids = known.get(tuple(rows[0][0]))
    return None if prefix_ids is None else (prefix_ids, [after for _, after in rows])


def _tokenizer_split(adapter: ModelAdapter, prompts: list[str]) -> list[tuple[list[int], list[int]]] | None:
    """Per prompt: (tokens before, tokens after) the one run of image tokens in the tokenized
    chat text; None when a row has no such single run."""
    encoded = adapter.tokenizer([adapter.format_prompt(p, True) for p in prompts])["input_ids"]
    out = []
    for ids in encoded:
        where = adapter.image_token_mask(torch.tensor([ids]))[0].nonzero().flatten().tolist()
        if not where or where[-1] - where[0] + 1 != len(where):
            return None
        out.append((list(ids[: where[0]]), list(ids[where[-1] + 1 :])))
    return out


def _shared_start(prefix_ids: list[int], texts: list[list[int]]) -> int:
    """Leading tokens every text-only row shares with the image prefix, leaving each row one token at least."""
    shared = 0
    limit = min([len(prefix_ids)] + [len(t) - 1 for t in texts])
    while shared < limit and all(t[shared] == prefix_ids[shared] for t in texts):
        shared += 1
    return shared


def _last_image_index(adapter: ModelAdapter, row: list[int]) -> int | None:
    where = adapter.image_token_mask(torch.tensor([row], dtype=torch.long))[0].nonzero()
    return None if where.numel() == 0 else int(where.max())


def _weights_state(model: torch.nn.Module) -> tuple:
    """Changes whenever a weight is replaced or edited in place (e.g. a TGA projector swap)."""
    return tuple((p.data_ptr(), p._version) for p in model.parameters())


def _prefix_cache(adapter: ModelAdapter, null_image: str, prefix_ids: list[int], prompt: str) -> Any:
    """The one-row KV cache of the shared prefix, computed on first use and kept."""
    model = adapter.model
    param = next(model.parameters())
    key = (null_image, tuple(prefix_ids), param.dtype, str(param.device), _weights_state(model))
    store = _PREFIXES.setdefault(model, OrderedDict())
    if key in store:
        store.move_to_end(key)
        return store[key]
    one = adapter.build_inputs([prompt], [adapter.content_free_image(null_image)])  # one row: no padding
    full = one["input_ids"].shape[1]
    length = len(prefix_ids)
    extra = {
        k: (v[:, :length] if torch.is_tensor(v) and v.dim() == 2 and v.shape[1] == full else v)  # per-token inputs
        for k, v in one.items()
        if k not in ("input_ids", "attention_mask")
    }
    ids = one["input_ids"][:, :length]
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True, logits_to_keep=1, **extra)
    for stale in [k for k in store if k[-1] != key[-1]]:
        del store[stale]  # computed with weights that have changed since: never valid again
    store[key] = out.cache
    while len(store) > _PREFIXES_PER_MODEL:
        store.popitem(last=False)
    return out.cache


def _capture_at(
    adapter: ModelAdapter, inputs: Mapping[str, Any], layers: Sequence[int], index: torch.Tensor
) -> dict[int, torch.Tensor]:
    """{layer: (B, d) float64 CPU} outputs of ``decoder_layers[layer]`` at position ``index[b]`` of each row."""
    found: dict[int, torch.Tensor] = {}
    rows = torch.arange(index.shape[0], device=index.device)

    def read(layer: int, hidden: torch.Tensor) -> None:
        found[layer] = hidden[rows, index.to(hidden.device)].to(torch.float64).cpu()

    run_reading_layers(adapter, inputs, layers, read)
    return found
