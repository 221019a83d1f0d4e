"""A query's own modality shift (sample-level CMRM, arXiv 2410.09047; ShiftDC's delta).

``delta_l = h_l(content-free image + prompt) - h_l(prompt alone)`` at the last prompt
token, per query and per layer. Both views run as one left-padded batch of 2B rows:
one extra forward over roughly twice the batch's prompt tokens, before generation.
"""

from __future__ import annotations

from typing import Sequence

import torch

from steer.adapters.base import ModelAdapter
from steer.capture import capture_pooled
from steer.errors import SteerInputError


def query_shifts(
    adapter: ModelAdapter,
    prompts: Sequence[str],
    layers: Sequence[int],
    null_image: str = "blank",
) -> dict[int, torch.Tensor]:
    """{layer: (B, d) float32} shift of each prompt's hidden state caused by a content-free image."""
    if not adapter.supports_images:
        raise SteerInputError(f"sample-level steering measures an image shift; {adapter.family} models take no images")
    blank = adapter.content_free_image(null_image)
    n = len(prompts)
    inputs = adapter.build_inputs(list(prompts) * 2, [blank] * n + [None] * n)
    pooled = capture_pooled(adapter, inputs, layers, pool="last")
    return {layer: (h[:n] - h[n:]).float() for layer, h in pooled.items()}
