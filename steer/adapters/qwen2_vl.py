"""Qwen2-VL and Qwen2.5-VL (`Qwen2VLForConditionalGeneration`,
`Qwen2_5_VLForConditionalGeneration`): identical layout for steering.

* Decoder layers: ``model.language_model.layers``.
* The processor expands ``<|vision_start|><|image_pad|><|vision_end|>`` into
  ``t*h*w / merge_size**2`` copies of ``<|image_pad|>`` (``config.image_token_id``); only
  those count as image positions (the start/end markers are text-side tokens).
* The processor also returns ``mm_token_type_ids``, which the model needs for M-RoPE
  with images; :meth:`build_inputs` passes it through.
* The image processor's ``size`` is a *pixel-count* range
  (``{"shortest_edge": min_pixels, "longest_edge": max_pixels}``), not a side length, so
  :meth:`image_size` picks a square side itself (see there).
"""

from __future__ import annotations

import math

from steer.adapters.base import ModelAdapter
from steer.errors import SteerInputError

#: side (px) of the content-free image when the pixel range allows it: 448 = 16 x 28,
#: i.e. 256 visual tokens for the hub models, a typical photo-sized input
TARGET_SIDE = 448


class Qwen2VLAdapter(ModelAdapter):
    family = "qwen2_vl"
    architectures = ("Qwen2VLForConditionalGeneration", "Qwen2_5_VLForConditionalGeneration")
    model_types = ("qwen2_vl", "qwen2_5_vl")
    layers_path = "model.language_model.layers"
    #: M-RoPE: text positions after an image depend on its grid, which a cached text-only step does not see
    image_prefix_shareable = False

    def image_size(self) -> tuple[int, int]:
        """A square side that is a multiple of ``patch_size * merge_size`` (so the
        processor does not resize it) and whose area lies in [min_pixels, max_pixels];
        :data:`TARGET_SIDE` when that fits."""
        ip = getattr(self.processor, "image_processor", None)
        if ip is None:
            raise SteerInputError(f"{self.family}: no image processor")
        size = getattr(ip, "size", None) or {}
        get = size.get if hasattr(size, "get") else lambda k, d=None: getattr(size, k, d)
        min_px = get("shortest_edge") or getattr(ip, "min_pixels", None) or 56 * 56
        max_px = get("longest_edge") or getattr(ip, "max_pixels", None) or 28 * 28 * 1280
        factor = int(getattr(ip, "patch_size", 14) or 14) * int(getattr(ip, "merge_size", 2) or 2)
        side = max(factor, round(TARGET_SIDE / factor) * factor)
        while side * side > max_px and side > factor:
            side -= factor
        if side * side < min_px:
            side = math.ceil(math.sqrt(min_px) / factor) * factor
        return side, side

    def fallback_prompt(self, prompt: str, with_image: bool) -> str:
        image = "<|vision_start|><|image_pad|><|vision_end|>" if with_image else ""
        return f"<|im_start|>user\n{image}{prompt}<|im_end|>\n<|im_start|>assistant\n"
