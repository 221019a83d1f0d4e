"""The one interface behind which all model-family knowledge lives.

Everything else in `steer` (hook engine, calibration, evaluation) is model-agnostic and
talks to a model only through a :class:`ModelAdapter`. A family adapter answers:

* where the decoder layers of the *language model* are (``decoder_layers``);
* the hidden size and layer count;
* how to turn chat prompts (+ optional PIL images) into model inputs, left-padded;
* which sequence positions hold image tokens (``image_token_mask``);
* what a content-free image of the processor's size looks like (for CMRM).

Layer-index convention (used by vector files, CLI ``--layers`` and the API):
layer ``i`` is ``decoder_layers[i]``, 0-based, and its *output* is what HF returns as
``hidden_states[i + 1]`` (``hidden_states[0]`` is the embedding output). Note that
transformers 5 replaces ``hidden_states[-1]`` by the final-normed state, so for the last
layer the raw output differs from ``hidden_states[-1]``; `steer` always reads and writes
the raw decoder-layer output.

Adding a family: subclass :class:`ModelAdapter`, set ``family``, ``architectures`` and
``layers_path`` (and override what differs), then list it in
``steer/adapters/__init__.py``.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from steer.chat import is_conversation
from steer.errors import SteerInputError

NULL_IMAGE_KINDS = ("blank", "noise", "mean")


def _get_path(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


class ModelAdapter:
    """Model-family knowledge for one loaded HF model + its processor/tokenizer."""

    #: short family name, used in vector-file fingerprints and error messages
    family: ClassVar[str] = ""
    #: HF class names (``model.__class__.__name__`` / ``config.architectures``) it handles
    architectures: ClassVar[tuple[str, ...]] = ()
    #: ``model_type`` values of the top-level config it handles
    model_types: ClassVar[tuple[str, ...]] = ()
    #: dotted attribute path from the top-level model to the decoder ``nn.ModuleList``
    layers_path: ClassVar[str] = ""
    #: whether the family takes images at all
    supports_images: ClassVar[bool] = True
    #: whether a prompt's tokens after the image can run from a cached image prefix with
    #: plain sequential positions (``steer.sample_shift`` computes the content-free-image
    #: prefix once per model); False where positions depend on the image grid (M-RoPE)
    image_prefix_shareable: ClassVar[bool] = True
    #: the fixed question that makes the model put an image into words (self-caption anchoring,
    #: :mod:`steer.self_caption`); plain words so that small vocabularies hold them too
    caption_prompt: ClassVar[str] = "Describe the picture."
    #: token budget of one self-caption (greedy)
    caption_max_new_tokens: ClassVar[int] = 32

    def __init__(self, model: nn.Module, processor: Any):
        self.model = model
        self.processor = processor
        #: options the processor was loaded with (see :mod:`steer.processor_options`); set by the loader
        self.processor_kwargs: dict[str, Any] = {}
        #: use artifacts made with other processor options (the user said so)
        self.allow_other_processor_kwargs = False
        self._layers = _get_path(model, self.layers_path)
        if not isinstance(self._layers, nn.ModuleList) or len(self._layers) == 0:
            raise TypeError(f"{self.family}: {self.layers_path} is not a non-empty ModuleList")

    # ------------------------------------------------------------------ structure
    @property
    def decoder_layers(self) -> nn.ModuleList:
        """Decoder-layer modules of the language model; index i = layer i."""
        return self._layers

    @property
    def num_layers(self) -> int:
        return len(self._layers)

    @property
    def text_config(self) -> Any:
        cfg = self.model.config
        return getattr(cfg, "text_config", None) or cfg

    @property
    def hidden_size(self) -> int:
        return int(self.text_config.hidden_size)

    @property
    def model_type(self) -> str:
        return str(self.model.config.model_type)

    @property
    def image_token_id(self) -> int | None:
        """Token id that marks image positions in ``input_ids`` (None for text-only)."""
        if not self.supports_images:
            return None
        cfg = self.model.config
        for key in ("image_token_id", "image_token_index"):
            value = getattr(cfg, key, None)
            if value is not None:
                return int(value)
        raise SteerInputError(f"{self.family}: the model config names no image token id")

    @property
    def tokenizer(self) -> Any:
        return getattr(self.processor, "tokenizer", self.processor)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def decode_answers(self, generated: torch.Tensor, prompt_length: int) -> list[str]:
        """The new tokens of each ``generate`` row (those after ``prompt_length``) as text,
        special tokens dropped and outer whitespace stripped: the one way every generation
        path (hooks, nnsight, twin following, captions) turns tokens into an answer, so
        their answers compare equal string for string."""
        texts = self.tokenizer.batch_decode(generated[:, prompt_length:], skip_special_tokens=True)
        return [t.strip() for t in texts]

    # ------------------------------------------------------------------ positions
    def image_token_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Boolean mask (same shape as ``input_ids``) of positions holding image tokens."""
        token = self.image_token_id
        if token is None:
            return torch.zeros_like(input_ids, dtype=torch.bool)
        return input_ids == token

    # ------------------------------------------------------------------ prompts
    def format_prompt(self, prompt: "str | Sequence[dict]", with_image: bool) -> str:
        """The chat-formatted prompt text, with the image placeholder when ``with_image``.

        Uses the processor's chat template when it has one (as a user of the hub model
        would), else :meth:`fallback_prompt`. ``prompt`` may also be a chat conversation
        (:mod:`steer.chat`), system prompt included.
        """
        if with_image and not self.supports_images:
            raise SteerInputError(
                f"{self.family} models take no images; drop --image or use a vision-language model"
            )
        template_owner = self.processor if getattr(self.processor, "chat_template", None) else None
        if template_owner is None and getattr(self.tokenizer, "chat_template", None):
            template_owner = self.tokenizer
        if not isinstance(prompt, str):
            return self.format_conversation(prompt, with_image, template_owner)
        if template_owner is None:
            return self.fallback_prompt(prompt, with_image)
        content: list[dict[str, str]] = []
        if with_image:
            content.append({"type": "image"})
        content.append({"type": "text", "text": prompt})
        messages = [{"role": "user", "content": content}]
        if template_owner is self.tokenizer and not self.supports_images:
            messages = [{"role": "user", "content": prompt}]
        return template_owner.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def format_conversation(self, messages: Sequence[dict], with_image: bool, template_owner: Any) -> str:
        """A chat conversation through the chat template (a VLM processor's takes content parts,
        a text-only tokenizer's takes strings)."""
        from steer.chat import for_template, sole_user_text

        if template_owner is None:
            text = sole_user_text(messages)
            if text is None:
                raise SteerInputError(
                    f"{self.family} model has no chat template to format a multi-turn or system conversation; "
                    "give a plain prompt string or a single user message"
                )
            return self.fallback_prompt(text, with_image)
        parts = template_owner is not self.tokenizer or self.supports_images
        conversation = for_template(messages, with_image=with_image, parts=parts)
        return template_owner.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)

    def fallback_prompt(self, prompt: str, with_image: bool) -> str:
        """Prompt format used when the processor has no chat template."""
        return prompt

    def described_prompt(self, caption: str, prompt: str) -> str:
        """The text twin of an image + ``prompt`` query: the model's own caption of the image, then the prompt.

        An empty caption gives the prompt alone (the twin sample-level CMRM uses).
        """
        caption = caption.strip()
        return f"{caption}\n{prompt}" if caption else prompt

    def build_inputs(
        self,
        prompts: Sequence[str],
        images: Sequence[Image.Image | None] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Left-padded model inputs for a batch of (prompt, optional image) pairs.

        ``images[i] is None`` makes row i text-only. Left padding keeps every row's last
        prompt token at index -1, which the hook engine and calibration rely on.
        """
        if isinstance(prompts, str) or is_conversation(prompts):
            prompts = [prompts]
        if images is None:
            images = [None] * len(prompts)
        if len(images) != len(prompts):
            raise SteerInputError(f"got {len(prompts)} prompts but {len(images)} images")
        texts = [self.format_prompt(p, img is not None) for p, img in zip(prompts, images)]
        present = [img.convert("RGB") for img in images if img is not None]
        tok = self.tokenizer
        old_side = getattr(tok, "padding_side", "left")
        tok.padding_side = "left"
        try:
            encoded = self._call_processor(texts, present)
        finally:
            tok.padding_side = old_side
        device = self.device
        return {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in encoded.items()}

    def processor_inputs(self, texts: list[str], images: list[Image.Image]) -> dict[str, Any]:
        """The processor's tensors for formatted ``texts`` and the images they mention, in
        the tokenizer's current padding side: the one place that knows how a family's
        processor wants its images (flat, or per row as Gemma 3's) and which of its outputs
        the model needs. Training code that lays out its own rows (TGA) calls this too."""
        return self._call_processor(texts, images)

    def _call_processor(self, texts: list[str], images: list[Image.Image]) -> dict[str, Any]:
        if not self.supports_images:
            return dict(self.tokenizer(texts, padding=True, return_tensors="pt"))
        kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
        if images:
            kwargs["images"] = images
        out = dict(self.processor(**kwargs))
        out.pop("token_type_ids", None)
        return out

    # ------------------------------------------------------------------ images
    def image_size(self) -> tuple[int, int]:
        """(width, height) the image processor feeds the vision tower."""
        ip = getattr(self.processor, "image_processor", None)
        if ip is None:
            raise SteerInputError(f"{self.family}: no image processor")
        for attr in ("crop_size", "size"):
            size = getattr(ip, attr, None)
            if size is None:
                continue
            if isinstance(size, int):
                return size, size
            size = dict(size)
            if "width" in size and "height" in size:
                return int(size["width"]), int(size["height"])
            if "shortest_edge" in size:
                return int(size["shortest_edge"]), int(size["shortest_edge"])
            if "longest_edge" in size:
                return int(size["longest_edge"]), int(size["longest_edge"])
        raise SteerInputError(f"{self.family}: cannot tell the image size from the image processor")

    def content_free_image(self, kind: str = "blank", seed: int = 0) -> Image.Image:
        """A content-free image of the processor's size, as CMRM's ``c`` view uses.

        ``blank``: black; ``mean``: the processor's mean colour (normalises to zero);
        ``noise``: uniform RGB noise from a fixed seed.
        """
        w, h = self.image_size()
        if kind == "blank":
            return Image.new("RGB", (w, h), (0, 0, 0))
        if kind == "mean":
            ip = getattr(self.processor, "image_processor", None)
            mean = getattr(ip, "image_mean", None) or [0.5, 0.5, 0.5]
            return Image.new("RGB", (w, h), tuple(int(round(255 * m)) for m in mean[:3]))
        if kind == "noise":
            rng = np.random.default_rng(seed)
            return Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8), "RGB")
        raise SteerInputError(f"unknown content-free image {kind!r}; choose one of {', '.join(NULL_IMAGE_KINDS)}")

    # ------------------------------------------------------------------ identity
    def fingerprint(self) -> dict[str, Any]:
        """What a vector file records about the model it was computed on."""
        return {
            "family": self.family,
            "model_type": self.model_type,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "name_or_path": str(getattr(self.model.config, "_name_or_path", "") or getattr(self.model, "name_or_path", "")),
            "weights_sha256": self.weights_digest(),
            "processor_kwargs": dict(self.processor_kwargs),
        }

    def weights_digest(self) -> str:
        """sha256 of a strided sample of the input-embedding matrix.

        Identifies the weights independently of where they were loaded from (a hub id
        here, a local dir there) and of device/dtype (values are
        rounded to bfloat16 first, so a float32 and a bf16 load of the same checkpoint
        agree), at a cost of < 1M elements even for 7B models.
        """
        emb = self.model.get_input_embeddings().weight.detach()
        step = max(1, emb.shape[0] // 256)
        sample = emb[::step, : min(emb.shape[1], 4096)].to(torch.bfloat16).float().cpu().contiguous()
        return hashlib.sha256(sample.numpy().tobytes()).hexdigest()[:16]
