"""Read pooled decoder-layer outputs in one forward pass (the measurement side of steering).

Used by sample-level steering at runtime and by calibration offline. Hooks read the raw
output of ``decoder_layers[i]`` (see the index convention in :mod:`steer.adapters.base`),
pool it per row, and the forward stops right after the deepest requested layer, so a
calibration over the first k layers costs k layers of compute, not all of them.

Pooling (``POOLS``), both correct under left padding:

``last``  the last prompt token (index -1 of every left-padded row)
``mean``  mean over the last ``tail_len[b]`` positions of row b -- the text tokens after
          the image, which an image view and its text-only twin share
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch

from steer.adapters.base import ModelAdapter
from steer.errors import SteerInputError

POOLS = ("last", "mean")


class _StopForward(Exception):
    """Raised by the deepest capture hook to skip the layers nobody reads."""


def text_tail_lengths(adapter: ModelAdapter, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Per row: number of non-padding tokens after the last image token (all tokens if no image)."""
    length = input_ids.shape[1]
    idx = torch.arange(length, device=input_ids.device)
    image = adapter.image_token_mask(input_ids)
    anchor = torch.where(image, idx, torch.full_like(idx, -1)).amax(dim=1)
    valid = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    after = idx.unsqueeze(0) > anchor.unsqueeze(1)
    return (after & valid).sum(dim=1)


@torch.inference_mode()
def capture_pooled(
    adapter: ModelAdapter,
    inputs: Mapping[str, torch.Tensor],
    layers: Sequence[int],
    pool: str = "last",
    tail_len: torch.Tensor | None = None,
) -> dict[int, torch.Tensor]:
    """{layer: (B, d) float64 CPU tensor} of pooled layer outputs for one batch."""
    if pool not in POOLS:
        raise SteerInputError(f"unknown pooling {pool!r}; choose one of: {', '.join(POOLS)}")
    if not layers:
        raise SteerInputError("no layers to capture")
    if pool == "mean" and tail_len is None:
        raise SteerInputError("mean pooling needs the text-tail length of each row")
    found: dict[int, torch.Tensor] = {}

    def read(layer: int, hidden: torch.Tensor) -> None:
        if pool == "last":
            pooled = hidden[:, -1, :]
        else:
            length = hidden.shape[1]
            pos = torch.arange(length, device=hidden.device)
            keep = pos.unsqueeze(0) >= (length - tail_len.to(hidden.device)).unsqueeze(1)
            weights = keep.to(torch.float64) / tail_len.to(hidden.device, torch.float64).clamp_min(1).unsqueeze(1)
            pooled = torch.einsum("bt,btd->bd", weights, hidden.to(torch.float64))
        found[layer] = pooled.to(torch.float64).cpu()

    run_reading_layers(adapter, {**inputs, "use_cache": False}, layers, read)
    return found


def run_reading_layers(
    adapter: ModelAdapter,
    call: Mapping[str, Any],
    layers: Sequence[int],
    read: Callable[[int, torch.Tensor], None],
) -> None:
    """``adapter.model(**call)`` with ``read(layer, output)`` on each wanted decoder layer's
    output, stopping right after the deepest one; the hooks are gone afterwards, whatever happens."""
    wanted = sorted(set(int(l) for l in layers))
    deepest = wanted[-1]

    def make_hook(layer: int):
        def hook(module, args, output):
            read(layer, output if torch.is_tensor(output) else output[0])
            if layer == deepest:
                raise _StopForward

        return hook

    handles = [adapter.decoder_layers[l].register_forward_hook(make_hook(l)) for l in wanted]
    try:
        adapter.model(**call)
    except _StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()
