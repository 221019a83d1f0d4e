"""Text-only causal LMs (Llama, Qwen2, Mistral, ... any ``*ForCausalLM`` with
``model.layers``), for LLM-only steering with the same engine and vector files."""

from __future__ import annotations

from steer.adapters.base import ModelAdapter


class CausalLMAdapter(ModelAdapter):
    family = "causal_lm"
    architectures = (
        "LlamaForCausalLM",
        "Qwen2ForCausalLM",
        "Qwen3ForCausalLM",
        "MistralForCausalLM",
        "GemmaForCausalLM",
        "Gemma2ForCausalLM",
        "Phi3ForCausalLM",
    )
    model_types = ("llama", "qwen2", "qwen3", "mistral", "gemma", "gemma2", "phi3")
    layers_path = "model.layers"
    supports_images = False
