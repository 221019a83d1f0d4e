"""Llama 3.2 Vision (`MllamaForConditionalGeneration`): refused, on purpose.

Mllama puts no image features into the token sequence. The prompt holds one
``<|image|>`` token; the image reaches the text through gated *cross-attention* layers
(every 5th decoder layer: 8 of 40 in the 11B, 20 of 100 in the 90B), for the tokens the
``cross_attention_mask`` marks (those from ``<|image|>`` on). On text-only input the model
skips those layers altogether.

What CMRM would mean there, and why steer refuses rather than guesses:

* ``image`` positions: none hold image content; only the ``<|image|>`` placeholder could
  stand for them, and steering it changes nothing the cross-attention reads.
* ``after_image`` / ``prompt``: well defined (the tokens that attend to the image), but the
  shift CMRM subtracts is image-view minus text-only-view *per decoder layer*, and on the
  text-only view the cross-attention layers do not run: at 1 layer in 5 there is no
  text-only state to subtract from, and a vector file indexed by layer would mean
  different modules on image and text-only inputs.
* A faithful port would steer only the self-attention layers' outputs, calibrate with a
  content-free image against a text-only pass that still runs the skipped layers as
  identity, and route images per row (the processor wants ``[[img], []]``); that is a
  different engine contract, not an adapter, so it is left to a later change.
"""

from __future__ import annotations

ARCHITECTURES = ("MllamaForConditionalGeneration",)
MODEL_TYPES = ("mllama",)

#: the one-line error ``get_adapter`` raises for these models
REFUSAL = (
    "Llama 3.2 Vision (MllamaForConditionalGeneration) is not supported: it feeds the image through "
    "cross-attention layers that it skips on text-only input, not through image tokens in the sequence, so "
    "CMRM's per-layer image-vs-text shift and the image/after_image positions have no consistent meaning there "
    "(see docs/real-models.md, 'Llama 3.2 Vision'); use a family with image tokens, e.g. Qwen2.5-VL or Gemma 3"
)
