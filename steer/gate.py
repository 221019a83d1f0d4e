"""Probe gates: a linear safety probe on one layer's hidden state that decides where to steer.

PSA-VLM / SafeVLM add a safety head that classifies risk from hidden states; here that
head is a logistic-regression probe fitted offline (``calibration.probe``, ``steer probe``)
and applied at runtime by the hook engine (:class:`steer.steering.Steering` with
``gate=``): during the prefill the engine reads the *unsteered* output of decoder layer
``layer`` at the last prompt token, calls :meth:`ProbeGate.score`, and steers only the
rows whose score exceeds ``threshold`` -- in the same forward pass, so every steered
layer must come after ``layer``.

Score: ``sigmoid(((h - mean) / scale) @ coef + intercept)`` -- exactly scikit-learn's
``StandardScaler`` + ``LogisticRegression.predict_proba(...)[:, 1]`` -- computed in float32
on the hidden state's own device, with no host-device synchronisation.

File format: one ``safetensors`` file (never pickle). Tensors ``mean``, ``scale``,
``coef`` (float32, (d,)), ``intercept`` ((1,)), and for an optional PSA-VLM-style risk-type
head ``type_coef`` ((K, d)) and ``type_intercept`` ((K,)). The header metadata holds one
key, ``steer``, a JSON object with ``kind`` = "probe", ``format_version``, ``layer``,
``hidden_size``, ``threshold``, ``classes``, ``type_classes``, ``model`` (fingerprint, as in
vector files), ``pooling``, ``view``, ``per_layer`` (held-out accuracy / ROC-AUC of every
layer tried), ``data_sha256``, ``n_train``, ``n_test``, ``toolkit_version``, ``created``.
Writes are atomic.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from steer.adapters.base import ModelAdapter
from steer.artifact import check_fingerprint, read_artifact, write_artifact
from steer.errors import ModelMismatchError, SteerInputError

KIND = "probe"
DEFAULT_THRESHOLD = 0.5


def check_threshold(value: Any) -> float:
    """A gate threshold: a finite number in [0, 1] (rows with score > threshold are steered)."""
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise SteerInputError(f"threshold must be a number in [0, 1], got {value!r}") from None
    if not math.isfinite(t) or not 0.0 <= t <= 1.0:
        raise SteerInputError(
            f"threshold must be in [0, 1] (a probability; rows scoring above it are steered), got {value!r}"
        )
    return t


def _vec(value: Any, name: str) -> torch.Tensor:
    return torch.as_tensor(value).detach().to(device="cpu", dtype=torch.float32).contiguous()


@dataclass
class ProbeGate:
    """A standardised logistic-regression probe on decoder layer ``layer`` (0-based)."""

    layer: int
    mean: torch.Tensor
    scale: torch.Tensor
    coef: torch.Tensor
    intercept: torch.Tensor
    threshold: float = DEFAULT_THRESHOLD
    classes: tuple[str, str] = ("benign", "harmful")
    metadata: dict[str, Any] = field(default_factory=dict)
    #: optional multi-class risk-type head on the same standardised features
    type_coef: torch.Tensor | None = None
    type_intercept: torch.Tensor | None = None
    type_classes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        self.layer = int(self.layer)
        if self.layer < 0:
            raise SteerInputError(f"probe layer must be a 0-based decoder layer index, got {self.layer}")
        self.mean = _vec(self.mean, "mean").reshape(-1)
        self.scale = _vec(self.scale, "scale").reshape(-1)
        self.coef = _vec(self.coef, "coef").reshape(-1)
        self.intercept = _vec(self.intercept, "intercept").reshape(1)
        d = self.coef.numel()
        if d == 0 or self.mean.numel() != d or self.scale.numel() != d:
            raise SteerInputError(
                f"probe tensors disagree in size: mean {self.mean.numel()}, scale {self.scale.numel()}, coef {d}"
            )
        if not bool(torch.all(self.scale > 0)):
            raise SteerInputError("probe scale must be positive everywhere (a StandardScaler's scale_)")
        for name in ("mean", "scale", "coef", "intercept"):
            if not bool(torch.isfinite(getattr(self, name)).all()):
                raise SteerInputError(f"probe {name} has non-finite values")
        self.threshold = check_threshold(self.threshold)
        self.classes = tuple(str(c) for c in self.classes)
        if len(self.classes) != 2:
            raise SteerInputError(f"a probe gate is binary: classes must be (negative, positive), got {self.classes}")
        if self.type_coef is not None:
            self.type_coef = _vec(self.type_coef, "type_coef")
            if self.type_coef.dim() == 1:
                self.type_coef = self.type_coef.reshape(1, -1)
            k = self.type_coef.shape[0]
            self.type_intercept = _vec(
                torch.zeros(k) if self.type_intercept is None else self.type_intercept, "type_intercept"
            ).reshape(-1)
            if self.type_coef.shape[1] != d or self.type_intercept.numel() != k:
                raise SteerInputError(
                    f"risk-type head shapes {tuple(self.type_coef.shape)} / {self.type_intercept.numel()} do not fit d={d}"
                )
            names = tuple(str(c) for c in (self.type_classes or ()))
            if len(names) != k:
                raise SteerInputError(f"risk-type head has {k} rows but {len(names)} class names")
            self.type_classes = names
        else:
            self.type_intercept = None
            self.type_classes = None
        self.metadata = dict(self.metadata)
        self._cache: dict[torch.device, tuple[torch.Tensor, ...]] = {}

    # ------------------------------------------------------------------ views
    @property
    def hidden_size(self) -> int:
        return self.coef.numel()

    def with_threshold(self, threshold: float) -> "ProbeGate":
        """A copy with another decision threshold (rows with score > threshold are steered)."""
        meta = dict(self.metadata)
        meta["threshold_source"] = "given"
        return dataclasses.replace(self, threshold=check_threshold(threshold), metadata=meta)

    def _on(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        cached = self._cache.get(device)
        if cached is None:
            tensors = [self.mean, self.scale, self.coef, self.intercept]
            if self.type_coef is not None:
                tensors += [self.type_coef, self.type_intercept]
            cached = tuple(t.to(device) for t in tensors)
            self._cache[device] = cached
        return cached

    def _standardised(self, hidden: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        if hidden.dim() != 2 or hidden.shape[-1] != self.hidden_size:
            raise SteerInputError(
                f"the probe reads (batch, {self.hidden_size}) states of layer {self.layer}, got shape {tuple(hidden.shape)}"
            )
        params = self._on(hidden.device)
        mean, scale = params[0], params[1]
        return (hidden.to(torch.float32) - mean) / scale, params

    def logit(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, d) states -> (B,) float32 logits ``((h - mean) / scale) @ coef + intercept``."""
        z, params = self._standardised(hidden)
        return z @ params[2] + params[3]

    def score(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, d) last-prompt-token states of ``layer`` -> (B,) float32 risk scores in [0, 1]."""
        return torch.sigmoid(self.logit(hidden))

    def decide(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B,) bool: rows the gate would steer."""
        return self.score(hidden) > self.threshold

    def risk_type(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, K) probabilities over ``type_classes`` from the risk-type head (softmax)."""
        if self.type_coef is None:
            raise SteerInputError("this probe has no risk-type head (fit it with a category column)")
        z, params = self._standardised(hidden)
        return torch.softmax(z @ params[4].T + params[5], dim=-1)

    # ------------------------------------------------------------------ model check
    def check_model(self, adapter: ModelAdapter, allow_other_weights: bool = False) -> None:
        """Refuse a model this probe was not fitted on; the error names both models."""
        refit = "fit a probe for this model with `steer probe`"
        check_fingerprint(
            self.metadata.get("model"),
            adapter,
            what="probe",
            remedy=refit,
            hidden_size=self.hidden_size,
            allow_other_weights=allow_other_weights,
        )
        if self.layer >= adapter.num_layers:
            raise ModelMismatchError(
                f"the probe reads layer {self.layer}, which does not exist in "
                f"{adapter.fingerprint()['name_or_path']!r} ({adapter.num_layers} layers); {refit}"
            )

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (temp file + rename) as safetensors + JSON metadata; returns the path."""
        meta = dict(self.metadata)
        meta.update(
            layer=self.layer,
            hidden_size=self.hidden_size,
            threshold=self.threshold,
            classes=list(self.classes),
            type_classes=None if self.type_classes is None else list(self.type_classes),
        )
        tensors = {
            "mean": self.mean.contiguous(),
            "scale": self.scale.contiguous(),
            "coef": self.coef.contiguous(),
            "intercept": self.intercept.contiguous(),
        }
        if self.type_coef is not None:
            tensors["type_coef"] = self.type_coef.contiguous()
            tensors["type_intercept"] = self.type_intercept.contiguous()
        self.metadata = write_artifact(path, tensors, meta, KIND)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ProbeGate":
        """Read a probe file (file, kind and version checks: :func:`steer.artifact.read_artifact`), refusing an incomplete one."""
        target = Path(path)
        tensors, meta = read_artifact(target, KIND)
        # own, freshly allocated copies: tensors read from the file can sit at unaligned addresses,
        # where the vectorised dot product in logit() sums in another order -- scores then differed
        # from the fitted gate's in the last bit (a round trip must give the same scores)
        tensors = {name: tensor.clone() for name, tensor in tensors.items()}
        missing = [k for k in ("mean", "scale", "coef", "intercept") if k not in tensors]
        if missing or "layer" not in meta:
            raise SteerInputError(f"{target}: incomplete probe file (missing {missing or ['layer']})")
        try:
            gate = cls(
                layer=meta["layer"],
                mean=tensors["mean"],
                scale=tensors["scale"],
                coef=tensors["coef"],
                intercept=tensors["intercept"],
                threshold=meta.get("threshold", DEFAULT_THRESHOLD),
                classes=tuple(meta.get("classes") or ("benign", "harmful")),
                metadata=meta,
                type_coef=tensors.get("type_coef"),
                type_intercept=tensors.get("type_intercept"),
                type_classes=tuple(meta["type_classes"]) if meta.get("type_classes") else None,
            )
        except SteerInputError as err:
            raise SteerInputError(f"{target}: {err}") from None
        if meta.get("hidden_size") not in (None, gate.hidden_size):
            raise SteerInputError(f"{target}: metadata says d={meta['hidden_size']}, tensors have {gate.hidden_size}")
        return gate

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProbeGate):
            return NotImplemented

        def same(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
            return (a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))

        return (
            self.layer == other.layer
            and self.threshold == other.threshold
            and self.classes == other.classes
            and self.type_classes == other.type_classes
            and all(same(getattr(self, n), getattr(other, n)) for n in ("mean", "scale", "coef", "intercept", "type_coef", "type_intercept"))
        )

    __hash__ = None  # type: ignore[assignment]


def as_gate(source: "ProbeGate | str | os.PathLike") -> ProbeGate:
    """Accept a ProbeGate or a path to a probe file."""
    if isinstance(source, ProbeGate):
        return source
    if isinstance(source, (str, os.PathLike)):
        return ProbeGate.load(source)
    raise SteerInputError(f"cannot use {type(source).__name__} as a gate: give a probe file or a ProbeGate")
