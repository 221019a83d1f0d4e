"""InternVL 3 / 3.5 in the transformers layout (`InternVLForConditionalGeneration`: the
``OpenGVLab/InternVL3-*-hf`` checkpoints; the original ``trust_remote_code`` repos are a
different class and are not supported).

* Decoder layers: ``model.language_model.layers`` (a Qwen2/Qwen3 LLM).
* The processor expands the ``<IMG_CONTEXT>`` placeholder into
  ``<img>`` + ``image_seq_length`` x ``<IMG_CONTEXT>`` per tile + ``</img>``; the image is
  cut into up to ``max_patches`` tiles plus a thumbnail, so the count depends on its
  aspect ratio (256 tokens per 448 px tile on the hub). Only ``<IMG_CONTEXT>``
  (``config.image_token_id``) receives features; ``<img>``/``</img>`` are text-side.
* ``content_free_image`` is one tile (``size``), which the processor does not split.
"""

from __future__ import annotations

from steer.adapters.base import ModelAdapter


class InternVLAdapter(ModelAdapter):
    family = "internvl"
    architectures = ("InternVLForConditionalGeneration",)
    model_types = ("internvl",)
    layers_path = "model.language_model.layers"
    projector_path = "model.multi_modal_projector"

    def fallback_prompt(self, prompt: str, with_image: bool) -> str:
        image = "<IMG_CONTEXT>\n" if with_image else ""
        return f"<|im_start|>user\n{image}{prompt}<|im_end|>\n<|im_start|>assistant\n"
