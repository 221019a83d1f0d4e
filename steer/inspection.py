"""Per-layer statistics of a vector file, for choosing layers (``steer inspect``).

Computed from the file itself: ``norm`` = |s_l|; ``cos_prev`` = cos(s_l, s_prev) with the
previous stored layer (close to 1 means layer l mostly inherits the earlier shift -- the
reason the ``incremental`` schedule exists); with a safety direction v_l: ``cos_dir`` =
cos(s_l, v_l) (negative: the image pushes toward "benign", ShiftDC's finding) and
``share_dir`` = (s_l . v_l)^2 / |s_l|^2, the fraction of the shift's energy that ShiftDC
removes. Recorded by calibration, when present: ``consistency`` (mean cosine between
per-sample shifts and their mean) and ``separability`` (held-out accuracy of a
text-only-vs-image probe on the pooled states).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from steer.text_table import Grid, dict_grid
from steer.vectors import ShiftVectors


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=0))


def layer_table(vecs: ShiftVectors) -> list[dict[str, Any]]:
    stats = vecs.metadata.get("stats") or {}
    rows: list[dict[str, Any]] = []
    prev: torch.Tensor | None = None
    for layer in vecs.layers:
        s = vecs.shifts[layer]
        row: dict[str, Any] = {"layer": layer, "norm": float(s.norm()), "cos_prev": None if prev is None else _cos(s, prev)}
        if vecs.directions is not None:
            v = vecs.directions[layer]
            row["cos_dir"] = _cos(s, v)
            norm_sq = float(s.double() @ s.double())
            row["share_dir"] = float((s.double() @ v.double()) ** 2 / norm_sq) if norm_sq > 0 else 0.0
        layer_stats = stats.get(str(layer), {})
        for key in ("consistency", "separability"):
            if key in layer_stats or any(key in st for st in stats.values()):
                row[key] = layer_stats.get(key)
        rows.append(row)
        prev = s
    return rows


def provenance_lines(vecs: ShiftVectors, path: str) -> list[str]:
    """What ``steer inspect`` prints above the table: model, stored recipe and calibration data of a vector file."""
    meta = vecs.metadata
    model = meta.get("model", {})
    return [
        f"{path}  method={meta.get('method')}  format v{meta.get('format_version')}",
        f"model: {model.get('name_or_path', '?')} ({model.get('model_type', '?')}, d={vecs.hidden_size}, "
        f"{model.get('num_layers', '?')} layers, weights {model.get('weights_sha256', '?')})",
        f"recipe {meta.get('recipe', 'custom (made before recipes)')}: level={meta.get('level', 'dataset')} "
        f"alpha={meta.get('default_alpha')} positions={meta.get('positions')} schedule={meta.get('schedule')} "
        f"pooling={meta.get('pooling')} reduce={meta.get('reduce', 'mean')} null_image={meta.get('null_image', '-')}",
        f"calibration: n={meta.get('n_samples', '?')} data_sha256={str(meta.get('data_sha256', '?'))[:16]} "
        f"created={meta.get('created', '?')} steer {meta.get('toolkit_version', '?')}",
    ]


@dataclass(frozen=True)
class VectorFileReport:
    """What ``steer inspect`` shows of one vector file: where it came from and its per-layer statistics."""

    path: str
    vectors: ShiftVectors
    layers: list[dict[str, Any]]  # :func:`layer_table`

    def to_dict(self) -> dict[str, Any]:
        """``steer inspect --json``: the file's metadata and the per-layer rows."""
        return {"metadata": self.vectors.metadata, "layers": self.layers}

    def lines(self) -> list[str]:
        """The provenance lines above the table; the first starts with the path."""
        return provenance_lines(self.vectors, self.path)

    def rows(self) -> Grid:
        """The per-layer table, header row first."""
        return dict_grid(self.layers)


def inspect_vectors(path: str | os.PathLike) -> VectorFileReport:
    """``steer inspect``: read a vector file (refusing a damaged one) and compute its per-layer statistics."""
    vecs = ShiftVectors.load(path)
    return VectorFileReport(str(path), vecs, layer_table(vecs))
