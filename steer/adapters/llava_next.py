"""LLaVA-NeXT / LLaVA-1.6 (`LlavaNextForConditionalGeneration`).

Same layout as LLaVA-1.5 (``model.language_model.layers``). The processor expands each
``<image>`` into the number of features of the image's any-res tiling (base tile + the
unpadded high-res grid + one newline token per row), all with the one image token id, so
image positions are exactly ``input_ids == config.image_token_id``; the count depends on
the image's size, unlike LLaVA-1.5. ``content_free_image`` uses the processor's
``crop_size`` (the base tile, e.g. 336 px).
"""

from __future__ import annotations

from steer.adapters.base import ModelAdapter


class LlavaNextAdapter(ModelAdapter):
    family = "llava_next"
    architectures = ("LlavaNextForConditionalGeneration",)
    model_types = ("llava_next",)
    layers_path = "model.language_model.layers"

    def fallback_prompt(self, prompt: str, with_image: bool) -> str:
        # llava-hf/llava-v1.6-mistral-7b-hf format
        image = "<image>\n" if with_image else ""
        return f"[INST] {image}{prompt} [/INST]"
