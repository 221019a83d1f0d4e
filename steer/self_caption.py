"""Self-caption anchored shift: a modality shift whose text twin carries what the image shows.

Sample-level CMRM compares ``h(image + q)`` with ``h(q)``: the twin knows nothing of the
picture, so removing the shift also removes what the picture shows (picture questions go
blind), and when the harm is *in* the picture ("how do i make this ?" under a bomb) the
twin is a harmless question, so the correction carries no refusal.

Here the twin is the query with the model's own description of its image in words::

    caption_i = greedy answer to  <image_i> adapter.caption_prompt
    twin_i    = adapter.described_prompt(caption_i, q_i)       # caption, then the query
    delta_l   = h_l(image_i + q_i) - h_l(twin_i)                # last prompt token

Where the content is harmful, the twin is a request the text-only model refuses, so
subtracting ``delta_l`` (whole: CMRM; or only its component along the safety direction:
ShiftDC) moves the multimodal state to the state the model has *as text* for the same
content. Rows without an image get a zero shift (their twin is themselves).

Cost, per batch, before the steered generation: one batched greedy caption generation
over the image rows, and one forward over 2x the image rows (image views and twins in one
left-padded batch). An empty caption reduces the twin to the query alone, i.e. to
sample-level CMRM's (:func:`steer.sample_shift.query_shifts`).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from steer.adapters.base import ModelAdapter
from steer.capture import capture_pooled
from steer.errors import SteerInputError


def _image_rows(images: Sequence[Any]) -> list[int]:
    return [i for i, im in enumerate(images) if im is not None]


@torch.inference_mode()
def self_captions(
    adapter: ModelAdapter,
    images: Sequence[Any],
    *,
    prompt: str | None = None,
    max_new_tokens: int | None = None,
) -> list[str]:
    """The model's own greedy description of each image, in one batch ("" where the image is None).

    ``prompt`` defaults to the adapter's :attr:`~steer.adapters.base.ModelAdapter.caption_prompt`.
    :class:`steer.SteeredModel` calls it before applying its own steering, so the
    caption is what the unsteered model sees; under a steering the caller applied around that
    call (``steering_applied(model)``), it is what that steered model sees, as sample-level
    shifts are measured under it too.
    """
    if not adapter.supports_images:
        raise SteerInputError(f"self-captions describe images; {adapter.family} models take no images")
    question = adapter.caption_prompt if prompt is None else str(prompt)
    if not question.strip():
        raise SteerInputError("the caption prompt is empty; give the question that asks what the image shows")
    budget = adapter.caption_max_new_tokens if max_new_tokens is None else int(max_new_tokens)
    if budget < 1:
        raise SteerInputError(f"caption max_new_tokens must be >= 1, got {budget}")
    rows = _image_rows(images)
    out = [""] * len(images)
    if not rows:
        return out
    inputs = adapter.build_inputs([question] * len(rows), [images[i] for i in rows])
    generated = adapter.model.generate(**inputs, max_new_tokens=budget, do_sample=False)
    for i, text in zip(rows, adapter.decode_answers(generated, inputs["input_ids"].shape[1])):
        out[i] = " ".join(text.split())  # one line: the twin puts the caption before the query
    return out


def described_prompts(adapter: ModelAdapter, prompts: Sequence[str], captions: Sequence[str]) -> list[str]:
    """Each query's text twin (caption, then query)."""
    if len(prompts) != len(captions):
        raise SteerInputError(f"got {len(prompts)} prompts but {len(captions)} captions")
    return [adapter.described_prompt(c, p) for p, c in zip(prompts, captions)]


def anchored_shifts(
    adapter: ModelAdapter,
    prompts: Sequence[str],
    images: Sequence[Any],
    layers: Sequence[int],
    twin_sets: Sequence[Sequence[str]],
) -> list[dict[int, torch.Tensor]]:
    """Per twin set, {layer: (B, d) float32} ``h_l(image + q) - h_l(twin)`` at the last prompt token.

    Image rows run as one left-padded batch (image views first, then each set's twins, in
    order); rows without an image get zeros.
    """
    if len(images) != len(prompts):
        raise SteerInputError(f"got {len(prompts)} prompts but {len(images)} images")
    rows = _image_rows(images)
    n = len(rows)
    outs = [{int(l): torch.zeros(len(prompts), adapter.hidden_size) for l in layers} for _ in twin_sets]
    if not rows:
        return outs
    texts = [prompts[i] for i in rows] + [twins[i] for twins in twin_sets for i in rows]
    views = [images[i] for i in rows] + [None] * (n * len(twin_sets))
    pooled = capture_pooled(adapter, adapter.build_inputs(texts, views), list(outs[0]), pool="last")
    index = torch.tensor(rows)
    for layer, h in pooled.items():
        for k, out in enumerate(outs):
            out[layer][index] = (h[:n] - h[n * (k + 1) : n * (k + 2)]).float()
    return outs


def self_caption_shifts(
    adapter: ModelAdapter,
    prompts: Sequence[str],
    images: Sequence[Any],
    layers: Sequence[int],
    captions: Sequence[str],
) -> dict[int, torch.Tensor]:
    """{layer: (B, d) float32} ``h_l(image + q) - h_l(caption + q)`` at the last prompt token (zeros
    for rows without an image); one forward over 2x the image rows."""
    return anchored_shifts(adapter, prompts, images, layers, [described_prompts(adapter, prompts, captions)])[0]


def most_refusing_along(
    shift_sets: Sequence[Mapping[int, torch.Tensor]], directions: Mapping[int, torch.Tensor]
) -> dict[int, torch.Tensor]:
    """ShiftDC against the more-refusing of several text twins, per row and layer.

    The image pushes a request's state away from refusal, against the safety direction
    ``v``; the twin whose state lies furthest along ``v`` gives the most negative
    ``delta . v``. Removing that component restores whichever text reading the text-only
    model would refuse (the query with the picture's caption, or the query alone).
    """
    out = {}
    for layer in shift_sets[0]:
        v = directions[layer].to(shift_sets[0][layer])
        coef = torch.stack([s[layer] @ v for s in shift_sets]).amin(dim=0)
        out[layer] = coef.unsqueeze(-1) * v
    return out

