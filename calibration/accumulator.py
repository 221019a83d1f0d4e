"""Streaming float64 accumulators for calibration: exact to merge, exact to checkpoint.

:class:`ShiftAccumulator` keeps, per layer, only sums (never the samples):

``count``        number of vectors seen
``sum``          sum of the vectors                      -> mean
``unit_sum``     sum of the vectors scaled to unit norm  -> consistency (mean cosine to the mean)
``sq_norm_sum``  sum of squared norms                     -> mean squared norm (spread)
``sketch``       sum of x (x^T Omega) for a fixed d x k basis Omega (only with ``second_moment=True``)
                                                          -> covariance sketch -> first principal component

Memory is O(layers x d), plus O(layers x d x k) with ``second_moment``, where
k = min(d, expected samples, :data:`SKETCH_SIZE`): never d x d per layer for a large model
(32 layers x d=4096 x 300 anchors keep 315 MB instead of the 4.3 GB a full second-moment
matrix needs). When k = d, Omega is the identity and the sketch *is* the second-moment
matrix. Otherwise Omega is a fixed seeded orthonormal Gaussian basis and PC1 is the top
eigenvector of the Nystrom approximation ``(Sigma Omega)(Omega^T Sigma Omega)^+ (Sigma Omega)^T``
of the centred covariance Sigma, which is exact whenever Sigma has rank <= k -- always
the case when k >= the number of samples, so PC1 is exact up to :data:`SKETCH_SIZE`
samples. Past that (more anchors than columns on a model wider than the sketch) it is a
one-pass randomized estimate, accurate when the top eigenvalue stands out of the rest;
:meth:`ShiftAccumulator.pc1_is_exact` says which. Everything is a sum,
so two accumulators merge exactly by adding their tensors (what an all-reduce does, and
what a resumed run does with its checkpoint), and the order of samples within a batch does
not matter. All arithmetic is float64 whatever the model's dtype.

:class:`ProbeStore` keeps a bounded, index-addressed sample of pooled states (text-only
view and image view) for the separability probe; merging is a union of indices.

Checkpoints (:func:`save_checkpoint` / :func:`load_checkpoint`) are ``torch.save`` files of
plain tensors, strings and numbers, written atomically via :func:`steer.atomic.atomic_path`
and read back with ``weights_only=True``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch

from steer.atomic import atomic_path
from steer.errors import SteerInputError

_F64 = torch.float64
#: most columns of the second-moment sketch (see the module docstring)
SKETCH_SIZE = 512
#: most bytes a :class:`ProbeStore` holds by default (float32 states of both views)
PROBE_STORE_BYTES = 128 * 2**20


@functools.lru_cache(maxsize=8)
def sketch_basis(hidden_size: int, size: int) -> torch.Tensor:
    """The fixed d x k basis Omega: the identity when d <= k, else a seeded orthonormal
    Gaussian basis (the same on every rank and every resume: merging stays exact)."""
    if hidden_size <= size:
        return torch.eye(hidden_size, dtype=_F64)
    gen = torch.Generator().manual_seed(20250105)
    omega = torch.randn(hidden_size, size, generator=gen, dtype=_F64)
    return torch.linalg.qr(omega).Q


class ShiftAccumulator:
    """Per-layer float64 running sums of vectors (shifts or hidden states)."""

    def __init__(
        self, layers: Sequence[int], hidden_size: int, *, second_moment: bool = False, expected_samples: int | None = None
    ):
        self.layers = sorted(int(l) for l in layers)
        if not self.layers:
            raise SteerInputError("an accumulator needs at least one layer")
        if len(set(self.layers)) != len(self.layers):
            raise SteerInputError(f"duplicate layers {layers}")
        self.hidden_size = int(hidden_size)
        self.second_moment = bool(second_moment)
        n, d = len(self.layers), self.hidden_size
        self.count = torch.zeros(n, dtype=_F64)
        self.sum = torch.zeros(n, d, dtype=_F64)
        self.unit_sum = torch.zeros(n, d, dtype=_F64)
        self.sq_norm_sum = torch.zeros(n, dtype=_F64)
        columns = min(d, SKETCH_SIZE, max(1, int(expected_samples)) if expected_samples else SKETCH_SIZE)
        self._basis = sketch_basis(d, columns) if self.second_moment else None
        self.sketch = torch.zeros(n, d, self._basis.shape[1], dtype=_F64) if self._basis is not None else None
        self._row = {layer: i for i, layer in enumerate(self.layers)}

    # ------------------------------------------------------------------ updates
    def update(self, batch: Mapping[int, torch.Tensor]) -> None:
        """Add a batch: ``{layer: (B, d)}`` for exactly this accumulator's layers."""
        if set(int(k) for k in batch) != set(self.layers):
            raise SteerInputError(f"batch has layers {sorted(batch)}, accumulator {self.layers}")
        for layer, values in batch.items():
            i = self._row[int(layer)]
            x = torch.as_tensor(values).detach().to("cpu", _F64)
            if x.dim() == 1:
                x = x.unsqueeze(0)
            if x.dim() != 2 or x.shape[1] != self.hidden_size:
                raise SteerInputError(f"layer {layer}: expected (B, {self.hidden_size}) vectors, got {tuple(x.shape)}")
            norms = torch.linalg.vector_norm(x, dim=1)
            safe = torch.where(norms > 0, norms, torch.ones_like(norms))
            unit = torch.where((norms > 0).unsqueeze(1), x / safe.unsqueeze(1), torch.zeros_like(x))
            self.count[i] += x.shape[0]
            self.sum[i] += x.sum(dim=0)
            self.unit_sum[i] += unit.sum(dim=0)
            self.sq_norm_sum[i] += (norms * norms).sum()
            if self.sketch is not None:
                self.sketch[i] += x.T @ (x @ self._basis)

    def tensors(self) -> list[torch.Tensor]:
        """The sum tensors, in a fixed order (what an all-reduce adds up)."""
        out = [self.count, self.sum, self.unit_sum, self.sq_norm_sum]
        if self.sketch is not None:
            out.append(self.sketch)
        return out

    def _check_compatible(self, other: "ShiftAccumulator") -> None:
        mine = None if self.sketch is None else self.sketch.shape[-1]
        theirs = None if other.sketch is None else other.sketch.shape[-1]
        if (other.layers, other.hidden_size, other.second_moment, theirs) != (
            self.layers, self.hidden_size, self.second_moment, mine
        ):
            raise SteerInputError(
                "cannot merge accumulators of different shape: "
                f"layers {other.layers} d={other.hidden_size} second_moment={other.second_moment} vs "
                f"layers {self.layers} d={self.hidden_size} second_moment={self.second_moment}"
            )

    def merge(self, other: "ShiftAccumulator") -> "ShiftAccumulator":
        """Add ``other``'s sums into this accumulator (exact); returns self."""
        self._check_compatible(other)
        for mine, theirs in zip(self.tensors(), other.tensors()):
            mine += theirs
        return self

    def __iadd__(self, other: "ShiftAccumulator") -> "ShiftAccumulator":
        return self.merge(other)

    # ------------------------------------------------------------------ results
    @property
    def n(self) -> int:
        """Samples seen (the same for every layer in calibration)."""
        return int(self.count.min().item()) if self.count.numel() else 0

    def _need(self, layer: int) -> int:
        i = self._row[int(layer)]
        if self.count[i] <= 0:
            raise SteerInputError(f"no samples accumulated for layer {layer}")
        return i

    def mean(self, layer: int) -> torch.Tensor:
        i = self._need(layer)
        return self.sum[i] / self.count[i]

    def means(self) -> dict[int, torch.Tensor]:
        return {layer: self.mean(layer) for layer in self.layers}

    def consistency(self, layer: int) -> float | None:
        """Mean over samples of cos(x_i, mean); None when the mean is zero."""
        i = self._need(layer)
        m = self.sum[i] / self.count[i]
        m_norm = float(torch.linalg.vector_norm(m))
        if m_norm == 0.0:
            return None
        return float((self.unit_sum[i] / self.count[i]) @ m) / m_norm

    def mean_sq_norm(self, layer: int) -> float:
        i = self._need(layer)
        return float(self.sq_norm_sum[i] / self.count[i])

    def _sketched_covariance(self, layer: int) -> tuple[int, torch.Tensor]:
        """(row index, Sigma Omega): the centred covariance applied to the basis (d x k)."""
        if self.sketch is None:
            raise SteerInputError("this accumulator keeps no second moments (use second_moment=True / --reduce pc1)")
        i = self._need(layer)
        m = self.sum[i] / self.count[i]
        return i, self.sketch[i] / self.count[i] - torch.outer(m, m @ self._basis)

    def covariance(self, layer: int) -> torch.Tensor:
        """Population covariance (divides by n) of the vectors; exact, and only kept, when d <= k."""
        i, cov = self._sketched_covariance(layer)
        if cov.shape[0] != cov.shape[1]:
            raise SteerInputError(
                f"this accumulator keeps a d x {cov.shape[1]} sketch, not the d x d covariance (use pc1())"
            )
        return (cov + cov.T) / 2

    def pc1_is_exact(self, layer: int) -> bool:
        """Whether :meth:`pc1` is exact: the sketch is the full matrix, or holds every sample's direction."""
        i = self._need(layer)
        columns = self.sketch.shape[-1] if self.sketch is not None else 0
        return columns == self.hidden_size or int(self.count[i]) <= columns

    def pc1(self, layer: int) -> tuple[torch.Tensor, float]:
        """(first principal component scaled to the mean's projection on it, explained-variance ratio).

        Same convention as ``sklearn.decomposition.PCA`` (data centred): ``u`` = top
        eigenvector of the covariance, returned as ``(mean . u) u``, which does not depend on
        the eigenvector's sign. Exact when :meth:`pc1_is_exact`; else the Nystrom estimate
        (module docstring).
        """
        n = int(self.count[self._need(layer)])
        if n < 2:  # one sample has zero covariance: its "first component" would be an arbitrary axis
            raise SteerInputError(f"pc1 needs at least 2 samples, layer {layer} has {n}; use more anchors or reduce='mean'")
        i, y = self._sketched_covariance(layer)
        m = self.sum[i] / self.count[i]
        total = float(self.sq_norm_sum[i] / self.count[i] - m @ m)  # trace of the covariance, exact
        if y.shape[0] == y.shape[1]:
            evals, evecs = torch.linalg.eigh((y + y.T) / 2)
            u, top = evecs[:, -1], float(evals[-1].clamp_min(0))
            total = float(evals.clamp_min(0).sum())
        else:
            core = self._basis.T @ y
            w, v = torch.linalg.eigh((core + core.T) / 2)
            keep = w > max(float(w.max()), 0.0) * 1e-12
            if not bool(keep.any()):
                return torch.zeros_like(m), 0.0  # no spread at all
            z = (y @ v[:, keep]) / w[keep].sqrt()  # Sigma_nys = z z^T
            left, sing, _ = torch.linalg.svd(z, full_matrices=False)
            u, top = left[:, 0], float(sing[0] ** 2)
        ratio = min(1.0, top / total) if total > 0 else 0.0
        return (m @ u) * u, ratio

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "layers": list(self.layers),
            "hidden_size": self.hidden_size,
            "second_moment": self.second_moment,
            "count": self.count.clone(),
            "sum": self.sum.clone(),
            "unit_sum": self.unit_sum.clone(),
            "sq_norm_sum": self.sq_norm_sum.clone(),
        }
        if self.sketch is not None:
            state["sketch"] = self.sketch.clone()
        return state

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> "ShiftAccumulator":
        if bool(state["second_moment"]) and "sketch" not in state:
            raise SteerInputError(
                "this checkpoint holds full d x d second moments from an older steer; delete it to start over"
            )
        columns = int(state["sketch"].shape[-1]) if "sketch" in state else None
        acc = cls(state["layers"], state["hidden_size"], second_moment=bool(state["second_moment"]), expected_samples=columns)
        for name in ("count", "sum", "unit_sum", "sq_norm_sum") + (("sketch",) if acc.second_moment else ()):
            value = torch.as_tensor(state[name]).to(_F64)
            target = getattr(acc, name)
            if value.shape != target.shape:
                raise SteerInputError(f"accumulator state {name!r} has shape {tuple(value.shape)}, expected {tuple(target.shape)}")
            target.copy_(value)
        return acc


class ProbeStore:
    """Pooled (text-only, image) states of selected samples, keyed by global sample index.

    Kept in float32 (the probe is a statistic, not a vector): O(k x layers x d) for k
    selected samples, and never more than ``max_bytes`` (:attr:`capacity` samples): at
    32 layers x d=4096 the default 128 MB holds 128 samples.
    """

    def __init__(self, layers: Sequence[int], hidden_size: int, max_bytes: int | None = None):
        self.layers = sorted(int(l) for l in layers)
        self.hidden_size = int(hidden_size)
        self.max_bytes = int(PROBE_STORE_BYTES if max_bytes is None else max_bytes)
        self.items: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def capacity(self) -> int:
        """Samples that fit in ``max_bytes`` (two float32 (layers, d) states each)."""
        return max(0, self.max_bytes // (2 * 4 * len(self.layers) * self.hidden_size))

    def add(self, index: int, text_states: torch.Tensor, image_states: torch.Tensor) -> None:
        """``text_states`` / ``image_states``: (layers, d) for one sample."""
        if int(index) not in self.items and len(self.items) >= self.capacity:
            raise SteerInputError(
                f"probe store full: {self.capacity} samples fit in {self.max_bytes} bytes; select fewer samples"
            )
        self.items[int(index)] = (
            torch.as_tensor(text_states).detach().to("cpu", torch.float32).clone(),
            torch.as_tensor(image_states).detach().to("cpu", torch.float32).clone(),
        )

    def merge(self, other: "ProbeStore") -> "ProbeStore":
        if other.layers != self.layers or other.hidden_size != self.hidden_size:
            raise SteerInputError("cannot merge probe stores of different layers / hidden size")
        self.items.update(other.items)
        return self

    def indices(self) -> list[int]:
        return sorted(self.items)

    def arrays(self, layer: int, indices: Iterable[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(text, image) states of ``layer`` for ``indices``: two (k, d) tensors."""
        j = self.layers.index(int(layer))
        idx = list(indices)
        text = torch.stack([self.items[i][0][j] for i in idx]) if idx else torch.zeros(0, self.hidden_size)
        image = torch.stack([self.items[i][1][j] for i in idx]) if idx else torch.zeros(0, self.hidden_size)
        return text, image

    def state_dict(self) -> dict[str, Any]:
        idx = self.indices()
        if idx:
            text = torch.stack([self.items[i][0] for i in idx])
            image = torch.stack([self.items[i][1] for i in idx])
        else:
            text = image = torch.zeros(0, len(self.layers), self.hidden_size)
        return {
            "layers": list(self.layers),
            "hidden_size": self.hidden_size,
            "indices": torch.tensor(idx, dtype=torch.long),
            "text": text,
            "image": image,
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> "ProbeStore":
        store = cls(state["layers"], state["hidden_size"])
        for k, index in enumerate(torch.as_tensor(state["indices"]).tolist()):
            store.items[int(index)] = (state["text"][k].clone(), state["image"][k].clone())
        return store


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Write a checkpoint (a dict of tensors / numbers / strings / lists) atomically."""
    target = Path(path)
    with atomic_path(target) as tmp:
        torch.save(dict(state), tmp)
    return target


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    target = Path(path)
    try:
        return torch.load(target, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # torch's own message suggests weights_only=False: not safe advice for a stray file
        raise SteerInputError(
            f"checkpoint {target} is not a readable steer checkpoint ({type(err).__name__}); delete it to start over"
        ) from None
