"""The same steering as :mod:`steer.steering`, expressed with nnsight's tracing.

The native engine (:class:`steer.steering.Steering`) registers plain PyTorch hooks. This
backend runs the identical intervention as an nnsight trace body instead, written the way
nnsight's other runtimes (NDIF remote models, vLLM, nnsight's tensor parallelism) take
intervention code. What is tested is local only: the backend wraps the locally loaded
model (``NNsight(model)``) and never passes ``remote=True``; running on NDIF would need
nnsight's hub-id ``LanguageModel``, an API key and a hosted model (docs/real-models.md). Per forward pass of the top-level model -- the prefill, each cached
decode step, or each full no-cache recomputation -- the trace body

1. reads the top-level model's call (``root.inputs``: ``input_ids``, ``attention_mask``
   and the KV cache, exactly what the native pre-hook reads),
2. builds the ``(B, T, 1)`` position mask with :meth:`steer.positions.PromptLayout.chunk_mask`
   from *absolute* positions (``past_len + arange(chunk)``), against the layout of the
   prompt, and
3. rewrites each steered decoder layer's output ``h <- h + mask * term`` with the same
   ``addcmul`` (or the same projection for ``project_out``) on the same precomputed
   per-layer ``term`` tensors as the native engine -- so the logits are bit-identical,
   not merely close (``tests/test_nnsight_backend.py``).

Generation runs the trace over ``model.generate`` and walks every forward with nnsight's
``for step in tracer.iter[:]`` loop; the loop ends the way nnsight documents for an open
range (its last request is never reached), and the warning nnsight emits for that is
silenced here.

Checked against nnsight 0.8.1's source (``nnsight/intervention/envoy.py``,
``interleaver.py``, ``iterator.py``, ``source.py``): ``NNsight(module)`` wraps a loaded
module; ``Envoy.trace(..., fn=callable)`` runs ``fn(**inputs)`` interleaved with the block;
``envoy.inputs`` is the ``(args, kwargs)`` of a module call; assigning ``envoy.output``
swaps the value the module returns.

Costs and caveats (measured in ``docs/benchmarks.md``):

* wrapping is permanent: ``NNsight(model)`` installs a controller as the ``forward`` of
  *every* submodule of the model, inert outside a trace but a Python call per module per
  forward. The wrapper is made once per :class:`~steer.model.SteeredModel` and reused.
* each steered layer costs two greenlet switches per forward (read + swap), plus one to
  read the call's inputs; the native hooks cost one Python call per layer.
* not supported here: gated steering (``gate=``) -- use the native backend.
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch

from steer.errors import SteerError, SteerInputError
from steer.positions import PromptLayout, cached_length
from steer.steering import Steering, residual_dtype

#: nnsight warns when an open ``tracer.iter[:]`` loop outlives the run; that is how it ends.
_OPEN_LOOP_END = r".*was never reached: the loop asked for a step the run did not make.*"

_ROOTS: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


def nnsight_root(sm: Any) -> Any:
    """The ``nnsight.NNsight`` wrapper of ``sm.model``, made once per SteeredModel."""
    try:
        root = _ROOTS.get(sm)
    except TypeError:  # not weak-referenceable: no caching
        root = None
    if root is None or root._module is not sm.model:
        try:
            from nnsight import NNsight
        except ImportError as err:  # pragma: no cover - nnsight is a dependency
            raise SteerError(f"the nnsight backend needs the nnsight package: {err}") from None
        root = NNsight(sm.model)
        try:
            _ROOTS[sm] = root
        except TypeError:
            pass
    return root


@dataclass
class _Plan:
    """What one trace needs: the steered layers' envoys and terms, and the prompt layout."""

    envoys: list[tuple[Any, torch.Tensor]]  # (layer envoy, (1 or B, 1, d) term)
    project: bool
    alpha: float
    positions: str
    dtype: torch.dtype
    layout: PromptLayout


def _terms_of(steering: Steering) -> dict[int, torch.Tensor]:
    """The engine's precomputed per-layer terms (same tensors => same numbers)."""
    return steering.terms


def _plan(sm: Any, root: Any, steering: Steering, input_ids: torch.Tensor) -> _Plan:
    if steering.gate is not None:
        raise SteerInputError("gated steering is not supported by the nnsight backend; use the native backend")
    if steering.active:
        raise SteerInputError(
            "this Steering is already applied as hooks (inside `with steering:`), so the nnsight backend would steer "
            "twice; pass it unapplied, or use the native backend"
        )
    adapter = sm.adapter
    layers_envoy = root.get(adapter.layers_path)
    terms = _terms_of(steering)
    layout = PromptLayout.from_prompt(input_ids, adapter.image_token_mask(input_ids), adapter.supports_images)
    return _Plan(
        envoys=[(layers_envoy[layer], terms[layer]) for layer in sorted(terms)],
        project=steering.op == "project_out",
        alpha=steering.alpha,
        positions=steering.positions,
        dtype=residual_dtype(adapter.model),
        layout=layout,
    )


def _mask(plan: _Plan, args: tuple, kwargs: Mapping[str, Any]) -> torch.Tensor:
    """(B, T, 1) mask of this forward's positions -- the native pre-hook's arithmetic."""
    input_ids = kwargs.get("input_ids")
    if input_ids is None and args:
        input_ids = args[0]
    if input_ids is not None:
        chunk = input_ids.shape[1]
    else:
        embeds = kwargs.get("inputs_embeds")
        if embeds is None:
            raise SteerError("steering needs input_ids or inputs_embeds in the model call")
        chunk = embeds.shape[1]
    past = cached_length(kwargs)
    mask = plan.layout.chunk_mask(plan.positions, past, chunk, kwargs.get("attention_mask"))
    return mask.unsqueeze(-1).to(plan.dtype)


def _steer_one_forward(root: Any, plan: _Plan) -> None:
    """Trace-body code for one forward of the top-level model (runs in nnsight's worker)."""
    args, kwargs = root.inputs
    mask = _mask(plan, args, kwargs)
    for envoy, term in plan.envoys:
        output = envoy.output
        hidden = output if torch.is_tensor(output) else output[0]
        layer_mask = mask if mask.device == hidden.device else mask.to(hidden.device)
        if plan.project:
            coef = (hidden * term).sum(dim=-1, keepdim=True)
            steered = hidden - (plan.alpha * layer_mask * coef) * term
        else:
            steered = torch.addcmul(hidden, layer_mask, term)
        envoy.output = steered if torch.is_tensor(output) else (steered, *output[1:])


# ---------------------------------------------------------------------------- runners
def run_forward(sm: Any, inputs: Mapping[str, torch.Tensor], steering: Steering) -> Any:
    """One steered forward of ``sm.model(**inputs)`` through nnsight; the model's output."""
    root = nnsight_root(sm)
    plan = _plan(sm, root, steering, inputs["input_ids"])
    result: dict[str, Any] = {}

    def forward(**kwargs: Any) -> Any:
        result["out"] = sm.model(**kwargs)
        return result["out"]

    with root.trace(**inputs, fn=forward):
        _steer_one_forward(root, plan)
    if "out" not in result:
        raise SteerError("the nnsight trace did not run the model")
    return result["out"]


def run_generate(
    sm: Any,
    inputs: Mapping[str, torch.Tensor],
    steering: Steering,
    *,
    max_new_tokens: int,
    use_cache: bool = True,
    **generate_kwargs: Any,
) -> torch.Tensor:
    """Greedy ``sm.model.generate(**inputs)`` with every forward steered through nnsight;
    the full output ids (prompt + new tokens), as ``model.generate`` returns them."""
    root = nnsight_root(sm)
    plan = _plan(sm, root, steering, inputs["input_ids"])
    result: dict[str, Any] = {}

    def generate(**kwargs: Any) -> Any:
        result["out"] = sm.model.generate(**kwargs)
        return result["out"]

    gen_kwargs = dict(max_new_tokens=max_new_tokens, do_sample=False, use_cache=use_cache)
    gen_kwargs.update(generate_kwargs)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_OPEN_LOOP_END)
        with root.trace(**inputs, **gen_kwargs, fn=generate) as tracer:
            for _step in tracer.iter[:]:
                _steer_one_forward(root, plan)
    if "out" not in result:
        raise SteerError("the nnsight trace did not run generation")
    return result["out"]


# ---------------------------------------------------------------------------- public API
def _steering(sm: Any, vectors: Mapping[int, torch.Tensor], alpha: float, positions: str, op: str) -> Steering:
    # An unapplied Steering: validates layers/shapes/alpha/positions exactly as the native
    # engine does and precomputes the per-layer terms both backends use.
    return Steering(sm.adapter, dict(vectors), alpha=alpha, op=op, positions=positions)


@torch.inference_mode()
def nnsight_logits(
    sm: Any,
    prompts: Sequence[str],
    images: Sequence[Any] | None,
    vectors: Mapping[int, torch.Tensor],
    alpha: float = 1.0,
    positions: str = "after_image",
    *,
    op: str = "subtract",
) -> torch.Tensor:
    """(B, T, V) logits of one steered forward over the prompt batch, via nnsight.

    ``vectors``: ``{layer: (d,) or (B, d) tensor}`` (0-based decoder layers, as everywhere
    in steer); ``op``/``alpha``/``positions`` mean what they mean for
    :class:`steer.steering.Steering`.
    """
    inputs = sm.build_inputs(list(prompts), None if images is None else list(images))
    steering = _steering(sm, vectors, alpha, positions, op)
    return run_forward(sm, inputs, steering).logits


@torch.inference_mode()
def nnsight_generate(
    sm: Any,
    prompts: Sequence[str],
    images: Sequence[Any] | None,
    vectors: Mapping[int, torch.Tensor],
    alpha: float = 1.0,
    positions: str = "after_image",
    max_new_tokens: int = 64,
    use_cache: bool = True,
    *,
    op: str = "subtract",
) -> list[str]:
    """Greedy steered generation via nnsight; one stripped answer per prompt, decoded as
    :meth:`steer.model.SteeredModel.generate` decodes them."""
    inputs = sm.build_inputs(list(prompts), None if images is None else list(images))
    steering = _steering(sm, vectors, alpha, positions, op)
    out = run_generate(sm, inputs, steering, max_new_tokens=max_new_tokens, use_cache=use_cache)
    return sm.adapter.decode_answers(out, inputs["input_ids"].shape[1])


__all__ = ["nnsight_generate", "nnsight_logits", "nnsight_root", "run_forward", "run_generate"]
