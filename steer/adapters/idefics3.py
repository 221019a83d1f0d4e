"""Idefics3 and SmolVLM (`Idefics3ForConditionalGeneration`,
`SmolVLMForConditionalGeneration`, generated from Idefics3 with the same layout).

* Decoder layers: ``model.text_model.layers`` (not ``language_model``).
* The processor expands ``<image>`` into
  ``<fake_token_around_image><global-img><image>*image_seq_len<fake_token_around_image>``
  (and, with image splitting, one such block per tile with ``<row_i_col_j>`` tags); only
  the ``<image>`` tokens (``config.image_token_id``) receive image features, so they are
  the image positions; the wrapper tags are text-side tokens.
* The image processor rescales every image's longest edge to ``size["longest_edge"]``
  (4 x 364 for the hub Idefics3; upscaling small images) and, with
  ``do_image_splitting``, tiles it into ``max_image_size`` squares plus a global view, so
  a square image's token count does not depend on its pixel size. The content-free image
  is one tile (``max_image_size``) square, which the processor treats like any image.
  Note the model treats an all-zero ``pixel_values`` tile as batch padding and drops it.
"""

from __future__ import annotations

from steer.adapters.base import ModelAdapter


class Idefics3Adapter(ModelAdapter):
    family = "idefics3"
    architectures = ("Idefics3ForConditionalGeneration", "SmolVLMForConditionalGeneration")
    model_types = ("idefics3", "smolvlm")
    layers_path = "model.text_model.layers"

    def image_size(self) -> tuple[int, int]:
        ip = getattr(self.processor, "image_processor", None)
        tile = getattr(ip, "max_image_size", None)
        if tile:
            side = tile.get("longest_edge") if hasattr(tile, "get") else getattr(tile, "longest_edge", None)
            if side:
                return int(side), int(side)
        return super().image_size()

    def fallback_prompt(self, prompt: str, with_image: bool) -> str:
        image = "<image>" if with_image else ""
        return f"User:{image}{prompt}<end_of_utterance>\nAssistant:"
