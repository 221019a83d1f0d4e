"""Export a steer vector file as a llama.cpp control vector (GGUF).

``steer export --format gguf vectors.safetensors out.gguf [--alpha A]`` writes the
per-layer vectors that steer's engine would apply to the *language model* into the file
layout llama.cpp's ``--control-vector FILE`` / ``--control-vector-scaled FILE SCALE`` reads.

The layout, as checked against the sources (not the other way round):

* llama.cpp ``common/common.cpp`` ``common_control_vector_load_one``: the loader walks the
  file's tensors, takes every tensor named ``direction.<k>``, requires it to be 1-D
  ``F32`` with the same length (``n_embd``) as the others, rejects ``k == 0`` ("invalid
  (zero) direction tensor layer index" -- and then skips the *whole file*), multiplies by
  the ``--control-vector-scaled`` strength and *sums* duplicates. It reads no metadata.
* llama.cpp ``src/llama-adapter.cpp`` (``llama_adapter_cvec::apply``/``apply_to``) and the
  model graphs (``src/models/*.cpp``): ``direction.k`` is loaded into ``tensors[k]`` and
  added by ``cur = build_cvec(cur, il)`` right after block ``il``'s last residual add, at
  every position (prompt and generated tokens alike) -- i.e. it is **added** to the output
  of 0-based block ``k``. That is steer's layer ``k`` (``decoder_layers[k]`` output = HF
  ``hidden_states[k + 1]``), so the tensor for steer layer ``k`` is ``direction.k``, with
  no shift of index. Block 0's output cannot be steered by llama.cpp.
* llama.cpp ``tools/cvector-generator`` and repeng's ``ControlVector.export_gguf``
  (``repeng/extract.py``) write ``general.architecture = "controlvector"``,
  ``controlvector.model_hint`` (the HF ``model_type``) and ``controlvector.layer_count``
  (the number of direction tensors); loaders that check a file (repeng's
  ``import_gguf``, vLLM-style readers) read those two keys. We write the same, plus
  ``steer.*`` provenance keys that llama.cpp ignores.
* the ``gguf`` Python package (``gguf.GGUFWriter(path, arch)`` adds
  ``general.architecture`` itself; ``add_tensor`` of a float32 numpy array gives F32).

Sign: llama.cpp *adds* the control vector. steer's default operator subtracts
(``h - alpha * v``, CMRM), so a subtraction is exported as the **negated** vector
``-alpha * v``; ``op="add"`` exports ``+alpha * v``. ``project_out`` is not an addition and
cannot be exported.

What is exported per layer is what :meth:`steer.model.SteeredModel.steering` hands the
engine: ``ShiftVectors.to_subtract(method)`` (the shift for CMRM, its component along the
safety direction for ShiftDC) under the layer schedule (the file's, by default), times
``alpha``. What cannot be carried over, and is said in the warnings and in docs:

* positions: llama.cpp steers every position; steer's ``after_image`` / ``prompt`` /...
  masks have no counterpart, so the exported vector acts like ``positions="all"``.
* layer 0: llama.cpp cannot steer block 0 and rejects a ``direction.0`` tensor, so layer
  0 is left out (with a warning; ``steer.dropped_layers`` records it).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from steer.atomic import atomic_path
from steer.artifact import check_artifact_path
from steer.errors import SteerInputError
from steer.schedule import apply_schedule
from steer.steering import check_alpha
from steer.vectors import ShiftVectors, check_alpha_range
from steer.version import __version__

ARCH = "controlvector"
FORMATS = ("gguf",)
EXPORT_OPS = ("subtract", "add")


class ExportWarning(UserWarning):
    """Something of the steering that the exported file cannot carry."""


def control_vectors(
    vectors: ShiftVectors,
    *,
    alpha: float = 1.0,
    method: str | None = None,
    schedule: str | None = None,
    layers: Sequence[int] | None = None,
    op: str = "subtract",
) -> dict[int, torch.Tensor]:
    """{steer layer: float32 (d,) vector llama.cpp must ADD} for a vector file."""
    if op not in EXPORT_OPS:
        raise SteerInputError(
            f"operator {op!r} cannot be exported as a llama.cpp control vector (llama.cpp only adds); "
            f"use one of: {', '.join(EXPORT_OPS)}"
        )
    scale = check_alpha(alpha)
    chosen = vectors.select(None if layers is None else sorted({int(l) for l in layers}))
    per_layer = apply_schedule(chosen.to_subtract(method), schedule or chosen.metadata.get("schedule", "cumulative"))
    check_alpha_range(scale, per_layer, torch.float32)  # GGUF stores float32: 1e39 would be written as inf
    sign = -1.0 if op == "subtract" else 1.0
    out = {layer: (sign * scale * vec.float()).contiguous() for layer, vec in sorted(per_layer.items())}
    bad = [layer for layer, vec in out.items() if not bool(torch.isfinite(vec).all())]
    if bad:  # never write NaN/inf into a file another runtime will add to its hidden states
        raise SteerInputError(f"the exported vectors of layers {bad} are not finite (alpha {alpha}); use a smaller alpha")
    return out


def export_gguf(
    vectors_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    alpha: float = 1.0,
    method: str | None = None,
    schedule: str | None = None,
    layers: Sequence[int] | None = None,
    op: str = "subtract",
) -> dict[str, Any]:
    """Write ``out_path`` (GGUF) from the steer vector file ``vectors_path``.

    Tensor ``direction.{k}`` = the vector llama.cpp adds to the output of block ``k`` (=
    steer layer ``k``): ``-alpha * v_k`` for the default ``op="subtract"``. ``method``
    (cmrm | shiftdc) and ``schedule`` (cumulative | incremental | single) default to the
    file's; ``layers`` picks a subset. Layer 0 is left out with an :class:`ExportWarning`
    (llama.cpp cannot steer it). Returns a summary: ``path``, ``layers``, ``dropped_layers``,
    ``hidden_size``, ``alpha``, ``op``, ``method``, ``schedule``.
    """
    try:
        import gguf
    except ImportError:
        raise SteerInputError("GGUF export needs the gguf package: pip install 'steer[gguf]' (or pip install gguf)") from None
    source = Path(vectors_path)
    vectors = ShiftVectors.load(source)
    meta = vectors.metadata
    method_used = method or vectors.method
    schedule_used = schedule or meta.get("schedule", "cumulative")
    directions = control_vectors(vectors, alpha=alpha, method=method, schedule=schedule, layers=layers, op=op)
    dropped = [layer for layer in directions if layer < 1]
    if dropped:
        warnings.warn(
            "llama.cpp cannot steer decoder layer 0 (it rejects a direction.0 tensor and would skip the whole file), "
            "so layer 0 is left out of the GGUF file",
            ExportWarning,
            stacklevel=2,
        )
        directions = {layer: vec for layer, vec in directions.items() if layer >= 1}
    if not directions:
        raise SteerInputError("nothing to export: llama.cpp can only steer layers >= 1, and no such layer was chosen")
    if meta.get("level") == "sample":
        warnings.warn(
            "the vector file's recipe is sample level (each query's own shift); a GGUF control vector is fixed, "
            "so the export holds the stored dataset-level shift instead",
            ExportWarning,
            stacklevel=2,
        )
    positions = meta.get("positions", "after_image")
    if positions != "all":
        warnings.warn(
            f"the vector file steers positions {positions!r}; llama.cpp adds a control vector at every position, "
            "so the exported file acts like positions='all'",
            ExportWarning,
            stacklevel=2,
        )
    model = meta.get("model") or {}
    hidden = vectors.hidden_size
    target = Path(out_path)
    with atomic_path(target) as tmp:
        writer = gguf.GGUFWriter(str(tmp), ARCH)  # writes general.architecture = "controlvector"
        writer.add_string(f"{ARCH}.model_hint", str(model.get("model_type") or "unknown"))
        writer.add_uint32(f"{ARCH}.layer_count", len(directions))
        writer.add_name(f"steer {method_used} control vector")
        writer.add_description(
            f"steer {method_used} vectors from {source.name}: llama.cpp adds direction.k to the output of block k; "
            f"{'negated (steer subtracts)' if op == 'subtract' else 'as is (steer adds)'}, alpha={float(alpha)}, "
            f"schedule={schedule_used}"
        )
        writer.add_string("steer.source", source.name)
        writer.add_string("steer.method", str(method_used))
        writer.add_string("steer.op", op)
        writer.add_float32("steer.alpha", float(alpha))
        writer.add_string("steer.schedule", str(schedule_used))
        writer.add_string("steer.source_positions", str(positions))
        writer.add_uint32("steer.hidden_size", hidden)
        writer.add_string("steer.model", json.dumps(model, sort_keys=True))
        writer.add_string("steer.dropped_layers", json.dumps(dropped))
        writer.add_string("steer.toolkit_version", __version__)
        for layer, vec in directions.items():
            writer.add_tensor(f"direction.{layer}", vec.numpy().astype(np.float32, copy=False))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return {
        "path": str(target),
        "layers": sorted(directions),
        "dropped_layers": dropped,
        "hidden_size": hidden,
        "alpha": float(alpha),
        "op": op,
        "method": str(method_used),
        "schedule": str(schedule_used),
    }


def read_gguf_directions(path: str | os.PathLike) -> dict[int, np.ndarray]:
    """{k: direction.k} of a control-vector GGUF file (for checks and tests)."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    out: dict[int, np.ndarray] = {}
    for tensor in reader.tensors:
        if tensor.name.startswith("direction."):
            out[int(tensor.name.split(".", 1)[1])] = np.array(tensor.data, dtype=np.float32).reshape(-1)
    return out


__all__ = ["ARCH", "ExportWarning", "FORMATS", "control_vectors", "export_gguf", "read_gguf_directions"]


def export_vectors(
    vectors: str | os.PathLike,
    out: str | os.PathLike,
    *,
    fmt: str = "gguf",
    alpha: str | float = "1.0",
    method: str | None = None,
    schedule: str | None = None,
    layers: str | None = None,
    op: str = "subtract",
    force: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    """``steer export``: (the :func:`export_gguf` summary, the warnings it raised as text).

    ``layers`` uses the CLI syntax ('8-20'); the output path and the format are checked
    before anything is read. The warnings (e.g. a layer llama.cpp cannot steer) are
    collected rather than raised so a caller can show them beside the summary."""
    from steer.atomic import check_output_path, existing_paths
    from steer.layer_spec import parse_layers

    check_output_path(out, inputs=existing_paths(vectors), force=force)  # a bad output path fails now
    if fmt.lower() not in FORMATS:
        raise SteerInputError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    check_artifact_path(vectors, "vectors")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = export_gguf(vectors, out, alpha=check_alpha(alpha), method=method, schedule=schedule,
                              layers=parse_layers(layers), op=op)
    return summary, [str(w.message) for w in caught]


def summary_line(summary: dict[str, Any]) -> str:
    """What ``steer export`` prints about an exported file."""
    return (
        f"wrote {summary['path']}: {len(summary['layers'])} direction tensors (layers {summary['layers'][0]}-"
        f"{summary['layers'][-1]}, d={summary['hidden_size']}), {summary['method']}, {summary['op']} "
        f"(exported {'negated' if summary['op'] == 'subtract' else 'as is'}), alpha={summary['alpha']}"
    )
