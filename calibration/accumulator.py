"""Streaming float64 accumulators for calibration: exact to merge, exact to checkpoint.

:class:`ShiftAccumulator` keeps, per layer, only sums (never the samples):

``count``        number of vectors seen
``sum``          sum of the vectors                      -> mean
``unit_sum``     sum of the vectors scaled to unit norm  -> consistency (mean cosine to the mean)
``sq_norm_sum``  sum of squared norms                     -> mean squared norm (spread)
``outer``        sum of outer products x x^T (only with ``second_moment=True``)
                                                          -> covariance -> first principal component

Memory is O(layers x d) (O(layers x d^2) with ``second_moment``). Everything is a sum,
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

import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch

from steer.atomic import atomic_path
from steer.errors import SteerInputError

_F64 = torch.float64


class ShiftAccumulator:
    """Per-layer float64 running sums of vectors (shifts or hidden states)."""

    def __init__(self, layers: Sequence[int], hidden_size: int, *, second_moment: bool = False):
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
        self.outer = torch.zeros(n, d, d, dtype=_F64) if self.second_moment else None
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
            if self.outer is not None:
                self.outer[i] += x.T @ x

    def tensors(self) -> list[torch.Tensor]:
        """The sum tensors, in a fixed order (what an all-reduce adds up)."""
        out = [self.count, self.sum, self.unit_sum, self.sq_norm_sum]
        if self.outer is not None:
            out.append(self.outer)
        return out

    def _check_compatible(self, other: "ShiftAccumulator") -> None:
        if (other.layers, other.hidden_size, other.second_moment) != (self.layers, self.hidden_size, self.second_moment):
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

    def covariance(self, layer: int) -> torch.Tensor:
        """Population covariance (divides by n) of the vectors; needs ``second_moment``."""
        if self.outer is None:
            raise SteerInputError("this accumulator keeps no second moments (use second_moment=True / --reduce pc1)")
        i = self._need(layer)
        m = self.sum[i] / self.count[i]
        cov = self.outer[i] / self.count[i] - torch.outer(m, m)
        return (cov + cov.T) / 2

    def pc1(self, layer: int) -> tuple[torch.Tensor, float]:
        """(first principal component scaled to the mean's projection on it, explained-variance ratio).

        Same convention as ``sklearn.decomposition.PCA`` (data centred): ``u`` = top
        eigenvector of the covariance, returned as ``(mean . u) u``, which does not depend on
        the eigenvector's sign.
        """
        n = int(self.count[self._need(layer)])
        if n < 2:  # one sample has zero covariance: its "first component" would be an arbitrary axis
            raise SteerInputError(f"pc1 needs at least 2 samples, layer {layer} has {n}; use more anchors or reduce='mean'")
        cov = self.covariance(layer)
        evals, evecs = torch.linalg.eigh(cov)
        u = evecs[:, -1]
        total = float(evals.clamp_min(0).sum())
        ratio = float(evals[-1].clamp_min(0)) / total if total > 0 else 0.0
        m = self.mean(layer)
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
        if self.outer is not None:
            state["outer"] = self.outer.clone()
        return state

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> "ShiftAccumulator":
        acc = cls(state["layers"], state["hidden_size"], second_moment=bool(state["second_moment"]))
        for name in ("count", "sum", "unit_sum", "sq_norm_sum") + (("outer",) if acc.second_moment else ()):
            value = torch.as_tensor(state[name]).to(_F64)
            target = getattr(acc, name)
            if value.shape != target.shape:
                raise SteerInputError(f"accumulator state {name!r} has shape {tuple(value.shape)}, expected {tuple(target.shape)}")
            target.copy_(value)
        return acc


class ProbeStore:
    """Pooled (text-only, image) states of selected samples, keyed by global sample index.

    Kept in float32 (the probe is a statistic, not a vector): O(k x layers x d) for k
    selected samples.
    """

    def __init__(self, layers: Sequence[int], hidden_size: int):
        self.layers = sorted(int(l) for l in layers)
        self.hidden_size = int(hidden_size)
        self.items: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def add(self, index: int, text_states: torch.Tensor, image_states: torch.Tensor) -> None:
        """``text_states`` / ``image_states``: (layers, d) for one sample."""
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
