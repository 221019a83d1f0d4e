"""``steer generate`` in one call: one prompt (and image) through a model, from a model path.

:meth:`steer.model.SteeredModel.generate` works on a loaded model. :func:`answer_prompt`
adds what the command does around it: every option is checked before the model loads,
a vector file's stored level (and, at sample level, its positions and schedule) apply
unless told otherwise, a probe file becomes a gate, and a variant spec
(``--variant``) runs through the same path ``steer eval`` / ``steer compare`` use -- which is
why it lives beside the variants in ``steer.eval`` rather than in the runtime.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from steer.artifact import check_artifact_path
from steer.errors import SteerInputError
from steer.layer_spec import parse_layers

Note = Optional[Callable[[str], None]]


@dataclass
class Answer:
    """The generated text and, when a gate decided, its score and decision."""

    text: str
    gate_score: Optional[float] = None
    steered: Optional[bool] = None


def answer_prompt(
    model: str,
    prompt: str,
    *,
    image: Optional[str | os.PathLike] = None,
    steer: Optional[str] = None,
    alpha: Optional[str | float] = None,
    layers: Optional[str] = None,
    positions: Optional[str] = None,
    schedule: Optional[str] = None,
    method: Optional[str] = None,
    level: Optional[str] = None,
    max_new_tokens: int = 64,
    device: Optional[str] = None,
    dtype: Optional[str] = None,
    processor_kwargs: Optional[str | dict] = None,
    device_map: Optional[str] = None,
    backend: str = "native",
    allow_other_weights: bool = False,
    allow_other_processor_kwargs: bool = False,
    gate: Optional[str | os.PathLike] = None,
    threshold: Optional[float] = None,
    projector: Optional[str | os.PathLike] = None,
    variant: Optional[str] = None,
    note: Note = None,
) -> Answer:
    """``steer generate``: the answer of ``model`` to ``prompt`` (with ``image``), optionally steered.

    ``steer``: a vector file or 'sample'; the other steering options default to the file's.
    ``layers`` uses the CLI syntax ('8-20'). ``gate``: a probe file (steer only when the
    prompt's risk score exceeds ``threshold``). ``variant``: a spec such as
    'caption-shiftdc:V' instead of the steering options. ``note`` gets the gate decision
    (and a variant's description)."""
    from steer.images import load_image
    from steer.positions import check_positions
    from steer.schedule import check_schedule
    from steer.steering import check_alpha
    from steer.stored_recipe import LEVELS

    if variant is not None:
        return _answer_variant(variant, model, prompt, image, max_new_tokens, device, dtype, device_map, backend,
                               allow_other_weights, note, {"--steer": steer, "--alpha": alpha, "--layers": layers,
                               "--positions": positions, "--schedule": schedule, "--method": method, "--gate": gate,
                               "--threshold": threshold, "--projector": projector, "--level": level})
    alpha_value = None if alpha is None else check_alpha(alpha)
    positions is None or check_positions(positions)  # every option is checked before the model loads
    schedule is None or check_schedule(schedule)
    parse_layers(layers)
    if level is not None and level not in LEVELS:
        raise SteerInputError(f"unknown level {level!r}; choose dataset or sample")
    if steer is not None and steer != "sample":
        from steer.vectors import ShiftVectors

        check_artifact_path(steer, "vectors")
        steer = ShiftVectors.load(steer)  # a bad file fails before the model loads; generate() applies its recipe
    img = load_image(image) if image is not None else None
    probe_gate = None
    if gate is not None:
        from steer.gate import ProbeGate

        probe_gate = ProbeGate.load(gate)
        if threshold is not None:
            probe_gate = probe_gate.with_threshold(threshold)
    sm = _load_model(model, device=device, dtype=dtype, device_map=device_map, projector=projector, backend=backend,
                     processor_kwargs=processor_kwargs, allow_other_processor_kwargs=allow_other_processor_kwargs)
    if img is not None and not sm.adapter.supports_images:
        raise SteerInputError(f"{model} is a text-only model ({sm.adapter.family}); drop --image")
    result = sm.generate(
        prompt, image=img, steer=steer, alpha=alpha_value, layers=parse_layers(layers, sm.adapter.num_layers),
        positions=positions, schedule=schedule, method=method, level=level, max_new_tokens=max_new_tokens,
        allow_other_weights=allow_other_weights, gate=probe_gate, threshold=threshold,
        return_details=probe_gate is not None,
    )
    if probe_gate is None:
        return Answer(result)
    _say(note, f"gate: layer {probe_gate.layer} score={result['gate_score']:.4f} threshold={probe_gate.threshold:g} -> "
               f"{'steered' if result['steered'] else 'not steered'}")
    return Answer(result["text"], result["gate_score"], result["steered"])


def _answer_variant(spec, model, prompt, image, max_new_tokens, device, dtype, device_map, backend,
                    allow_other_weights, note, given) -> Answer:
    """``variant=``: one prompt through a variant spec (the same path eval/compare use)."""
    from steer.eval.variants import build_variant
    from steer.images import load_image

    clash = [k for k, v in given.items() if v is not None]
    if clash:
        raise SteerInputError(f"--variant replaces {', '.join(clash)}: put them in the spec (e.g. @alpha=0.5)")
    img = load_image(image) if image is not None else None
    sm = _load_model(model, device=device, dtype=dtype, device_map=device_map, backend=backend)
    v = build_variant(spec, sm, model=model, device=device, dtype=dtype, device_map=device_map,
                      max_new_tokens=max_new_tokens, allow_other_weights=allow_other_weights)
    _say(note, v.describe())
    (row,) = v([prompt], [img])
    if row.get("gate_score") is None:
        return Answer(row["text"])
    if row.get("gate") == "follow":  # twin following: an image row's prompt is steered either way
        if img is None:
            said = "no image: not steered"
        else:
            said = "followed by its text twin" if row["steered"] else "not followed (prompt steered only)"
    else:
        said = "steered" if row["steered"] else "not steered"
    _say(note, f"gate score={row['gate_score']:.4f} -> {said}")
    return Answer(row["text"], row["gate_score"], row["steered"])


def _load_model(model: str, **options: Any):
    from steer.model import SteeredModel

    return SteeredModel.from_pretrained(model, **options)


def _say(note: Note, line: str) -> None:
    if note is not None:
        note(line)
