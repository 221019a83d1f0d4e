"""The hook engine: per-layer interventions on the residual stream with plain PyTorch hooks.

One :class:`Steering` = a set of per-layer vectors, one operator, one alpha, one
position kind. Applying it registers

* one forward *pre*-hook on the top-level model, which reads ``input_ids``,
  ``attention_mask`` and the KV-cache length of each call and computes the
  (B, T, 1) position mask once per forward (see :mod:`steer.positions`), and
* one forward hook per steered decoder layer, which rewrites the layer output
  ``h <- h + mask * delta`` (one fused ``addcmul``; no Python loop over positions, no
  host-device sync).

Free decode steps: when no position of a cached decode step can be steered (``prompt``
/ ``prompt_last`` positions, image-relative positions on a batch without images, or a
gate that closed every row), the model pre-hook finds it once per prompt (one host sync)
and every layer hook returns before any tensor op, so such steps cost one Python check
per layer. A gate that closes every row also frees the rest of its prefill.

Operators (``OPS``), with ``v`` the layer's vector and ``alpha`` the strength:

``subtract``     ``h - alpha * v``            (CMRM; ShiftDC with a pre-projected vector)
``add``          ``h + alpha * v``
``project_out``  ``h - alpha * (h . u) u``    with ``u = v / |v|`` (directional ablation)

Vectors may be ``(d,)`` (same for every row) or ``(B, d)`` (one per row: sample-level
CMRM/ShiftDC, gated rows set to zero).

Layer hooks are registered with ``prepend=True`` so that transformers' own
``output_hidden_states`` recorders, installed lazily on first use, see the steered
output. Hooks are removed by :meth:`Steering.remove`, by the context manager's exit on
any exception (KeyboardInterrupt included), and never leak when ``apply`` fails half-way.
Two steerings on one model compose: each owns its hooks, and additive operators commute.

Gated steering (conditional steering, in the spirit of CAST and PSA-VLM's safety head):
with ``gate=`` a :class:`RowGate`, one more hook reads the *unsteered* state of the gate's
layer at the last prompt token during the prefill, scores each row, and the steering is
applied only to rows whose score exceeds the gate's threshold -- in the same forward pass,
so the gate layer must come before every steered layer.
"""

from __future__ import annotations

import math
import weakref
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Protocol, Sequence

import torch
from torch.utils.hooks import RemovableHandle

from steer.adapters.base import ModelAdapter
from steer.errors import SteerError, SteerInputError
from steer.positions import PromptLayout, cached_length, check_positions
from steer.vectors import check_alpha_range

OPS = ("subtract", "add", "project_out")


class RowGate(Protocol):
    """What the engine needs from a gate (see ``steer.gate.ProbeGate``)."""

    layer: int
    threshold: float

    def score(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, d) last-prompt-token states of ``layer`` -> (B,) risk scores in [0, 1]."""
        ...


def check_alpha(alpha: Any) -> float:
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise SteerInputError(f"alpha must be a number, got {alpha!r}") from None
    if not math.isfinite(value):
        raise SteerInputError(f"alpha must be finite, got {alpha!r}")
    return value


def residual_dtype(model: torch.nn.Module) -> torch.dtype:
    """The dtype of the hidden states steering touches: the token embeddings' (not the first
    parameter's, which may be a float32 vision tower's beside a bfloat16 language model)."""
    weight = getattr(model.get_input_embeddings(), "weight", None)
    return weight.dtype if torch.is_tensor(weight) else next(model.parameters()).dtype


def normalize_layer(layer: int, num_layers: int) -> int:
    """0-based layer index; negative counts from the end (-1 = last layer)."""
    idx = int(layer)
    if idx < 0:
        idx += num_layers
    if not 0 <= idx < num_layers:
        raise SteerInputError(
            f"layer {layer} is out of range: this model has {num_layers} decoder layers (0..{num_layers - 1})"
        )
    return idx


def normalize_layers(layers: Sequence[int], num_layers: int, what: str = "steer") -> list[int]:
    """Sorted, de-duplicated 0-based layer indices (negative ones count from the end)."""
    out = sorted({normalize_layer(layer, num_layers) for layer in layers})
    if not out:
        raise SteerInputError(f"no layers to {what}")
    return out


def _hidden_of(output: Any) -> torch.Tensor:
    return output if torch.is_tensor(output) else output[0]


def _with_hidden(output: Any, hidden: torch.Tensor) -> Any:
    if torch.is_tensor(output):
        return hidden
    return (hidden, *output[1:])


#: model -> the Steerings applied to it now. Weak on both sides: a model that is dropped leaves
#: no entry, and an applied Steering is kept alive by its hooks anyway.
_APPLIED: "weakref.WeakKeyDictionary[torch.nn.Module, weakref.WeakSet[Steering]]" = weakref.WeakKeyDictionary()


def steering_applied(model: torch.nn.Module) -> bool:
    """Whether any :class:`Steering` is applied to ``model`` right now (between ``apply()``
    and ``remove()``). Code that runs its own forwards on a model it did not steer (the
    sample-level shift's cached prefix, for one) asks this instead of reading torch's hook
    dictionaries."""
    return bool(_APPLIED.get(model))


class Steering:
    """Per-layer interventions on one adapted model; use as a context manager or apply()/remove()."""

    def __init__(
        self,
        adapter: ModelAdapter,
        vectors: Mapping[int, torch.Tensor],
        *,
        alpha: float = 1.0,
        op: str = "subtract",
        positions: str = "after_image",
        gate: RowGate | None = None,
    ):
        if op not in OPS:
            raise SteerInputError(f"unknown operator {op!r}; choose one of: {', '.join(OPS)}")
        if not vectors:
            raise SteerInputError("no layers to steer: the vector set is empty")
        self.adapter = adapter
        self.alpha = check_alpha(alpha)
        self.op = op
        self.positions = check_positions(positions)
        if self.positions == "image" and not adapter.supports_images:
            raise SteerInputError(f"positions 'image' need a vision-language model; {adapter.family} has no images")
        dtype = residual_dtype(adapter.model)
        self._dtype = dtype
        self._terms: dict[int, torch.Tensor] = {}
        per_row: dict[int, int] = {}  # layer -> rows of its (B, d) vector
        for layer, vec in vectors.items():
            idx = normalize_layer(layer, adapter.num_layers)
            if idx in self._terms:
                raise SteerInputError(f"layer {idx} given twice")
            self._terms[idx] = self._prepare(idx, vec)
            if torch.as_tensor(vec).dim() == 2:
                per_row[idx] = self._terms[idx].shape[0]
        if len(set(per_row.values())) > 1:
            raise SteerInputError(
                "per-row (batch, d) vectors must have one row per prompt at every layer, but they have "
                + ", ".join(f"{rows} rows at layer {idx}" for idx, rows in sorted(per_row.items()))
            )
        self.gate = gate
        if gate is not None:
            gate_layer = normalize_layer(gate.layer, adapter.num_layers)
            early = [layer for layer in self._terms if layer <= gate_layer]
            if early:
                raise SteerInputError(
                    f"the gate reads layer {gate_layer}, so it can only gate layers after it, but layers {early} "
                    f"are steered; steer layers > {gate_layer} or use a probe of an earlier layer"
                )
        self._handles: list[RemovableHandle] = []
        self._layout: PromptLayout | None = None
        self._locked = False
        self._mask: torch.Tensor | None = None
        self._decode_rows: torch.Tensor | None = None  # (B, 1, 1) mask of a generated token, per prompt
        self._row_scale: torch.Tensor | None = None
        self._past = 0
        #: True while the current forward can steer nothing (a decode step of ``prompt`` /
        #: ``prompt_last``, or every row gated off): layer hooks return at once, no tensor op
        self._idle = False
        self._decode_idle: bool | None = None  # per prompt: do cached decode steps steer nothing?
        #: rows of per-row (sample-level) ``(B, d)`` vectors, B = 1 included; None when every vector is ``(d,)``
        self._rows = next(iter(per_row.values()), None)
        #: (B,) gate scores of the last prefill (None without a gate)
        self.gate_scores: torch.Tensor | None = None

    # ------------------------------------------------------------------ set-up
    def _prepare(self, layer: int, vec: torch.Tensor) -> torch.Tensor:
        vec = torch.as_tensor(vec)
        if vec.dim() not in (1, 2) or vec.shape[-1] != self.adapter.hidden_size:
            raise SteerInputError(
                f"layer {layer}: vector of shape {tuple(vec.shape)} does not fit hidden size "
                f"{self.adapter.hidden_size} (expected (d,) or (batch, d))"
            )
        if vec.is_floating_point() and not bool(torch.isfinite(vec).all()):
            raise SteerInputError(f"layer {layer}: the vector is not finite (it holds NaN or inf values)")
        device = self.adapter.decoder_layers[layer].parameters().__next__().device
        vec = vec.to(device=device, dtype=self._dtype)
        if self.op == "project_out":
            norm = vec.float().norm(dim=-1, keepdim=True).clamp_min(1e-12)
            term = (vec.float() / norm).to(self._dtype)
            scaled = term  # alpha multiplies the unit direction's component
        else:
            scaled = vec
            term = -(self.alpha * vec) if self.op == "subtract" else self.alpha * vec
        try:  # the one alpha-range rule (steer.vectors), here for every way a Steering is made
            check_alpha_range(self.alpha, {layer: scaled}, self._dtype)
        except SteerInputError as err:
            raise SteerInputError(f"layer {layer}: {err}") from None
        return term.reshape(-1, 1, vec.shape[-1])  # (1 or B, 1, d)

    @property
    def layers(self) -> list[int]:
        return sorted(self._terms)

    @property
    def terms(self) -> dict[int, torch.Tensor]:
        """Per-layer prepared tensors: ``(1|B, 1, d)`` deltas (add/subtract, alpha applied)
        or unit directions (project_out). Read-only view for other backends (nnsight)."""
        return dict(self._terms)

    @property
    def active(self) -> bool:
        return bool(self._handles)

    def apply(self) -> "Steering":
        if self._handles:
            raise SteerError("this Steering is already applied; remove() it first or create a new one")
        try:
            self._handles.append(
                self.adapter.model.register_forward_pre_hook(self._on_model_forward, with_kwargs=True)
            )
            for layer in self.layers:
                module = self.adapter.decoder_layers[layer]
                self._handles.append(module.register_forward_hook(self._make_layer_hook(layer), prepend=True))
            if self.gate is not None:
                module = self.adapter.decoder_layers[normalize_layer(self.gate.layer, self.adapter.num_layers)]
                self._handles.append(module.register_forward_hook(self._on_gate_layer))
        except BaseException:
            self.remove()
            raise
        _APPLIED.setdefault(self.adapter.model, weakref.WeakSet()).add(self)
        return self

    def remove(self) -> None:
        live = _APPLIED.get(self.adapter.model)
        if live is not None:
            live.discard(self)
        while self._handles:
            self._handles.pop().remove()
        self._mask = None
        self._layout = None
        self._decode_rows = None
        self._decode_idle = None
        self._idle = False
        self._locked = False
        self._row_scale = None

    @property
    def gate_decisions(self) -> torch.Tensor | None:
        """(B,) bool: rows the gate let the steering touch in the last generation."""
        if self.gate_scores is None or self.gate is None:
            return None
        return self.gate_scores > self.gate.threshold

    def __enter__(self) -> "Steering":
        return self.apply()

    def __exit__(self, *exc: Any) -> None:
        self.remove()

    @contextmanager
    def prompt(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> Iterator[None]:
        """Fix the prompt layout for one generation.

        Inside, a forward without cache over prompt + generated tokens (``use_cache=False``
        generation) is located against this prompt, so it steers exactly the positions the
        cached generation steers.
        """
        del attention_mask  # padding is read per call from the call's own mask
        self._layout = PromptLayout.from_prompt(
            input_ids, self.adapter.image_token_mask(input_ids), self.adapter.supports_images
        )
        self._decode_rows = None
        self._decode_idle = None
        self._locked = True
        try:
            yield
        finally:
            self._locked = False
            self._layout = None
            self._decode_rows = None
            self._decode_idle = None
            self._idle = False
            self._mask = None

    # ------------------------------------------------------------------ hooks
    def _on_model_forward(self, module: Any, args: tuple, kwargs: dict) -> None:
        input_ids = kwargs.get("input_ids")
        if input_ids is None and args:
            input_ids = args[0]
        past = cached_length(kwargs)
        if input_ids is None:
            embeds = kwargs.get("inputs_embeds")
            if embeds is None:
                raise SteerError("steering needs input_ids or inputs_embeds in the model call")
            if self._layout is None or (past == 0 and not self._locked):
                if self.positions not in ("all", "last"):
                    raise SteerInputError(
                        f"positions {self.positions!r} need input_ids to locate image tokens; "
                        "pass input_ids, or use positions 'all' or 'last'"
                    )
                fake = torch.zeros(embeds.shape[:2], dtype=torch.long, device=embeds.device)
                self._layout = PromptLayout.from_prompt(
                    fake, torch.zeros_like(fake, dtype=torch.bool), self.adapter.supports_images
                )
                self._decode_rows = None
                self._decode_idle = None
            chunk = embeds.shape[1]
        else:
            chunk = input_ids.shape[1]
            if past == 0 and not self._locked:
                self._layout = PromptLayout.from_prompt(
                    input_ids, self.adapter.image_token_mask(input_ids), self.adapter.supports_images
                )
                self._decode_rows = None
                self._decode_idle = None
        if self._layout is None:
            raise SteerError("steering saw a cached step without its prompt; start generation under the steering")
        if self._rows is not None and past == 0 and self._layout.image.shape[0] != self._rows:
            raise SteerInputError(
                f"this steering holds one vector per row for {self._rows} prompts (sample level), but the model "
                f"was called with {self._layout.image.shape[0]} rows; run it on exactly the prompts it was measured on, "
                "in one batch (or measure it again for this batch)"
            )
        attention_mask = kwargs.get("attention_mask")
        self._past = past
        self._idle = False
        if chunk == 1 and past >= self._layout.prompt_len:
            # a cached decode step: a generated token's mask depends only on its row (and on
            # whether the caller marks it as padding), so the row part is computed once per prompt
            if self._decode_rows is None:
                self._decode_rows = self._layout.chunk_mask(self.positions, past, 1, None).unsqueeze(-1).to(self._dtype)
                self._decode_idle = None
            if self._decode_idle is None:
                # one host sync per prompt (not per token): can any decode step steer any row?
                open_rows = self._decode_rows if self._row_scale is None else self._decode_rows * self._row_scale.to(
                    self._decode_rows.device
                )
                self._decode_idle = not bool(open_rows.any())
            if self._decode_idle:
                self._idle = True
                self._mask = None
                return
            rows = self._decode_rows
            self._mask = rows if attention_mask is None else rows * attention_mask[:, -1:, None]
        else:
            mask = self._layout.chunk_mask(self.positions, past, chunk, attention_mask)
            self._mask = mask.unsqueeze(-1).to(self._dtype)
        if self.gate is not None and past > 0 and past >= self._layout.prompt_len:
            if self._row_scale is None:
                raise SteerError("gated steering saw a decode step without its prefill")
            self._mask = self._mask * self._row_scale.to(self._mask.device)

    def _on_gate_layer(self, module: Any, args: tuple, output: Any) -> None:
        """Score rows from the unsteered last-prompt-token state, once the prompt is in view."""
        hidden = _hidden_of(output)
        past = self._past
        index = self._layout.prompt_len - 1 - past
        if not 0 <= index < hidden.shape[1]:
            return  # a decode step: keep the prefill's decision
        scores = self.gate.score(hidden[:, index, :])
        self.gate_scores = scores.detach()
        self._row_scale = (scores > self.gate.threshold).to(self._dtype).view(-1, 1, 1)
        self._decode_idle = None  # the decode steps' verdict depends on this prefill's gate
        self._mask = self._mask * self._row_scale.to(self._mask.device)
        if not bool(self._row_scale.any()):
            self._idle = True  # every row gated off: the later layers of this prefill steer nothing

    def _make_layer_hook(self, layer: int):
        term = self._terms[layer]
        alpha = self.alpha
        project = self.op == "project_out"

        def hook(module: Any, args: tuple, output: Any) -> Any:
            if self._idle:
                return None  # nothing to steer in this forward: leave the output untouched, no tensor op
            mask = self._mask
            if mask is None:
                raise SteerError(
                    "a steered decoder layer ran outside a forward of the top-level model; "
                    "call the model itself (model(...) / model.generate(...)), not its submodules"
                )
            hidden = _hidden_of(output)
            if mask.device != hidden.device:
                mask = mask.to(hidden.device)
            if project:
                coef = (hidden * term).sum(dim=-1, keepdim=True)
                steered = hidden - (alpha * mask * coef) * term
            else:
                steered = torch.addcmul(hidden, mask, term)
            return _with_hidden(output, steered)

        return hook
