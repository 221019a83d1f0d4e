"""ShiftDC (arXiv 2502.13095): a per-layer text-only safety direction next to the CMRM shift.

``v_l = normalize(mean_i h_l(harmful_i) - mean_j h_l(benign_j))`` with ``h_l`` the output of
decoder layer ``l`` at the last prompt token of the *text-only* prompt (any image in the
safety data is ignored: the direction lives in the model's text space, where its refusal
behaviour was learned). Streamed in float64 like the shift; images never load.

At inference ShiftDC removes only the shift's component along ``v_l``:
``h_l <- h_l - alpha (delta_l . v_l) v_l`` (:meth:`steer.vectors.ShiftVectors.to_subtract`).
:func:`calibrate_shiftdc` computes the CMRM shift and the directions in one streamed run
(one checkpoint, one data-parallel all-reduce) and returns one :class:`ShiftVectors` with
``method="shiftdc"``.

Safety data (``safety_data`` / CLI ``--safety-data``): ``"harmful.jsonl,benign.jsonl"``
(files, folders or shared set names such as ``advbench,harmless-alpaca``), a
``(harmful, benign)`` pair of anything :func:`calibration.cmrm.load_anchors` reads, or one
labelled source whose ``label`` column splits it into harmful and benign rows.
"""

from __future__ import annotations

import os
import time
from typing import Any, Sequence

import torch

from calibration.accumulator import ShiftAccumulator
from calibration.cmrm import (
    Anchor,
    check_recipe,
    Phase,
    Runner,
    base_signature,
    data_sha256,
    describe_source,
    load_anchors,
    preflight_lengths,
    prepare_shift,
    reduce_shifts,
    shift_metadata,
    shift_phase,
    subsample,
)
from steer.errors import SteerInputError
from steer.model import as_adapter
from steer.steering import normalize_layers
from steer.vectors import ShiftVectors


def load_safety_sets(safety_data: Any) -> tuple[list[Anchor], list[Anchor], str, str]:
    """(harmful anchors, benign anchors, harmful source, benign source) from ``safety_data``."""
    if isinstance(safety_data, str) and "," in safety_data:
        parts = [p.strip() for p in safety_data.split(",")]
        if len(parts) != 2 or not all(parts):
            raise SteerInputError(
                f"--safety-data takes 'harmful,benign' (two files or shared sets), got {safety_data!r}"
            )
        safety_data = tuple(parts)
    if isinstance(safety_data, tuple) and len(safety_data) == 2:
        harmful_src, benign_src = safety_data
        harmful = load_anchors(harmful_src, what="harmful safety data")
        benign = load_anchors(benign_src, what="benign safety data")
        return harmful, benign, describe_source(harmful_src), describe_source(benign_src)
    if isinstance(safety_data, (str, os.PathLike)):
        from steer.data.specs import load_items

        path = os.fspath(safety_data)
        from steer.data.items import MISSING_LABEL

        try:
            items = load_items(path)  # a labelled file, or a shared set with labels (e.g. organism:probe)
        except SteerInputError as err:
            if MISSING_LABEL not in str(err):
                raise
            where = str(err).replace(MISSING_LABEL, "no 'label'")
            raise SteerInputError(
                f"{where}; one safety-data file needs 'harmful' or 'benign' on every row, "
                "or give two files: --safety-data harmful.jsonl,benign.jsonl"
            ) from None
        if not items:
            raise SteerInputError(f"safety data {path} holds no rows (empty dataset)")
        harmful = [Anchor(it.prompt, None, f"{path} row {i + 1}") for i, it in enumerate(items) if it.label == "harmful"]
        benign = [Anchor(it.prompt, None, f"{path} row {i + 1}") for i, it in enumerate(items) if it.label == "benign"]
        for name, rows in (("harmful", harmful), ("benign", benign)):
            if not rows:
                raise SteerInputError(
                    f"safety data {path} has no {name} rows: give a 'label' column with harmful and benign rows, "
                    "or two sources as 'harmful.jsonl,benign.jsonl'"
                )
        return harmful, benign, f"{path} (label=harmful)", f"{path} (label=benign)"
    raise SteerInputError(
        "safety data must be 'harmful,benign' (files or shared sets), a (harmful, benign) pair, or one labelled file"
    )


def _text_only(anchors: list[Anchor]) -> list[Anchor]:
    return [Anchor(a.prompt, None, a.where) for a in anchors]


def _directions(h: ShiftAccumulator, b: ShiftAccumulator) -> tuple[dict[int, torch.Tensor], dict[int, float]]:
    dirs, gaps = {}, {}
    for layer in h.layers:
        diff = h.mean(layer) - b.mean(layer)
        norm = float(torch.linalg.vector_norm(diff))
        if norm == 0.0 or not torch.isfinite(diff).all():
            raise SteerInputError(
                f"layer {layer}: harmful and benign text give the same mean state, so there is no safety direction; "
                "use safety data whose two sides differ"
            )
        dirs[layer] = diff / norm
        gaps[layer] = norm
    return dirs, gaps


def _safety_phases(adapter, layers, harmful, benign) -> list[Phase]:
    d = adapter.hidden_size
    return [
        Phase("harmful", "text", harmful, ShiftAccumulator(layers, d)),
        Phase("benign", "text", benign, ShiftAccumulator(layers, d)),
    ]


def _prepare_safety(adapter, safety_data, harmful, benign, max_samples, seed):
    if safety_data is not None:
        if harmful is not None or benign is not None:
            raise SteerInputError("give safety_data or harmful + benign, not both")
        h, b, h_src, b_src = load_safety_sets(safety_data)
    else:
        if harmful is None or benign is None:
            raise SteerInputError("ShiftDC needs harmful and benign text (safety_data='harmful.jsonl,benign.jsonl')")
        h = load_anchors(harmful, what="harmful safety data")
        b = load_anchors(benign, what="benign safety data")
        h_src, b_src = describe_source(harmful), describe_source(benign)
    h = _text_only(subsample(h, max_samples, seed))
    b = _text_only(subsample(b, max_samples, seed))
    digest = data_sha256(h + [Anchor("\x00benign\x00")] + b)
    preflight_lengths(adapter, h, with_image=False, null=None)
    preflight_lengths(adapter, b, with_image=False, null=None)
    return h, b, h_src, b_src, digest


def _safety_metadata(h_phase, b_phase, h_src, b_src, digest, gaps) -> dict[str, Any]:
    return {
        "harmful": h_src,
        "benign": b_src,
        "n_harmful": h_phase.acc.n,
        "n_benign": b_phase.acc.n,
        "data_sha256": digest,
        "pooling": "last",
        "view": "text only",
        "definition": "v_l = normalize(mean h_l(harmful) - mean h_l(benign))",
        "gap_norm": {str(l): g for l, g in gaps.items()},
    }


def compute_safety_directions(
    model_or_sm: Any,
    harmful: Any = None,
    benign: Any = None,
    *,
    safety_data: Any = None,
    layers: Sequence[int] | None = None,
    batch_size: int = 8,
    max_samples: int | None = None,
    seed: int = 0,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    progress: bool = True,
) -> tuple[dict[int, torch.Tensor], dict[str, Any]]:
    """({layer: unit v_l (float64)}, provenance) from harmful vs benign text, last prompt token."""
    adapter = as_adapter(model_or_sm, "calibrate")
    chosen = list(range(adapter.num_layers)) if layers is None else normalize_layers(layers, adapter.num_layers, "calibrate")
    h, b, h_src, b_src, digest = _prepare_safety(adapter, safety_data, harmful, benign, max_samples, seed)
    phases = _safety_phases(adapter, chosen, h, b)
    fp = adapter.fingerprint()
    signature = {
        "method": "safety_direction", "model_weights": fp["weights_sha256"], "layers": chosen,
        "seed": int(seed), "max_samples": max_samples, "safety_sha256": digest,
    }
    runner = Runner(
        adapter, chosen, pool="last", null=None, batch_size=batch_size, checkpoint=checkpoint,
        checkpoint_every=checkpoint_every, signature=signature, progress=progress,
    )
    runner.run(phases)
    dirs, gaps = _directions(phases[0].acc, phases[1].acc)
    runner.remove_checkpoint()
    return dirs, _safety_metadata(phases[0], phases[1], h_src, b_src, digest, gaps)


def calibrate_shiftdc(
    model_or_sm: Any,
    anchors: Any,
    harmful: Any = None,
    benign: Any = None,
    *,
    safety_data: Any = None,
    layers: Sequence[int] | None = None,
    pool: str = "last",
    reduce: str = "mean",
    null_image: str = "blank",
    batch_size: int = 8,
    max_samples: int | None = None,
    seed: int = 0,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    progress: bool = True,
    recipe: Any = None,
    positions: str | None = None,
    schedule: str | None = None,
    default_alpha: float | None = None,
    level: str | None = None,
    probe_samples: int = 256,
    keep_checkpoint: bool = False,
) -> ShiftVectors:
    """CMRM shift (as :func:`calibration.cmrm.calibrate_cmrm`) + unit safety directions, ``method="shiftdc"``.

    ``max_samples`` caps the anchors and each side of the safety data. ``recipe`` and the
    settings after it: the file's defaults (:mod:`calibration.recipes`; default ``measured``,
    which for ShiftDC is sample level, alpha 1.0).
    """
    start = time.perf_counter()
    chosen_recipe = check_recipe("shiftdc", recipe, positions, schedule, default_alpha, level)
    prep = prepare_shift(
        model_or_sm, anchors, layers=layers, pool=pool, reduce=reduce, null_image=null_image,
        max_samples=max_samples, seed=seed, schedule=chosen_recipe.schedule,
    )
    h, b, h_src, b_src, digest = _prepare_safety(prep.adapter, safety_data, harmful, benign, max_samples, seed)
    phases = [shift_phase(prep, reduce, probe_samples, seed)] + _safety_phases(prep.adapter, prep.layers, h, b)
    signature = base_signature(
        prep, method="shiftdc", pool=pool, reduce=reduce, null_image=null_image, seed=seed,
        max_samples=max_samples, probe_samples=probe_samples,
    )
    signature["safety_sha256"] = digest
    runner = Runner(
        prep.adapter, prep.layers, pool=pool, null=prep.null, batch_size=batch_size,
        checkpoint=checkpoint, checkpoint_every=checkpoint_every, signature=signature, progress=progress,
    )
    runner.run(phases)
    shift_p, h_p, b_p = phases
    shifts, ratios = reduce_shifts(shift_p.acc, reduce)
    dirs, gaps = _directions(h_p.acc, b_p.acc)
    meta = shift_metadata(
        prep, shift_p, shifts, ratios, method="shiftdc", pool=pool, reduce=reduce, null_image=null_image,
        recipe=chosen_recipe, seed=seed, batch_size=batch_size,
        max_samples=max_samples, probe_samples=probe_samples, source=anchors, elapsed=time.perf_counter() - start,
    )
    meta["safety"] = _safety_metadata(h_p, b_p, h_src, b_src, digest, gaps)
    for layer in prep.layers:
        s, v = shifts[layer], dirs[layer]
        norm = float(torch.linalg.vector_norm(s))
        meta["stats"][str(layer)]["cos_dir"] = float(s @ v) / norm if norm > 0 else None
    vectors = ShiftVectors(shifts, dirs, meta)
    if not keep_checkpoint:
        runner.remove_checkpoint()
    return vectors
