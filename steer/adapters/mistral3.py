"""Mistral 3 (`Mistral3ForConditionalGeneration`: Mistral-Small-3.1/3.2-24B, with a Pixtral
vision tower).

* Decoder layers: ``model.language_model.layers``.
* The Pixtral processor expands ``[IMG]`` into one row of ``[IMG]`` tokens per
  ``patch_size * spatial_merge_size`` pixels of height, each row ended by ``[IMG_BREAK]``
  and the last by ``[IMG_END]``. Only ``[IMG]`` (``config.image_token_id``) receives image
  features; the break/end tokens are text-side, so ``after_image`` starts at ``[IMG_END]``.
* Images keep their aspect ratio (longest edge up to ``size["longest_edge"]``, 1540 px on
  the hub), so the token count depends on the image size; the content-free image is a
  square of that longest edge.
"""

from __future__ import annotations

from steer.adapters.base import ModelAdapter


class Mistral3Adapter(ModelAdapter):
    family = "mistral3"
    architectures = ("Mistral3ForConditionalGeneration",)
    model_types = ("mistral3",)
    layers_path = "model.language_model.layers"
    projector_path = "model.multi_modal_projector"

    def fallback_prompt(self, prompt: str, with_image: bool) -> str:
        image = "[IMG]" if with_image else ""
        return f"<s>[INST]{image}{prompt}[/INST]"
