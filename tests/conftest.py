"""Shared fixtures: tiny offline checkpoints of every supported family.

* ``tiny_model_path(family) -> Path``: the checkpoint dir, built once per session.
* ``tiny_loaded(family) -> (model, processor)``: loaded with ``from_pretrained`` exactly as
  a hub model (``AutoModelForImageTextToText`` + ``AutoProcessor``; for ``"llama"``
  ``AutoModelForCausalLM`` + ``AutoTokenizer``), in eval mode, cached once per session.
  The model object is shared between tests: remove any hook you register.

Families: ``tests.tiny_models.ALL_FAMILIES`` / ``VLM_FAMILIES``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from tests.tiny_models import ALL_FAMILIES, VLM_FAMILIES, build_tiny_model  # noqa: E402

__all__ = ["ALL_FAMILIES", "VLM_FAMILIES"]


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """Factory: ``tiny_model_path("llava") -> Path`` of a saved tiny checkpoint."""
    cache: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in cache:
            if family not in ALL_FAMILIES:
                raise ValueError(f"unknown tiny family {family!r}; choose one of {', '.join(ALL_FAMILIES)}")
            cache[family] = build_tiny_model(family, tmp_path_factory.mktemp(f"tiny_{family}"))
        return cache[family]

    return get


def load_tiny(path: Path, family: str):
    """(model, processor-or-tokenizer) from a tiny checkpoint dir, as for a hub model."""
    if family in VLM_FAMILIES:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        model = AutoModelForImageTextToText.from_pretrained(path)
        processor = AutoProcessor.from_pretrained(path)
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(path)
        processor = AutoTokenizer.from_pretrained(path)
    return model.eval(), processor


@pytest.fixture(scope="session")
def tiny_loaded(tiny_model_path):
    """Factory: ``tiny_loaded("qwen2_vl") -> (model, processor)``, eval mode, cached."""
    cache: dict[str, tuple] = {}

    def get(family: str):
        if family not in cache:
            cache[family] = load_tiny(tiny_model_path(family), family)
        return cache[family]

    return get
