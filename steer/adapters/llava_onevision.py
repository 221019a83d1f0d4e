"""LLaVA-OneVision (`LlavaOnevisionForConditionalGeneration`: llava-onevision-qwen2-0.5b/7b/72b).

* Decoder layers: ``model.language_model.layers`` (a Qwen2 LLM).
* Like LLaVA-NeXT, the processor expands each ``<image>`` into the any-res feature count
  (base 384 px SigLIP tile = 729 tokens, plus the high-res grid with one newline token per
  row, pooled down when it exceeds ``anyres_max_9``), all with ``config.image_token_id``,
  so image positions are exactly ``input_ids == image_token_id``; the count depends on the
  image size.
* ``content_free_image`` uses the processor's ``size`` (the base tile).
"""

from __future__ import annotations

from steer.adapters.base import ModelAdapter


class LlavaOnevisionAdapter(ModelAdapter):
    family = "llava_onevision"
    architectures = ("LlavaOnevisionForConditionalGeneration",)
    model_types = ("llava_onevision",)
    layers_path = "model.language_model.layers"
    projector_path = "model.multi_modal_projector"

    def fallback_prompt(self, prompt: str, with_image: bool) -> str:
        image = "<image>\n" if with_image else ""
        return f"<|im_start|>user {image}{prompt}<|im_end|><|im_start|>assistant\n"
