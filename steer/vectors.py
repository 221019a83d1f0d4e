"""Vector files: per-layer shift vectors (+ optional safety directions) with provenance.

Format (:mod:`steer.artifact`): one ``safetensors`` file. Tensors ``shift.{layer}`` (float32, shape (d,)) and,
for ShiftDC, ``direction.{layer}`` (unit norm). The safetensors header metadata holds one
key, ``steer``, whose value is a JSON object:

``kind`` ("vectors"), ``format_version``, ``method`` (cmrm | shiftdc | custom), ``layers``, ``hidden_size``,
``dtype``, ``model`` (fingerprint: family, model_type, hidden_size, num_layers,
name_or_path, weights_sha256), ``pooling``, ``positions``, ``schedule``,
``default_alpha``, ``n_samples``, ``data_sha256``, ``null_image``, ``reduce``,
``stats`` (per-layer statistics from calibration), ``toolkit_version``, ``created``.

Layer indices follow :mod:`steer.adapters.base`: 0-based decoder layers, layer i's
output = HF ``hidden_states[i + 1]``. Loading verifies shapes and, against a model, its
architecture and weights; writes are atomic.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
import math
import numbers
from typing import Any, Mapping

import torch

from steer.adapters.base import ModelAdapter
from steer.artifact import (
    FINGERPRINT_TYPES,
    check_fingerprint,
    check_meta_types,
    read_artifact,
    write_artifact,
)
from steer.errors import ModelMismatchError, SteerInputError

KIND = "vectors"
METHODS = ("cmrm", "shiftdc", "contrast", "custom")


@dataclass
class ShiftVectors:
    """Per-layer shifts ``s_l`` and optional unit safety directions ``v_l``."""

    shifts: dict[int, torch.Tensor]
    directions: dict[int, torch.Tensor] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.shifts:
            raise SteerInputError("a vector file needs at least one layer")
        self.shifts = {int(k): torch.as_tensor(v).detach().float().cpu().reshape(-1) for k, v in self.shifts.items()}
        dims = {v.numel() for v in self.shifts.values()}
        if len(dims) != 1:
            raise SteerInputError(f"shift vectors have different sizes {sorted(dims)}")
        if self.directions is not None:
            self.directions = {
                int(k): torch.as_tensor(v).detach().float().cpu().reshape(-1) for k, v in self.directions.items()
            }
            if set(self.directions) != set(self.shifts):
                raise SteerInputError("directions must be given for exactly the layers of the shifts")
            for layer, vec in self.directions.items():
                if vec.numel() != self.hidden_size:
                    raise SteerInputError(f"direction for layer {layer} has size {vec.numel()}, shifts {self.hidden_size}")
                if abs(float(vec.norm()) - 1.0) > 1e-4:
                    raise SteerInputError(f"direction for layer {layer} is not unit norm (|v| = {float(vec.norm()):.4f})")
        meta = dict(self.metadata)
        meta.setdefault("method", "shiftdc" if self.directions is not None else "custom")
        if meta["method"] not in METHODS:
            raise SteerInputError(f"unknown method {meta['method']!r}; one of {', '.join(METHODS)}")
        meta.setdefault("positions", "after_image")
        meta.setdefault("schedule", "cumulative")
        meta.setdefault("default_alpha", 1.0)
        meta.setdefault("pooling", "last")
        meta.setdefault("stats", {})
        meta["layers"] = self.layers
        meta["hidden_size"] = self.hidden_size
        self.metadata = meta

    # ------------------------------------------------------------------ views
    @property
    def layers(self) -> list[int]:
        return sorted(self.shifts)

    @property
    def hidden_size(self) -> int:
        return next(iter(self.shifts.values())).numel()

    @property
    def method(self) -> str:
        return str(self.metadata["method"])

    def __repr__(self) -> str:
        """One line: what the vectors are, for which model, and how they apply by default."""
        meta = self.metadata
        model = (meta.get("model") or {}).get("name_or_path") or "?"
        norms = list(self.norms().values())
        extra = f", n_samples={meta['n_samples']}" if meta.get("n_samples") is not None else ""
        derived = meta.get("derived", {}).get("expression")
        return (
            f"ShiftVectors(method={self.method}, layers={_layer_span(self.layers)}, hidden_size={self.hidden_size}, "
            f"model={model!r}, positions={meta.get('positions')}, schedule={meta.get('schedule')}, "
            f"default_alpha={meta.get('default_alpha')}{extra}, |s|={min(norms):.4g}..{max(norms):.4g}"
            f"{', directions' if self.directions is not None else ''}"
            f"{f', expression={derived!r}' if derived else ''})"
        )

    def norms(self) -> dict[int, float]:
        return {layer: float(self.shifts[layer].norm()) for layer in self.layers}

    def select(self, layers: list[int] | None) -> "ShiftVectors":
        """A copy restricted to ``layers`` (None = all stored layers)."""
        if layers is None:
            return self
        missing = [layer for layer in layers if layer not in self.shifts]
        if missing:
            raise SteerInputError(f"layers {missing} are not in this vector file (it has {self.layers})")
        dirs = {l: self.directions[l] for l in layers} if self.directions is not None else None
        return ShiftVectors({l: self.shifts[l] for l in layers}, dirs, dict(self.metadata))

    def to_subtract(self, method: str | None = None) -> dict[int, torch.Tensor]:
        """Per-layer vectors the engine subtracts (before alpha and schedule).

        ``cmrm``: the shift itself. ``shiftdc``: only the shift's component along the
        safety direction, ``(s_l . v_l) v_l`` (arXiv 2502.13095), so the rest of the
        shift -- the visual content -- stays.
        """
        method = method or self.method
        if method in ("cmrm", "contrast", "custom"):
            return dict(self.shifts)
        if method == "shiftdc":
            if self.directions is None:
                raise SteerInputError(
                    "ShiftDC needs a safety direction, and this vector file has none; "
                    "recalibrate with `steer calibrate --method shiftdc --safety-data ...`"
                )
            return {l: (self.shifts[l] @ self.directions[l]) * self.directions[l] for l in self.layers}
        raise SteerInputError(f"unknown method {method!r}; one of {', '.join(METHODS)}")

    # ------------------------------------------------------------------ arithmetic
    # ``0.5 * a + b``, ``a - b``, ``-a``, ``a / 2``, ``a.select_layers([...])``: new vector
    # sets whose metadata keeps the model and how they apply, plus ``derived`` (the
    # expression and a summary of every source) as provenance. Sums are of the vectors the
    # engine subtracts (:meth:`to_subtract`), so ``a + b`` steers exactly as ``a`` and ``b``
    # applied together at the same positions and schedule.

    @property
    def label(self) -> str:
        """A short name for expressions: ``metadata["name"]``, else the method and data hash."""
        meta = self.metadata
        if meta.get("name"):
            return str(meta["name"])
        digest = str(meta.get("data_sha256") or "")[:8]
        return f"{self.method}:{digest}" if digest else self.method

    def _expression(self, wrap: str = "") -> str:
        """This operand in an expression; ``wrap="sum"`` parenthesises a sum or difference (as
        the right side of ``-`` or ``*`` needs), ``wrap="any"`` any compound (before ``.select_layers``)."""
        derived = self.metadata.get("derived", {}).get("expression")
        if derived is None:
            return self.label
        compound = (" + " in derived or " - " in derived) if wrap == "sum" else (wrap == "any" and " " in derived)
        return f"({derived})" if compound else derived

    def _sources(self) -> dict[str, Any]:
        derived = self.metadata.get("derived")
        if derived is not None:
            return dict(derived.get("sources", {}))
        meta = self.metadata
        keep = ("method", "data_sha256", "n_samples", "created", "toolkit_version", "default_alpha")
        summary = {k: meta[k] for k in keep if meta.get(k) is not None}
        summary["model"] = (meta.get("model") or {}).get("name_or_path")
        summary["layers"] = self.layers
        summary["norms"] = {str(l): round(n, 6) for l, n in self.norms().items()}  # tells apart same-named sources
        return {self.label: summary}

    def _derived(self, shifts, directions, expression: str, sources: dict, **changes: Any) -> "ShiftVectors":
        meta = {k: v for k, v in self.metadata.items() if k not in _MEASURED_KEYS}
        meta.update(changes)
        meta["derived"] = {"expression": expression, "sources": sources}
        return ShiftVectors(shifts, directions, meta)

    def scaled(self, factor: float) -> "ShiftVectors":
        """``factor * self``: every vector scaled (ShiftDC directions kept: the projection is linear)."""
        factor = _check_scalar(factor)
        return self._derived(
            {l: factor * v for l, v in self.shifts.items()},
            self.directions,
            f"{factor:g} * {self._expression(wrap='sum')}",
            self._sources(),
        )

    def combined(self, other: "ShiftVectors", sign: float = 1.0) -> "ShiftVectors":
        """``self + sign * other`` after :func:`check_combinable`."""
        check_combinable(self, other)
        same_dirs = (
            self.directions is not None
            and other.directions is not None
            and all(torch.equal(self.directions[l], other.directions[l]) for l in self.layers)
        )
        if same_dirs or (self.directions is None and other.directions is None):
            mine, theirs, dirs = self.shifts, other.shifts, self.directions
        else:  # a ShiftDC file and another kind: add what each one subtracts
            mine, theirs, dirs = self.to_subtract(), other.to_subtract(), None
        method = self.method if self.method == other.method and (dirs is not None or self.method != "shiftdc") else "custom"
        alphas = {float(self.metadata.get("default_alpha", 1.0)), float(other.metadata.get("default_alpha", 1.0))}
        op = "+" if sign > 0 else "-"
        return self._derived(
            {l: mine[l] + sign * theirs[l] for l in self.layers},
            dirs,
            f"{self._expression()} {op} {other._expression(wrap='sum')}",
            _merge_sources(self._sources(), other._sources()),
            method=method,
            default_alpha=alphas.pop() if len(alphas) == 1 else 1.0,
        )

    def select_layers(self, layers: "int | list[int]") -> "ShiftVectors":
        """Only ``layers`` (stored layer indices), e.g. to combine files calibrated on different layers."""
        chosen = [layers] if isinstance(layers, int) else list(layers)
        if not chosen or any(not isinstance(l, numbers.Integral) or isinstance(l, bool) for l in chosen):
            raise SteerInputError(f"select_layers takes layer numbers from {self.layers}, got {layers!r}")
        if len(set(chosen)) != len(chosen):
            raise SteerInputError(f"layers given twice in {chosen}")
        picked = self.select(sorted(int(l) for l in chosen))
        return self._derived(
            picked.shifts, picked.directions,
            f"{self._expression(wrap='any')}.select_layers({sorted(int(l) for l in chosen)})", self._sources(),
        )

    def __mul__(self, factor: Any) -> "ShiftVectors":
        if isinstance(factor, ShiftVectors):
            raise SteerInputError("vector files multiply by numbers only (0.5 * a); add them with a + b")
        return self.scaled(factor)

    __rmul__ = __mul__

    def __truediv__(self, divisor: Any) -> "ShiftVectors":
        divisor = _check_scalar(divisor)
        if divisor == 0:
            raise SteerInputError("cannot divide a vector file by zero")
        return self.scaled(1.0 / divisor)

    def __neg__(self) -> "ShiftVectors":
        return self.scaled(-1.0)

    def __add__(self, other: Any) -> "ShiftVectors":
        return self.combined(_check_operand(other, "+"), 1.0)

    def __sub__(self, other: Any) -> "ShiftVectors":
        return self.combined(_check_operand(other, "-"), -1.0)

    def __radd__(self, other: Any) -> "ShiftVectors":
        if isinstance(other, numbers.Number) and other == 0:  # sum([a, b, c]) starts from 0
            return self
        return self.combined(_check_operand(other, "+"), 1.0)

    # ------------------------------------------------------------------ model check
    def check_model(self, adapter: ModelAdapter, allow_other_weights: bool = False) -> None:
        """Refuse a model these vectors were not made for; the error names both sides."""
        check_fingerprint(
            self.metadata.get("model"),
            adapter,
            what="vector file",
            remedy="calibrate vectors for this model with `steer calibrate`",
            hidden_size=self.hidden_size,
            allow_other_weights=allow_other_weights,
            require_fingerprint="format_version" in self.metadata,  # read from (or saved to) a file
        )
        bad = [layer for layer in self.layers if layer >= adapter.num_layers]
        if bad:
            raise ModelMismatchError(f"vector layers {bad} do not exist in a {adapter.num_layers}-layer model")

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (temp file + rename); returns the path."""
        meta = dict(self.metadata, dtype="float32")
        tensors = {f"shift.{l}": self.shifts[l] for l in self.layers}
        if self.directions is not None:
            tensors.update({f"direction.{l}": self.directions[l] for l in self.layers})
        self.metadata = write_artifact(path, tensors, meta, KIND)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ShiftVectors":
        """Read a vector file, refusing anything damaged or tampered with (one-line errors):
        tensor names other than ``shift.N`` / ``direction.N`` (so two keys cannot name one
        layer), a dtype other than float32, a shape other than ``(d,)``, NaN/inf values,
        metadata fields of the wrong type, a recipe steer does not know."""
        tensors, meta = read_artifact(path, KIND)
        check_vector_metadata(path, meta)
        shifts, dirs = split_vector_tensors(path, tensors)
        vectors = cls(shifts, dirs or None, meta)
        if meta.get("hidden_size") not in (None, vectors.hidden_size):
            raise SteerInputError(f"{path}: metadata says d={meta['hidden_size']}, tensors have {vectors.hidden_size}")
        return vectors


#: tensor names of a vector file: canonical layer numbers only ('shift.03' would alias 'shift.3')
_TENSOR_NAME = re.compile(r"(shift|direction)\.(0|[1-9][0-9]*)")
#: JSON types of the metadata fields a vector file is read by
_META_TYPES: dict[str, tuple[type, ...]] = {
    "kind": (str,), "method": (str,), "model": (dict,), "hidden_size": (int,), "layers": (list,),
    "default_alpha": (int, float), "positions": (str,), "schedule": (str,), "pooling": (str,),
    "stats": (dict,), "n_samples": (int,), "null_image": (str,), "reduce": (str,), "dtype": (str,),
}


def check_vector_metadata(path: str | os.PathLike, meta: Mapping[str, Any]) -> None:
    """Refuse metadata a vector file could not have been written with (wrong types, unknown recipe)."""
    from steer.positions import check_positions
    from steer.schedule import SCHEDULES

    check_meta_types(path, meta, _META_TYPES)
    check_meta_types(path, meta.get("model") or {}, FINGERPRINT_TYPES)
    if "dtype" in meta and meta["dtype"] != "float32":
        raise SteerInputError(f"{path}: metadata says dtype {meta['dtype']!r}; vector files store float32")
    if "positions" in meta:
        try:
            check_positions(meta["positions"])
        except SteerInputError as err:
            raise SteerInputError(f"{path}: stored positions: {err}") from None
    if meta.get("schedule", "cumulative") not in SCHEDULES:
        raise SteerInputError(f"{path}: stored schedule {meta['schedule']!r} is not one of {', '.join(SCHEDULES)}")
    if not all(isinstance(layer, int) and not isinstance(layer, bool) for layer in meta.get("layers", [])):
        raise SteerInputError(f"{path}: metadata field 'layers' must list whole numbers, got {meta['layers']!r}")


def split_vector_tensors(
    path: str | os.PathLike, tensors: Mapping[str, torch.Tensor]
) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """({layer: shift}, {layer: direction}) of a vector file's tensors, each float32 of shape (d,)."""
    shifts: dict[int, torch.Tensor] = {}
    dirs: dict[int, torch.Tensor] = {}
    for key, tensor in tensors.items():
        match = _TENSOR_NAME.fullmatch(key)
        if match is None:
            raise SteerInputError(f"{path}: unexpected tensor {key!r}; a vector file holds only shift.N and direction.N")
        if tensor.dtype != torch.float32:
            raise SteerInputError(f"{path}: tensor {key!r} is {tensor.dtype}, vector files store float32")
        if tensor.dim() != 1 or tensor.numel() == 0:
            raise SteerInputError(f"{path}: tensor {key!r} has shape {tuple(tensor.shape)}, expected (hidden_size,)")
        (shifts if match.group(1) == "shift" else dirs)[int(match.group(2))] = tensor
    if not shifts:
        raise SteerInputError(f"{path} holds no shift vectors")
    return shifts, dirs


def check_alpha_range(alpha: float, per_layer: Mapping[int, torch.Tensor], dtype: torch.dtype) -> float:
    """``alpha``, or a :class:`SteerInputError` when ``alpha`` or ``alpha * v`` would overflow ``dtype``.

    1e39 is finite in float64 but infinite in float32 and bfloat16 (and 1e5 in float16): the
    steered hidden states would turn into inf/NaN and generation into empty answers."""
    if not dtype.is_floating_point:
        return alpha
    largest = float(torch.finfo(dtype).max)
    peak = max((float(v.abs().max()) for v in per_layer.values() if v.numel()), default=0.0)
    reach = abs(alpha) * peak
    if abs(alpha) > largest or reach > largest:
        raise SteerInputError(
            f"alpha {alpha:g} is out of range for the model's {str(dtype).replace('torch.', '')}: alpha x max|v| = "
            f"{reach:.3g}, beyond its largest number {largest:.3g}; use a smaller alpha"
        )
    return alpha


def as_vectors(source: "ShiftVectors | str | os.PathLike | Mapping[int, torch.Tensor]") -> ShiftVectors:
    """Accept a ShiftVectors, a path to a vector file, or a plain {layer: tensor} mapping."""
    if isinstance(source, ShiftVectors):
        return source
    if isinstance(source, (str, os.PathLike)):
        return ShiftVectors.load(source)
    if isinstance(source, Mapping):
        return ShiftVectors(dict(source), metadata={"method": "custom"})
    raise SteerInputError(f"cannot use {type(source).__name__} as steering vectors")


def _layer_span(layers: list[int]) -> str:
    """``0-3`` for a contiguous run, ``1,4,7`` otherwise."""
    if len(layers) > 1 and layers == list(range(layers[0], layers[-1] + 1)):
        return f"{layers[0]}-{layers[-1]}"
    return ",".join(str(l) for l in layers)


#: metadata measured on a data set: true of a calibrated file, not of a sum or a scaled copy
_MEASURED_KEYS = frozenset(
    {"stats", "n_samples", "data_sha256", "calibration", "contrast", "safety", "created", "name", "derived"}
)
#: metadata that decides how the engine applies the vectors: operands must agree on it
_APPLIED_KEYS = ("positions", "schedule")


def _merge_sources(mine: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """Both operands' sources; two different sources under one label are both kept (``label (2)``)."""
    out = dict(mine)
    for label, summary in theirs.items():
        key, n = label, 1
        while key in out and out[key] != summary:
            n += 1
            key = f"{label} ({n})"
        out[key] = summary
    return out


def _check_scalar(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise SteerInputError(f"vector files scale by a finite number, got {value!r}")
    return float(value)


def _check_operand(other: Any, op: str) -> "ShiftVectors":
    if isinstance(other, ShiftVectors):
        return other
    if isinstance(other, numbers.Number):
        raise SteerInputError(f"a vector file {op} a number has no meaning: scale with a number (0.5 * a), add vector files")
    raise SteerInputError(
        f"cannot combine a vector file with a {type(other).__name__}: only vector files (ShiftVectors) add up; "
        "load it with ShiftVectors.load"
    )


def check_combinable(a: ShiftVectors, b: ShiftVectors) -> None:
    """Refuse sums with no single meaning; each error names both sides and the fix."""
    if a.hidden_size != b.hidden_size:
        raise ModelMismatchError(f"cannot combine vectors of hidden size {a.hidden_size} ({a.label}) and {b.hidden_size} ({b.label})")
    ma, mb = a.metadata.get("model") or {}, b.metadata.get("model") or {}
    for key in ("family", "model_type", "num_layers", "weights_sha256"):
        if ma.get(key) is not None and mb.get(key) is not None and ma[key] != mb[key]:
            raise ModelMismatchError(
                f"cannot combine vectors of different models: {a.label} was made on {ma.get('name_or_path')!r} "
                f"({key}={ma[key]!r}), {b.label} on {mb.get('name_or_path')!r} ({key}={mb[key]!r})"
            )
    if a.layers != b.layers:
        common = sorted(set(a.layers) & set(b.layers))
        raise SteerInputError(
            f"cannot combine vectors on different layers ({a.label}: {_layer_span(a.layers)}, {b.label}: "
            f"{_layer_span(b.layers)}); pick common ones first, e.g. a.select_layers({common or '[...]'})"
        )
    for key in _APPLIED_KEYS:
        if a.metadata.get(key) != b.metadata.get(key):
            raise SteerInputError(
                f"cannot combine vectors applied differently: {a.label} has {key}={a.metadata.get(key)!r}, "
                f"{b.label} has {key}={b.metadata.get(key)!r}; set one to match (v.metadata[{key!r}] = ...) first"
            )
