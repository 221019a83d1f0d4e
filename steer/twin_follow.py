"""Twin following: chosen rows generate as their text twin would, token after token.

Self-caption anchoring (:mod:`steer.self_caption`) corrects a query's state at the prompt,
so the first answer token is the one the text-only model would give ("sorry"). The
generated tokens after it are not steered, and they still attend to the image tokens: on
a typed harmful request (FigStep analog) the organism goes on to copy the typed words
("sorry , i make meth sure"). Twin following carries the correction through the answer:
each followed row's text twin (the query with the model's caption of the image) is
decoded in the same batch, forced to take the image row's tokens, and at every generated
position the image row's output of each chosen decoder layer is replaced by its twin's
(activation patching from the twin, arXiv 2403.09572's "answer from the caption"
carried out in hidden states). Rows not followed are not patched: the twin rows only add
batch rows, never read for another row (the wider padded batch can move their numbers by
float rounding).

Greedy decoding only: the twin row must take exactly the token its image row takes.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from transformers import LogitsProcessor

from steer.adapters.base import ModelAdapter
from steer.errors import SteerError, SteerInputError
from steer.positions import cached_length


def check_follow(value: Any) -> float:
    """A follow threshold: a number >= 0, in units of the harmful-benign gap (inf follows no row)."""
    try:
        share = float(value)
    except (TypeError, ValueError):
        share = float("nan")
    if not share >= 0:
        raise SteerInputError(f"follow must be a number >= 0 (a share of the harmful-benign gap), got {value!r}")
    return share


class FollowImageRows(LogitsProcessor):
    """Gives each twin row its image row's greedy token (every other token gets -inf)."""

    def __init__(self, rows: torch.Tensor, twins: torch.Tensor):
        self.rows, self.twins = rows, twins

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        pick = scores[self.rows.to(scores.device)].argmax(dim=-1)
        forced = torch.full_like(scores[self.twins.to(scores.device)], float("-inf"))
        forced[torch.arange(pick.shape[0], device=scores.device), pick] = 0.0
        scores = scores.clone()
        scores[self.twins.to(scores.device)] = forced
        return scores


class TwinFollow:
    """Layer hooks that copy each twin row's generated-token states onto its image row.

    ``rows[k]`` follows ``twins[k]`` (batch indices). Prompt positions are never touched;
    a position is a generated token when its absolute index (cache length + offset in the
    chunk) is at or past the prompt length, so cached decoding and a no-cache recomputation
    patch the same tokens. Use as a context manager around one ``generate`` call; the hooks
    are gone afterwards, whatever happens.
    """

    def __init__(self, adapter: ModelAdapter, layers: Sequence[int], rows: Sequence[int], twins: Sequence[int]):
        if len(rows) != len(twins):
            raise SteerInputError(f"got {len(rows)} followed rows but {len(twins)} twin rows")
        if set(rows) & set(twins):
            raise SteerInputError("a row cannot follow itself or be another row's twin")
        self.adapter = adapter
        self.layers = sorted({int(l) for l in layers})
        self.rows = torch.tensor(list(rows), dtype=torch.long)
        self.twins = torch.tensor(list(twins), dtype=torch.long)
        self._handles: list[Any] = []
        self._prompt_len: int | None = None
        self._generated: torch.Tensor | None = None  # (chunk,) bool of the current forward
        self._any_generated = False  # decided once per forward, on the host: no device sync per layer

    def logits_processor(self) -> FollowImageRows:
        return FollowImageRows(self.rows, self.twins)

    def __enter__(self) -> "TwinFollow":
        try:
            self._handles.append(self.adapter.model.register_forward_pre_hook(self._on_model_forward, with_kwargs=True))
            for layer in self.layers:
                self._handles.append(self.adapter.decoder_layers[layer].register_forward_hook(self._on_layer))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        while self._handles:
            self._handles.pop().remove()
        self._prompt_len = None
        self._generated = None
        self._any_generated = False

    def _on_model_forward(self, module: Any, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            raise SteerError("twin following needs input_ids in the model call")
        past = cached_length(kwargs)
        if past == 0 and self._prompt_len is None:
            self._prompt_len = int(ids.shape[1])
        if self._prompt_len is None:
            raise SteerError("twin following saw a cached step without its prompt; start generation inside it")
        absolute = past + torch.arange(ids.shape[1], device=ids.device)
        self._generated = absolute >= self._prompt_len
        self._any_generated = past + int(ids.shape[1]) > self._prompt_len

    def _on_layer(self, module: Any, args: tuple, output: Any) -> Any:
        if not self._any_generated:
            return output
        hidden = output if torch.is_tensor(output) else output[0]
        where = self._generated.to(hidden.device).nonzero().flatten()
        rows, twins = self.rows.to(hidden.device), self.twins.to(hidden.device)
        patched = hidden.clone()
        patched[rows[:, None], where[None, :]] = hidden[twins[:, None], where[None, :]]
        return patched if torch.is_tensor(output) else (patched, *output[1:])
