"""Which sequence positions a steering touches, correct under left padding and KV cache.

A :class:`PromptLayout` is taken once from the prompt (``input_ids`` + ``attention_mask``
of the prefill). Every later forward chunk -- a cached decode step of one token, or a
full recomputation of prompt + generated tokens -- is located by *absolute* position
``past_len + arange(chunk_len)``, never by the chunk's own length, so the same token gets
the same decision whether it is processed in the prefill, in a decode step, or again in a
no-cache recomputation.

Position kinds (``POSITIONS``):

``all``          every non-padding position, generated tokens included
``image``        image-token positions
``text``         every non-padding, non-image position, generated tokens included
``after_image``  every position after the row's last image token, generated tokens included
``prompt``       prompt positions after the last image token, never generated tokens
``prompt_last``  the last prompt token only
``last``         the last prompt token and every generated token

Rows without an image: in a vision-language model the image-relative kinds (``image``,
``after_image``, ``prompt``, ``prompt_last``) leave a text-only row untouched -- a CMRM
shift is defined relative to an image, and text-only behaviour must not change. For a
text-only model (no image token) the anchor is "before the first token", so ``prompt``
is the whole prompt and ``after_image`` everything.

All masks are computed with tensor ops on the model's device: no host syncs per token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from steer.errors import SteerInputError

POSITIONS = ("all", "image", "text", "after_image", "prompt", "prompt_last", "last")
IMAGE_RELATIVE = frozenset({"image", "after_image", "prompt", "prompt_last"})


def cached_length(call_kwargs: dict) -> int:
    """Tokens already in the KV cache of a model call (0 for a prefill or a no-cache call):
    the offset that turns a chunk's positions into absolute ones."""
    cache = call_kwargs.get("cache", call_kwargs.get("past_key_values"))
    if cache is not None and hasattr(cache, "get_seq_length"):
        return int(cache.get_seq_length())
    return 0


def check_positions(kind: str) -> str:
    if kind not in POSITIONS:
        raise SteerInputError(f"unknown positions {kind!r}; choose one of: {', '.join(POSITIONS)}")
    return kind


@dataclass
class PromptLayout:
    """Per-row facts about a (left-padded) prompt batch."""

    prompt_len: int
    image: torch.Tensor  # (B, L) bool: image-token positions
    anchor: torch.Tensor  # (B,) long: index of the last image token, -1 if none
    row_enabled: torch.Tensor  # (B,) bool: rows image-relative kinds may touch

    @classmethod
    def from_prompt(cls, input_ids: torch.Tensor, image_mask: torch.Tensor, model_takes_images: bool) -> "PromptLayout":
        length = input_ids.shape[1]
        idx = torch.arange(length, device=input_ids.device)
        anchor = torch.where(image_mask, idx, torch.full_like(idx, -1)).amax(dim=1)
        if model_takes_images:
            row_enabled = image_mask.any(dim=1)
        else:
            row_enabled = torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        return cls(prompt_len=length, image=image_mask, anchor=anchor, row_enabled=row_enabled)

    def chunk_mask(
        self,
        kind: str,
        past_len: int,
        chunk_len: int,
        attention_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """(B, chunk_len) bool mask of the positions ``past_len .. past_len+chunk_len-1``."""
        batch = self.image.shape[0]
        device = self.image.device
        pos = torch.arange(past_len, past_len + chunk_len, device=device)
        if attention_mask is not None:
            valid = attention_mask[:, -chunk_len:].to(device=device, dtype=torch.bool)
        else:
            valid = torch.ones(batch, chunk_len, dtype=torch.bool, device=device)
        if valid.shape[0] != batch:
            raise SteerInputError(
                f"steering was set up for a batch of {batch} rows but the model got {valid.shape[0]}; "
                "beam search and num_return_sequences > 1 are not supported while steering"
            )
        in_prompt = pos < self.prompt_len
        if kind == "all":
            return valid
        if kind in ("image", "text"):
            image = torch.zeros(batch, chunk_len, dtype=torch.bool, device=device)
            stop = min(past_len + chunk_len, self.prompt_len)
            if stop > past_len:
                image[:, : stop - past_len] = self.image[:, past_len:stop]
            return image & valid if kind == "image" else valid & ~image
        if kind == "last":
            return valid & (pos >= self.prompt_len - 1).unsqueeze(0)
        rows = self.row_enabled.unsqueeze(1)
        if kind == "prompt_last":
            return valid & rows & (pos == self.prompt_len - 1).unsqueeze(0)
        after = pos.unsqueeze(0) > self.anchor.unsqueeze(1)
        if kind == "after_image":
            return valid & rows & after
        if kind == "prompt":
            return valid & rows & after & in_prompt.unsqueeze(0)
        raise SteerInputError(f"unknown positions {kind!r}; choose one of: {', '.join(POSITIONS)}")
