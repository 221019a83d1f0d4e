"""Gemma 3 (`Gemma3ForConditionalGeneration`: gemma-3-4b/12b/27b-it).

* Decoder layers: ``model.language_model.layers`` (sliding-window and global layers
  interleaved, 5:1; both are ordinary decoder layers for steering).
* The processor expands ``<start_of_image>`` into
  ``\\n\\n<start_of_image>`` + ``mm_tokens_per_image`` x ``<image_soft_token>`` +
  ``<end_of_image>\\n\\n`` (256 soft tokens on the hub models, whatever the image size:
  SigLIP at 896 px, pooled 4x4). Only the soft tokens (``config.image_token_id``) receive
  image features, so they are the image positions. Note ``processor.image_token_id`` is
  the ``<start_of_image>`` id, not the soft token's.
* The processor returns ``token_type_ids`` (1 on image positions): the model makes
  attention *bidirectional* inside each image block from them, so they must reach the
  model (the base adapter drops them for the other families).
* Images are given per row (a list of lists), because the processor counts
  ``<start_of_image>`` per prompt; a text-only row gets an empty list.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from steer.adapters.base import ModelAdapter


class Gemma3Adapter(ModelAdapter):
    family = "gemma3"
    architectures = ("Gemma3ForConditionalGeneration",)
    model_types = ("gemma3",)
    layers_path = "model.language_model.layers"
    projector_path = "model.multi_modal_projector"

    def _call_processor(self, texts: list[str], images: list[Image.Image]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
        if images:
            marker = self.processor.boi_token
            pool = iter(images)
            kwargs["images"] = [[next(pool)] if marker in text else [] for text in texts]
        return dict(self.processor(**kwargs))

    def fallback_prompt(self, prompt: str, with_image: bool) -> str:
        image = "<start_of_image>" if with_image else ""
        return f"<bos><start_of_turn>user\n{image}{prompt}<end_of_turn>\n<start_of_turn>model\n"
