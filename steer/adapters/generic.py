"""A checked best guess for a vision-language model no family adapter knows.

An unknown ``*ForConditionalGeneration`` (a new HF class, a fine-tune with a renamed
class) usually has the same three things steer needs from a family: a language model
whose decoder layers are a ``ModuleList`` at one of a few paths, an image token id in the
config, and a processor that expands the image placeholder into that token. This adapter
guesses those, then *checks* them on one first forward with a content-free image:

* every guessed decoder layer runs once and returns states of the text hidden size;
* the positions where the language model's input embeddings differ from the token
  embeddings (the ones the model filled with image features) are exactly
  ``input_ids == image_token_id``.

What it cannot check (prompt format, content-free image size, TGA projector path) it names
in one warning line. Structure it cannot find is a one-line :class:`UnsupportedModelError`
that names what was missing.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from steer.adapters.base import ModelAdapter, _get_path
from steer.errors import SteerInputError, UnsupportedModelError

logger = logging.getLogger("steer")

#: class-name ending that makes an unknown model a candidate for this adapter
GENERIC_SUFFIX = "ForConditionalGeneration"

#: where the HF VLM families keep the language model's decoder layers, most common first
LAYER_PATHS = (
    "model.language_model.layers",
    "model.text_model.layers",
    "model.language_model.model.layers",
    "language_model.model.layers",
    "language_model.layers",
    "model.layers",
)

_IMAGE_TOKEN_KEYS = ("image_token_id", "image_token_index")


def find_layers_path(model: nn.Module) -> str | None:
    """The first of :data:`LAYER_PATHS` holding a ``ModuleList`` as long as the text
    config's ``num_hidden_layers`` (None when none does)."""
    text_cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    expected = getattr(text_cfg, "num_hidden_layers", None)
    for path in LAYER_PATHS:
        try:
            layers = _get_path(model, path)
        except AttributeError:
            continue
        if isinstance(layers, nn.ModuleList) and len(layers) > 0 and expected in (None, len(layers)):
            return path
    return None


class GenericVLMAdapter(ModelAdapter):
    family = "generic"

    def __init__(self, model: nn.Module, processor: Any):
        name = model.__class__.__name__
        self.family = str(getattr(model.config, "model_type", "") or name)
        path = find_layers_path(model)
        if path is None:
            raise UnsupportedModelError(
                f"no steer adapter for {name} and no decoder layers where VLMs keep them "
                f"(tried {', '.join(LAYER_PATHS)} for a ModuleList of text_config.num_hidden_layers); "
                "write an adapter (steer/adapters/base.py says how)"
            )
        self.layers_path = path
        super().__init__(model, processor)
        token_key = next((k for k in _IMAGE_TOKEN_KEYS if getattr(model.config, k, None) is not None), None)
        if token_key is None:
            raise UnsupportedModelError(
                f"no steer adapter for {name}, and its config has no image token id ({' or '.join(_IMAGE_TOKEN_KEYS)}), "
                "so steer cannot tell image positions; write an adapter (steer/adapters/base.py says how)"
            )
        if processor is not None:
            self._check_first_forward()
        logger.warning(
            "steer: no dedicated adapter for %s (model_type %r); checked on a first forward: decoder layers = %s "
            "(%d), image positions = input_ids == %d (config.%s); guessed, unchecked: prompt format (%s), "
            "content-free image size (%s), TGA projector (%s)",
            name, self.family, path, self.num_layers, self.image_token_id, token_key,
            self._guess(self._prompt_source), self._guess(lambda: "x".join(map(str, self.image_size()))),
            self._guess(self._projector),
        )

    # ------------------------------------------------------------------ the check
    def _check_first_forward(self) -> None:
        """One forward with a content-free image, checking the guessed layers and image positions."""
        name = self.model.__class__.__name__
        try:
            inputs = self.build_inputs(["what is in this picture"], [self.content_free_image("noise")])
        except (SteerInputError, ValueError, TypeError, KeyError) as err:
            raise UnsupportedModelError(
                f"no steer adapter for {name}, and its processor did not take a prompt with an image "
                f"({str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}); write an adapter"
            ) from None
        text_model = _get_path(self.model, self.layers_path.rsplit(".", 1)[0])
        seen: dict[str, Any] = {}
        outputs: dict[int, torch.Tensor] = {}

        def pre_hook(module, args, kwargs):
            seen["inputs_embeds"] = kwargs.get("inputs_embeds")

        def layer_hook(i):
            def hook(module, args, output):
                outputs[i] = output[0] if isinstance(output, tuple) else output

            return hook

        handles = [text_model.register_forward_pre_hook(pre_hook, with_kwargs=True)]
        handles += [layer.register_forward_hook(layer_hook(i)) for i, layer in enumerate(self.decoder_layers)]
        try:
            with torch.no_grad():
                self.model(**inputs)
                token_embeds = self.model.get_input_embeddings()(inputs["input_ids"])
        except (ValueError, RuntimeError, TypeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UnsupportedModelError(
                f"no steer adapter for {name}, and a first forward with an image failed ({first}); write an adapter"
            ) from None
        finally:
            for handle in handles:
                handle.remove()
        missing = [i for i in range(self.num_layers) if i not in outputs]
        if missing or any(o.shape[-1] != self.hidden_size for o in outputs.values()):
            raise UnsupportedModelError(
                f"no steer adapter for {name}, and the guessed decoder layers {self.layers_path} did not all run "
                f"with the text hidden size {self.hidden_size} (layers not run: {missing or 'none'}); write an adapter"
            )
        received = seen.get("inputs_embeds")
        mask = self.image_token_mask(inputs["input_ids"])
        if received is None or received.shape != token_embeds.shape:
            raise UnsupportedModelError(
                f"no steer adapter for {name}, and its language model ({self.layers_path.rsplit('.', 1)[0]}) did not "
                "receive merged input embeddings, so where the image lands is unknown; write an adapter"
            )
        filled = (received != token_embeds).any(-1)
        if not mask.any() or not torch.equal(filled, mask):
            raise UnsupportedModelError(
                f"no steer adapter for {name}, and image features did not land exactly on input_ids == "
                f"{self.image_token_id} ({int(mask.sum())} such tokens, {int(filled.sum())} filled positions); "
                "write an adapter"
            )

    # ------------------------------------------------------------------ unchecked guesses
    def _prompt_source(self) -> str:
        if getattr(self.processor, "chat_template", None) or getattr(self.tokenizer, "chat_template", None):
            return "the processor's chat template"
        return "the bare prompt, no chat template found"

    def _projector(self) -> str:
        from steer.projector import projector_path

        return projector_path(self)

    @staticmethod
    def _guess(fn) -> str:
        try:
            return fn()
        except Exception as err:  # a guess that fails is reported, not fatal: only TGA / CMRM need it
            return f"none: {type(err).__name__}"
