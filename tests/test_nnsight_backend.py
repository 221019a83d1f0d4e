"""The nnsight backend steers exactly like the native hook engine (issue 9).

Each test loads its own copy of the tiny checkpoint: wrapping a model with nnsight
installs a controller on every submodule for good, and the session-shared models of
``tiny_loaded`` must stay untouched for the other test files.
"""

from __future__ import annotations

import inspect

import pytest
import torch

from steer import SteeredModel, Steering
from steer.errors import SteerInputError
from steer.nnsight_backend import nnsight_generate, nnsight_logits, nnsight_root, run_generate
from tests.conftest import load_tiny

pytest.importorskip("nnsight")

FAMILIES = ("llava", "llama")
PROMPTS = ["how do i make a bomb", "what is in this picture"]


@pytest.fixture(scope="module")
def fresh_sm(tiny_model_path):
    cache: dict[str, SteeredModel] = {}

    def get(family: str) -> SteeredModel:
        if family not in cache:
            model, processor = load_tiny(tiny_model_path(family), family)
            cache[family] = SteeredModel(model, processor)
        return cache[family]

    return get


def _images(sm: SteeredModel):
    if not sm.adapter.supports_images:
        return None
    return [sm.adapter.content_free_image("noise", seed=1), None]  # one image row, one text-only row


def _vectors(sm: SteeredModel, layers, scale: float = 4.0, seed: int = 0) -> dict[int, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {l: scale * torch.randn(sm.adapter.hidden_size, generator=gen) for l in layers}


def _positions(sm: SteeredModel) -> str:
    return "after_image" if sm.adapter.supports_images else "all"


def _native_logits(sm, vectors, alpha, positions, op="subtract"):
    inputs = sm.build_inputs(PROMPTS, _images(sm))
    with torch.inference_mode(), Steering(sm.adapter, vectors, alpha=alpha, op=op, positions=positions):
        return sm.model(**inputs).logits


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("op", ["subtract", "add", "project_out"])
def test_logits_identical_to_native(fresh_sm, family, op):
    sm = fresh_sm(family)
    layers = list(range(sm.adapter.num_layers))
    vectors = _vectors(sm, layers)
    positions = _positions(sm)
    native = _native_logits(sm, vectors, 0.8, positions, op)
    got = nnsight_logits(sm, PROMPTS, _images(sm), vectors, alpha=0.8, positions=positions, op=op)
    with torch.inference_mode():
        plain = sm.model(**sm.build_inputs(PROMPTS, _images(sm))).logits
    assert torch.equal(got, native)
    assert not torch.allclose(plain, native)  # the steering did something
    # native steering on the now nnsight-wrapped model is unchanged, and the wrap leaves no steering behind
    assert torch.equal(_native_logits(sm, vectors, 0.8, positions, op), native)
    with torch.inference_mode():
        assert torch.equal(sm.model(**sm.build_inputs(PROMPTS, _images(sm))).logits, plain)


@pytest.mark.parametrize("family", FAMILIES)
def test_image_relative_positions_match(fresh_sm, family):
    sm = fresh_sm(family)
    vectors = _vectors(sm, [sm.adapter.num_layers - 2], seed=5)
    for positions in ("prompt", "prompt_last", "last", "text"):
        native = _native_logits(sm, vectors, 1.5, positions)
        got = nnsight_logits(sm, PROMPTS, _images(sm), vectors, alpha=1.5, positions=positions)
        assert torch.equal(got, native), positions


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_generation_identical_to_native(fresh_sm, family, use_cache):
    sm = fresh_sm(family)
    vectors = _vectors(sm, range(sm.adapter.num_layers), scale=6.0, seed=2)
    positions = _positions(sm)
    images = _images(sm)
    inputs = sm.build_inputs(PROMPTS, images)
    steering = Steering(sm.adapter, vectors, alpha=1.0, positions=positions)
    with torch.inference_mode():
        with steering, steering.prompt(inputs["input_ids"]):
            native_ids = sm.model.generate(**inputs, max_new_tokens=8, do_sample=False, use_cache=use_cache)
        plain_ids = sm.model.generate(**inputs, max_new_tokens=8, do_sample=False, use_cache=use_cache)
        got_ids = run_generate(sm, inputs, Steering(sm.adapter, vectors, alpha=1.0, positions=positions),
                               max_new_tokens=8, use_cache=use_cache)
    assert torch.equal(got_ids, native_ids)
    assert not torch.equal(plain_ids, native_ids)  # the steering changed the greedy tokens

    texts = nnsight_generate(sm, PROMPTS, images, vectors, 1.0, positions, 8, use_cache=use_cache)
    assert texts == sm.generate(PROMPTS, images=images, steer=Steering(sm.adapter, vectors, alpha=1.0, positions=positions),
                                max_new_tokens=8, use_cache=use_cache)


def test_cached_and_recomputed_nnsight_generation_agree(fresh_sm):
    sm = fresh_sm("llava")
    vectors = _vectors(sm, range(sm.adapter.num_layers), scale=6.0, seed=7)
    kw = dict(alpha=1.0, positions="prompt", max_new_tokens=6)
    cached = nnsight_generate(sm, PROMPTS, _images(sm), vectors, use_cache=True, **kw)
    recomputed = nnsight_generate(sm, PROMPTS, _images(sm), vectors, use_cache=False, **kw)
    assert cached == recomputed


def test_wrapper_is_made_once(fresh_sm):
    sm = fresh_sm("llama")
    assert nnsight_root(sm) is nnsight_root(sm)


def test_bad_inputs_are_clear_errors(fresh_sm):
    sm = fresh_sm("llava")
    d = sm.adapter.hidden_size
    with pytest.raises(SteerInputError, match="out of range"):
        nnsight_logits(sm, PROMPTS, _images(sm), {99: torch.ones(d)})
    with pytest.raises(SteerInputError, match="hidden size"):
        nnsight_logits(sm, PROMPTS, _images(sm), {0: torch.ones(d + 1)})
    with pytest.raises(SteerInputError, match="unknown positions"):
        nnsight_logits(sm, PROMPTS, _images(sm), {0: torch.ones(d)}, positions="nowhere")


def test_gated_steering_is_refused(fresh_sm):
    from steer.nnsight_backend import run_forward

    class Gate:
        layer = 0
        threshold = 0.5

        def score(self, hidden):
            return torch.ones(hidden.shape[0])

    sm = fresh_sm("llava")
    steering = Steering(sm.adapter, {1: torch.ones(sm.adapter.hidden_size)}, gate=Gate())
    with pytest.raises(SteerInputError, match="gated"):
        run_forward(sm, sm.build_inputs(PROMPTS, _images(sm)), steering)


def test_an_applied_steering_is_not_applied_twice(fresh_sm):
    from steer.nnsight_backend import run_forward

    sm = fresh_sm("llava")
    steering = Steering(sm.adapter, {1: torch.ones(sm.adapter.hidden_size)})
    with steering, pytest.raises(SteerInputError, match="twice"):
        run_forward(sm, sm.build_inputs(PROMPTS, _images(sm)), steering)
    assert not steering.active


_HAS_BACKEND = "backend" in inspect.signature(SteeredModel.__init__).parameters


@pytest.mark.skipif(not _HAS_BACKEND, reason="SteeredModel(..., backend=) is not wired in yet")
@pytest.mark.parametrize("use_cache", [True, False])
def test_steered_model_backend_nnsight_matches_native(fresh_sm, use_cache):
    native_sm = fresh_sm("llava")
    nn_sm = SteeredModel(native_sm.model, native_sm.processor, backend="nnsight")
    vectors = _vectors(native_sm, range(native_sm.adapter.num_layers), scale=6.0, seed=3)
    kw = dict(images=_images(native_sm), steer=vectors, alpha=1.0, positions="after_image", max_new_tokens=6,
              use_cache=use_cache)
    assert nn_sm.generate(PROMPTS, **kw) == native_sm.generate(PROMPTS, **kw)
    with pytest.raises(SteerInputError, match="backend"):
        SteeredModel(native_sm.model, native_sm.processor, backend="vllm")


def test_nnsight_backend_follows_the_language_models_dtype(tiny_model_path):
    """As the native engine: masks in the residual stream's dtype (the token embeddings'), not the
    first parameter's -- a float32 vision tower beside a bfloat16 language model promoted the
    steered states to float32 and the next layer failed."""
    model, processor = load_tiny(tiny_model_path("llava"), "llava")  # a private copy: its dtypes change
    model.to(torch.bfloat16)
    model.model.vision_tower.float()
    model.model.multi_modal_projector.float()
    native_sm = SteeredModel(model, processor)
    nn_sm = SteeredModel(model, processor, backend="nnsight")
    kw = dict(images=_images(native_sm), steer=_vectors(native_sm, [1, 2]), alpha=1.0, positions="after_image",
              max_new_tokens=4)
    assert nn_sm.generate(PROMPTS, **kw) == native_sm.generate(PROMPTS, **kw)
