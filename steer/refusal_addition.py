"""Gated refusal-direction addition (ActAdd / CAST style): push flagged rows toward refusal.

Content-free shifts cannot refuse harm that lives only in the picture: they carry no
information about what is shown. This method does not try to *remove* the image's push;
it *adds* the model's own text-only refusal direction

    r_l = mean_i h_l(harmful text_i) - mean_j h_l(benign text_j)      (last prompt token)

``alpha * r_l`` at the chosen layers -- but only on rows where a probe gate on the
multimodal prompt's hidden state fires (:class:`steer.gate.ProbeGate`, decided in the same
prefill by the hook engine), so benign rows stay bit-identical to the unsteered model.
The probe must have seen multimodal prompts whose harm is in the picture (harmful-object
renders, typed requests) and their benign counterparts; a text-only probe is at chance
on them (``../shared/organism-notes.md``).

``r_l`` is exactly what a ShiftDC vector file already holds: its unit safety direction
``v_l`` times the recorded gap norm ``|mean harmful - mean benign|`` (metadata
``safety.gap_norm``), so no new calibration is needed.
"""

from __future__ import annotations

from typing import Sequence

import torch

from steer.errors import SteerInputError
from steer.vectors import ShiftVectors


def refusal_directions(vectors: ShiftVectors, layers: Sequence[int] | None = None) -> dict[int, torch.Tensor]:
    """{layer: r_l} = gap norm x unit safety direction of a ShiftDC vector file (unnormalised mean difference)."""
    if vectors.directions is None:
        raise SteerInputError(
            "refusal addition needs the text-only refusal direction: give a vector file made with "
            "`steer calibrate --method shiftdc --safety-data ...`"
        )
    gaps = (vectors.metadata.get("safety") or {}).get("gap_norm") or {}
    chosen = vectors.layers if layers is None else list(layers)
    missing = [l for l in chosen if str(l) not in gaps]
    if missing:
        raise SteerInputError(
            f"the vector file records no refusal-gap norm for layers {missing} (metadata safety.gap_norm); "
            "recalibrate it with `steer calibrate --method shiftdc`"
        )
    return {l: float(gaps[str(l)]) * vectors.directions[l] for l in chosen}
