"""Layer schedules: how a multi-layer shift is spread over the chosen layers.

A CMRM shift ``s_l`` is measured on the natural residual stream, so it already contains
the shift that earlier layers passed up. Subtracting every ``s_l`` (``cumulative``, the
paper-literal reading of arXiv 2410.09047) removes the early shift again at each later
layer: with identity layers, the correction reaching layer l is ``sum_{k<=l} s_k``,
about twice ``s_l`` at the top. ``incremental`` subtracts ``s_l - s_prev`` (``s_prev`` =
the previous *chosen* layer's shift, 0 before the first), so exactly ``s_l`` has been
removed once layer l is done. ``single`` applies one layer's shift at that layer only.
Measured consequences on the model organism: ``../shared/organism-notes.md`` and
``docs/results.md``.
"""

from __future__ import annotations

from typing import Mapping

import torch

from steer.errors import SteerInputError

SCHEDULES = ("cumulative", "incremental", "single")


def check_schedule(schedule: str) -> str:
    """``schedule`` if it is a known schedule, else a one-line error naming the choices."""
    if schedule not in SCHEDULES:
        raise SteerInputError(f"unknown schedule {schedule!r}; choose one of: {', '.join(SCHEDULES)}")
    return schedule


def apply_schedule(vectors: Mapping[int, torch.Tensor], schedule: str) -> dict[int, torch.Tensor]:
    """Per-layer vectors to hand to the hook engine under ``schedule``."""
    layers = sorted(vectors)
    if schedule == "cumulative":
        return {layer: vectors[layer] for layer in layers}
    if schedule == "incremental":
        out: dict[int, torch.Tensor] = {}
        prev: torch.Tensor | None = None
        for layer in layers:
            vec = vectors[layer]
            out[layer] = vec if prev is None else vec - prev
            prev = vec
        return out
    if schedule == "single":
        if len(layers) != 1:
            raise SteerInputError(
                f"schedule 'single' steers one layer but {len(layers)} were chosen ({layers}); "
                "pick one with --layers N"
            )
        return {layers[0]: vectors[layers[0]]}
    raise SteerInputError(f"unknown schedule {schedule!r}; choose one of: {', '.join(SCHEDULES)}")
