"""Projector artifacts: a TGA-trained multimodal projector, swapped in at load time.

TGA (arXiv 2410.12662) retrains a VLM's projector so that image tokens land where the
LLM's text-trained safety can read them. `steer` keeps the base model files untouched:
``steer train-tga`` writes the trained projector as an artifact, and
``SteeredModel.from_pretrained(..., projector=PATH)`` / ``steer generate --projector PATH``
copy its weights into the loaded model's projector, in memory only.

Format: one ``safetensors`` file. Tensors ``projector.<name>`` = the projector's
``state_dict`` (float32); with ``--train-llm`` also ``llm.<name>`` = the trained decoder
weights of the language model (relative to the language model module). The header
metadata holds one key, ``steer``, whose value is a JSON object:

``format_version``, ``kind`` ("tga_projector"), ``model`` (fingerprint of the *base*
model: family, model_type, hidden_size, num_layers, name_or_path, weights_sha256),
``projector_class``, ``projector_path``, ``layers`` (the guide band), ``layer_band``
(how the band was chosen), ``data_sha256``, ``n_samples``, ``steps``, ``lr``,
``guide_weight``, ``batch_size``, ``train_llm``, ``prompt_format``, ``retriever``,
``losses`` (per step: ``lm``, ``guide``, ``cos_ic``), ``final`` (mean of the last losses),
``seed``, ``toolkit_version``, ``created``.

This module is runtime code: it never imports :mod:`calibration`. Writes are atomic.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from steer.adapters.base import ModelAdapter
from steer.artifact import check_fingerprint, read_artifact, write_artifact
from steer.errors import ModelMismatchError, SteerInputError

KIND = "tga_projector"
PROJECTOR_PREFIX = "projector."
LLM_PREFIX = "llm."

#: where projectors live in the HF VLM families (tried when the adapter names none)
_PROJECTOR_CANDIDATES = (
    "model.multi_modal_projector",  # LLaVA, LLaVA-NeXT
    "multi_modal_projector",
    "model.connector",  # Idefics3 / SmolVLM
    "model.visual.merger",  # Qwen2-VL
    "model.mm_projector",
)


def _get_path(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def projector_path(adapter: ModelAdapter) -> str:
    """Dotted path (from the top-level model) of the adapter's multimodal projector."""
    path = getattr(adapter, "projector_path", None)
    if path:
        return str(path)
    for candidate in _PROJECTOR_CANDIDATES:
        try:
            module = _get_path(adapter.model, candidate)
        except AttributeError:
            continue
        if isinstance(module, nn.Module):
            return candidate
    raise SteerInputError(
        f"{adapter.family} model {adapter.fingerprint()['name_or_path']!r} has no multimodal projector that steer "
        "knows (TGA projectors need a vision-language model; set projector_path on its adapter)"
    )


def projector_module(adapter: ModelAdapter) -> nn.Module:
    """The multimodal projector module of the adapter's model."""
    module = getattr(adapter, "projector_module", None)
    if isinstance(module, nn.Module):
        return module
    return _get_path(adapter.model, projector_path(adapter))


def language_model_module(adapter: ModelAdapter) -> nn.Module:
    """The text decoder (the module that holds ``decoder_layers`` and the final norm)."""
    parent = adapter.layers_path.rsplit(".", 1)[0]
    return _get_path(adapter.model, parent)


@dataclass
class ProjectorArtifact:
    """A trained projector ``state_dict`` (+ optional LLM weights) with provenance."""

    projector: dict[str, torch.Tensor]
    metadata: dict[str, Any] = field(default_factory=dict)
    llm: dict[str, torch.Tensor] | None = None

    def __post_init__(self) -> None:
        if not self.projector:
            raise SteerInputError("a projector artifact needs the projector's weights")
        self.projector = {k: torch.as_tensor(v).detach().float().cpu().contiguous() for k, v in self.projector.items()}
        if self.llm is not None:
            self.llm = {k: torch.as_tensor(v).detach().float().cpu().contiguous() for k, v in self.llm.items()} or None
        meta = dict(self.metadata)
        meta.setdefault("kind", KIND)
        meta["train_llm"] = bool(meta.get("train_llm", False) or self.llm is not None)
        self.metadata = meta

    # ------------------------------------------------------------------ model check
    def check_model(self, adapter: ModelAdapter) -> None:
        """Refuse a model this projector was not trained for; the error names both."""
        mine = self.metadata.get("model") or {}
        theirs = adapter.fingerprint()
        made_for = f"{mine.get('name_or_path') or 'an unknown model'!r} (weights {mine.get('weights_sha256', '?')})"
        given = f"{theirs['name_or_path']!r} (weights {theirs['weights_sha256']})"
        if mine.get("family") not in (None, theirs["family"]):
            raise ModelMismatchError(
                f"projector artifact was trained for a {mine['family']} model {made_for}, but the model is a "
                f"{theirs['family']} model {given}; train one for this model with `steer train-tga`"
            )
        check_fingerprint(mine, adapter, what="projector artifact", remedy="train one for this model with `steer train-tga`")
        module = projector_module(adapter)
        own = module.state_dict()
        missing = sorted(set(own) - set(self.projector))
        extra = sorted(set(self.projector) - set(own))
        if missing or extra:
            raise ModelMismatchError(
                f"projector artifact (for {made_for}) does not fit the projector of {given}: "
                f"missing {missing[:5]}, unexpected {extra[:5]}"
            )
        for name, tensor in self.projector.items():
            if tuple(own[name].shape) != tuple(tensor.shape):
                raise ModelMismatchError(
                    f"projector artifact (for {made_for}) has {name} of shape {tuple(tensor.shape)}, the projector of "
                    f"{given} has {tuple(own[name].shape)}"
                )
        if self.llm is not None:
            lm_state = language_model_module(adapter).state_dict()
            bad = [k for k, v in self.llm.items() if k not in lm_state or tuple(lm_state[k].shape) != tuple(v.shape)]
            if bad:
                raise ModelMismatchError(
                    f"projector artifact (for {made_for}) holds language-model weights that do not fit {given}: {bad[:5]}"
                )

    # ------------------------------------------------------------------ apply
    @torch.no_grad()
    def apply(self, adapter: ModelAdapter) -> None:
        """Copy the weights into the adapter's model (in memory; checks the model first)."""
        self.check_model(adapter)
        module = projector_module(adapter)
        own = module.state_dict()
        for name, tensor in self.projector.items():
            own[name].copy_(tensor.to(device=own[name].device, dtype=own[name].dtype))
        if self.llm is not None:
            lm_state = language_model_module(adapter).state_dict()
            for name, tensor in self.llm.items():
                lm_state[name].copy_(tensor.to(device=lm_state[name].device, dtype=lm_state[name].dtype))

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (temp file + rename); returns the path."""
        meta = dict(self.metadata, dtype="float32")
        tensors = {PROJECTOR_PREFIX + k: v for k, v in self.projector.items()}
        if self.llm is not None:
            tensors.update({LLM_PREFIX + k: v for k, v in self.llm.items()})
        self.metadata = write_artifact(path, tensors, meta, KIND)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ProjectorArtifact":
        """Read a projector artifact (file, kind and version checks: :func:`steer.artifact.read_artifact`)."""
        target = Path(path)
        tensors, meta = read_artifact(target, KIND)
        projector = {k[len(PROJECTOR_PREFIX) :]: v for k, v in tensors.items() if k.startswith(PROJECTOR_PREFIX)}
        llm = {k[len(LLM_PREFIX) :]: v for k, v in tensors.items() if k.startswith(LLM_PREFIX)}
        if not projector:
            raise SteerInputError(f"{target} holds no projector weights")
        return cls(projector, meta, llm or None)


def as_artifact(source: "ProjectorArtifact | str | os.PathLike | Mapping[str, torch.Tensor]") -> ProjectorArtifact:
    if isinstance(source, ProjectorArtifact):
        return source
    if isinstance(source, (str, os.PathLike)):
        return ProjectorArtifact.load(source)
    if isinstance(source, Mapping):
        return ProjectorArtifact(dict(source))
    raise SteerInputError(f"cannot use {type(source).__name__} as a projector artifact")


def load_projector(sm: Any, path: "str | os.PathLike | ProjectorArtifact") -> dict:
    """Swap a TGA projector artifact into ``sm.model`` (in memory); returns its metadata.

    ``sm`` is a :class:`steer.model.SteeredModel` (or anything with an ``adapter``).
    Raises :class:`steer.errors.ModelMismatchError`, naming both models, when the
    artifact was trained for another model.
    """
    adapter = sm if isinstance(sm, ModelAdapter) else sm.adapter
    if not adapter.supports_images:
        raise SteerInputError(f"{adapter.family} models take no images, so they have no projector to swap")
    artifact = as_artifact(path)
    artifact.apply(adapter)
    meta = dict(artifact.metadata)
    if isinstance(path, (str, os.PathLike)):
        meta["path"] = str(path)
    if not isinstance(sm, ModelAdapter):
        try:
            sm.projector_metadata = meta
        except AttributeError:
            pass
    return meta
