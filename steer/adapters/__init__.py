"""Model-family adapters and the lookup that picks one for a loaded model.

See :mod:`steer.adapters.base` for the interface and the layer-index convention.
"""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from steer.adapters import mllama
from steer.adapters.base import NULL_IMAGE_KINDS, ModelAdapter
from steer.adapters.generic import GENERIC_SUFFIX, GenericVLMAdapter
from steer.errors import UnsupportedModelError

# (module, class) of every family, in lookup order. Modules are imported lazily so that
# a family whose processor needs an optional dependency does not break the others.
_FAMILIES: tuple[tuple[str, str], ...] = (
    ("steer.adapters.llava", "LlavaAdapter"),
    ("steer.adapters.llava_next", "LlavaNextAdapter"),
    ("steer.adapters.qwen2_vl", "Qwen2VLAdapter"),
    ("steer.adapters.idefics3", "Idefics3Adapter"),
    ("steer.adapters.gemma3", "Gemma3Adapter"),
    ("steer.adapters.qwen3_vl", "Qwen3VLAdapter"),
    ("steer.adapters.llava_onevision", "LlavaOnevisionAdapter"),
    ("steer.adapters.mistral3", "Mistral3Adapter"),
    ("steer.adapters.internvl", "InternVLAdapter"),
    ("steer.adapters.causal_lm", "CausalLMAdapter"),
)


def adapter_classes() -> list[type[ModelAdapter]]:
    """Every adapter class whose module imports."""
    classes = []
    for module_name, class_name in _FAMILIES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        classes.append(getattr(module, class_name))
    return classes


def supported_families() -> str:
    return ", ".join(f"{cls.family} ({'/'.join(cls.architectures)})" for cls in adapter_classes())


def get_adapter(model: nn.Module, processor: Any) -> ModelAdapter:
    """The adapter for ``model``, chosen by class name, then by ``config.model_type``; an
    unknown ``*ForConditionalGeneration`` gets the checked guesses of
    :class:`~steer.adapters.generic.GenericVLMAdapter`."""
    name = model.__class__.__name__
    model_type = getattr(model.config, "model_type", "")
    if name in mllama.ARCHITECTURES or model_type in mllama.MODEL_TYPES:
        raise UnsupportedModelError(mllama.REFUSAL)
    classes = adapter_classes()
    for cls in classes:
        if name in cls.architectures:
            return cls(model, processor)
    for cls in classes:
        if model_type in cls.model_types:
            return cls(model, processor)
    if name.endswith(GENERIC_SUFFIX):
        return GenericVLMAdapter(model, processor)
    raise UnsupportedModelError(
        f"no steer adapter for {name} (model_type={model_type!r}). Supported: {supported_families()}; any other "
        f"*{GENERIC_SUFFIX} with image tokens gets a checked generic adapter. "
        "To add one, subclass steer.adapters.base.ModelAdapter (set family, architectures, "
        "layers_path; override image_token_mask/fallback_prompt if needed) and list it in "
        "steer/adapters/__init__.py."
    )


__all__ = ["ModelAdapter", "NULL_IMAGE_KINDS", "adapter_classes", "get_adapter", "supported_families"]
