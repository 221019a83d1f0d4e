"""Qwen3-VL (`Qwen3VLForConditionalGeneration`: Qwen3-VL-2B/4B/8B/32B).

Same prompt layout as Qwen2-VL (``<|vision_start|><|image_pad|>*n<|vision_end|>``,
``config.image_token_id`` marks the image positions, pixel-range image size, patch 16 and
merge 2, so 32 px per visual token side), so it reuses :class:`Qwen2VLAdapter`.

What differs for steering: *DeepStack*. Features from a few vision-tower layers are added
to the LLM's hidden states at the image positions right after the first
``len(deepstack_visual_indexes)`` decoder layers (3 on the hub models). They touch image
positions only, so text-side steering (``after_image``, ``prompt``, ``last``) composes with
them unchanged; a shift measured at those first layers includes the DeepStack injection.
The TGA projector is the final ``model.visual.merger``; the DeepStack mergers are left as
trained.
"""

from __future__ import annotations

from steer.adapters.qwen2_vl import Qwen2VLAdapter


class Qwen3VLAdapter(Qwen2VLAdapter):
    family = "qwen3_vl"
    architectures = ("Qwen3VLForConditionalGeneration",)
    model_types = ("qwen3_vl",)
    projector_path = "model.visual.merger"
