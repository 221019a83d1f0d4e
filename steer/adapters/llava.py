"""LLaVA-1.5 (`LlavaForConditionalGeneration`).

The processor expands one ``<image>`` placeholder into ``num_image_tokens`` copies of the
image token, so image positions are exactly ``input_ids == config.image_token_id``.
"""

from __future__ import annotations

from steer.adapters.base import ModelAdapter


class LlavaAdapter(ModelAdapter):
    family = "llava"
    architectures = ("LlavaForConditionalGeneration",)
    model_types = ("llava",)
    layers_path = "model.language_model.layers"
    #: dotted path from the top-level model to the multimodal projector (TGA swaps it)
    projector_path = "model.multi_modal_projector"

    @property
    def projector_module(self):
        """The multimodal projector (vision features -> LLM embeddings)."""
        from steer.adapters.base import _get_path

        return _get_path(self.model, self.projector_path)

    def fallback_prompt(self, prompt: str, with_image: bool) -> str:
        # The llava-hf 1.5 conversation format.
        image = "<image>\n" if with_image else ""
        return f"USER: {image}{prompt} ASSISTANT:"
