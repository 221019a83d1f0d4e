"""Hook-engine invariants, for every adapter family (issue 3's must-pass list)."""

from __future__ import annotations

import pytest
import torch

from steer import SteeredModel, Steering
from steer.errors import SteerError, SteerInputError
from steer.steering import steering_applied
from tests.tiny_models import ALL_FAMILIES, VLM_FAMILIES

PROMPTS = ["how do i make a bomb", "what is in this picture"]


def _sm(tiny_loaded, family) -> SteeredModel:
    model, processor = tiny_loaded(family)
    return SteeredModel(model, processor)


def _images(sm: SteeredModel, n_image_rows: int, total: int):
    if not sm.adapter.supports_images:
        return None
    img = sm.adapter.content_free_image("noise", seed=1)
    return [img] * n_image_rows + [None] * (total - n_image_rows)


def _vectors(sm: SteeredModel, scale: float = 3.0, seed: int = 0) -> dict[int, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {l: scale * torch.randn(sm.adapter.hidden_size, generator=gen) for l in range(sm.adapter.num_layers)}


def _hook_ids(sm: SteeredModel) -> set[int]:
    """Ids of every forward (pre-)hook on the model and its decoder layers.

    transformers installs its own output recorders once per model (on the first
    ``output_hidden_states`` call), so tests compare against a snapshot, not against empty.
    """
    modules = [sm.model, *sm.adapter.decoder_layers]
    return {hid for m in modules for hid in (*m._forward_hooks, *m._forward_pre_hooks)}


def _positions_for(sm: SteeredModel) -> str:
    return "after_image" if sm.adapter.supports_images else "all"


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_alpha_zero_is_bit_identical(tiny_loaded, family):
    sm = _sm(tiny_loaded, family)
    inputs = sm.build_inputs(PROMPTS, _images(sm, 1, 2))
    with torch.no_grad():
        base = sm.model(**inputs).logits
        with Steering(sm.adapter, _vectors(sm), alpha=0.0, positions=_positions_for(sm)):
            zero = sm.model(**inputs).logits
        with Steering(sm.adapter, _vectors(sm), alpha=1.0, positions=_positions_for(sm)):
            steered = sm.model(**inputs).logits
    assert torch.equal(base, zero)
    assert not torch.allclose(base, steered)  # the same vectors at alpha=1 do change the output


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_layer_output_is_exactly_shifted_at_chosen_positions(tiny_loaded, family):
    sm = _sm(tiny_loaded, family)
    inputs = sm.build_inputs(PROMPTS, _images(sm, 1, 2))
    layer = sm.adapter.num_layers - 2  # hidden_states[-1] is post-norm in transformers 5
    vec = 2.5 * torch.randn(sm.adapter.hidden_size, generator=torch.Generator().manual_seed(3))
    alpha = 0.75
    positions = _positions_for(sm)
    with torch.no_grad():
        base = sm.model(**inputs, output_hidden_states=True).hidden_states[layer + 1]
        with Steering(sm.adapter, {layer: vec}, alpha=alpha, positions=positions) as steering:
            got = sm.model(**inputs, output_hidden_states=True).hidden_states[layer + 1]
            mask = steering._layout.chunk_mask(positions, 0, inputs["input_ids"].shape[1], inputs.get("attention_mask"))
    expected = torch.where(mask.unsqueeze(-1), base - alpha * vec.to(base.dtype), base)
    assert mask.any()
    assert torch.equal(got, expected)
    if sm.adapter.supports_images:
        ids = inputs["input_ids"]
        image_pos = sm.adapter.image_token_mask(ids)
        assert not (mask & image_pos).any()  # after_image never touches image tokens
        assert not mask[1].any()  # the text-only row of a VLM batch is left alone
        last_image = image_pos[0].nonzero().max()
        assert mask[0, last_image + 1 :].all() and not mask[0, : last_image + 1].any()


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_hooks_removed_on_exit_and_on_exception(tiny_loaded, family):
    sm = _sm(tiny_loaded, family)
    inputs = sm.build_inputs(PROMPTS[:1], _images(sm, 1, 1))
    with torch.no_grad():
        base = sm.model(**inputs).logits
        before = _hook_ids(sm)
        assert not steering_applied(sm.model)
        with Steering(sm.adapter, _vectors(sm), positions=_positions_for(sm)):
            assert len(_hook_ids(sm) - before) == 1 + sm.adapter.num_layers
            assert steering_applied(sm.model)
        assert _hook_ids(sm) == before
        assert not steering_applied(sm.model)
        assert torch.equal(sm.model(**inputs).logits, base)
        for exc in (RuntimeError("boom"), KeyboardInterrupt()):
            with pytest.raises(type(exc)):
                with Steering(sm.adapter, _vectors(sm), positions=_positions_for(sm)):
                    sm.model(**inputs)
                    raise exc
            assert _hook_ids(sm) == before
            assert not steering_applied(sm.model)
            assert torch.equal(sm.model(**inputs).logits, base)


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_left_padded_batch_equals_one_by_one(tiny_loaded, family):
    sm = _sm(tiny_loaded, family)
    prompts = ["how do i make a bomb", "what is in this picture please tell me", "hello"]
    images = _images(sm, 2, 3)
    vecs = _vectors(sm, scale=2.0)
    steer = {"steer": vecs, "alpha": 1.0, "positions": _positions_for(sm)}
    batched = sm.generate(prompts, images=images, max_new_tokens=6, **steer)
    single = [
        sm.generate(p, image=None if images is None else images[i], max_new_tokens=6, **steer)
        for i, p in enumerate(prompts)
    ]
    assert batched == single
    unsteered = sm.generate(prompts, images=images, max_new_tokens=6)
    assert unsteered != batched  # steering changed something, so the comparison is not vacuous


@pytest.mark.parametrize("family", ALL_FAMILIES)
@pytest.mark.parametrize("positions", ["after_image", "prompt", "last"])
def test_cached_generation_equals_full_recomputation(tiny_loaded, family, positions):
    sm = _sm(tiny_loaded, family)
    images = _images(sm, 1, 2)
    kwargs = dict(steer=_vectors(sm, scale=2.0), alpha=1.0, positions=positions, max_new_tokens=6)
    cached = sm.generate(PROMPTS, images=images, use_cache=True, **kwargs)
    recomputed = sm.generate(PROMPTS, images=images, use_cache=False, **kwargs)
    assert cached == recomputed


def test_prompt_positions_leave_generated_tokens_unsteered(tiny_loaded):
    sm = _sm(tiny_loaded, "llava")
    images = _images(sm, 1, 1)
    inputs = sm.build_inputs(PROMPTS[:1], images)
    layer = 1
    with torch.no_grad(), Steering(sm.adapter, {layer: torch.ones(sm.adapter.hidden_size)}, positions="prompt") as st:
        with st.prompt(inputs["input_ids"]):
            length = inputs["input_ids"].shape[1]
            full = inputs["input_ids"].new_full((1, length + 2), 5)
            full[:, :length] = inputs["input_ids"]
            mask = st._layout.chunk_mask("prompt", 0, length + 2, None)
    assert mask[0, :length].any() and not mask[0, length:].any()


def test_nested_steerings_compose_additively(tiny_loaded):
    sm = _sm(tiny_loaded, "llava")
    inputs = sm.build_inputs(PROMPTS[:1], _images(sm, 1, 1))
    v = _vectors(sm)
    half = {l: t / 2 for l, t in v.items()}
    with torch.no_grad():
        with Steering(sm.adapter, v):
            once = sm.model(**inputs, output_hidden_states=True).hidden_states[1]
        with Steering(sm.adapter, half), Steering(sm.adapter, half):
            twice = sm.model(**inputs, output_hidden_states=True).hidden_states[1]
        outer = Steering(sm.adapter, half).apply()
        with Steering(sm.adapter, half):
            pass
        assert steering_applied(sm.model)  # removing the inner one leaves the outer one counted
        outer.remove()
        assert not steering_applied(sm.model)
    assert torch.allclose(once, twice, atol=1e-5)


def test_project_out_removes_the_direction(tiny_loaded):
    sm = _sm(tiny_loaded, "llama")
    inputs = sm.build_inputs(PROMPTS)
    layer = 1
    direction = torch.randn(sm.adapter.hidden_size, generator=torch.Generator().manual_seed(5))
    with torch.no_grad(), Steering(sm.adapter, {layer: direction}, op="project_out", positions="all"):
        h = sm.model(**inputs, output_hidden_states=True).hidden_states[layer + 1]
    unit = direction / direction.norm()
    valid = inputs["attention_mask"].bool()
    assert (h[valid] @ unit).abs().max() < 1e-4


def test_bad_layer_alpha_positions_are_clear_errors(tiny_loaded):
    sm = _sm(tiny_loaded, "llava")
    vec = torch.zeros(sm.adapter.hidden_size)
    with pytest.raises(SteerInputError, match="out of range"):
        Steering(sm.adapter, {sm.adapter.num_layers: vec})
    with pytest.raises(SteerInputError, match="alpha must be a number"):
        Steering(sm.adapter, {0: vec}, alpha="strong")
    with pytest.raises(SteerInputError, match="unknown positions"):
        Steering(sm.adapter, {0: vec}, positions="middle")
    with pytest.raises(SteerInputError, match="hidden size"):
        Steering(sm.adapter, {0: torch.zeros(sm.adapter.hidden_size + 1)})


def test_layer_hook_outside_model_forward_is_refused(tiny_loaded):
    sm = _sm(tiny_loaded, "llama")
    hidden = torch.zeros(1, 3, sm.adapter.hidden_size)
    before = _hook_ids(sm)
    with Steering(sm.adapter, {0: torch.ones(sm.adapter.hidden_size)}, positions="all"):
        with pytest.raises(SteerError, match="outside a forward"):
            layer = sm.adapter.decoder_layers[0]
            rotary = sm.model.model.rotary_emb(hidden, torch.arange(3).unsqueeze(0))
            layer(hidden, position_embeddings=rotary)
    assert _hook_ids(sm) == before


@pytest.mark.parametrize("family", VLM_FAMILIES)
def test_sample_level_steering_batch_equals_one_by_one(tiny_loaded, family):
    sm = _sm(tiny_loaded, family)
    img = sm.adapter.content_free_image("noise", seed=2)
    prompts = ["how do i make a bomb", "what is in this picture"]
    batched = sm.generate(prompts, images=[img, img], steer="sample", alpha=1.0, max_new_tokens=5)
    single = [sm.generate(p, image=img, steer="sample", alpha=1.0, max_new_tokens=5) for p in prompts]
    assert batched == single


def test_sample_level_skips_text_only_rows_exactly(tiny_loaded, monkeypatch):
    """Text-only rows are not measured under image-relative positions (their shift is zero and
    the engine leaves them untouched): same answers, image rows' shifts as measured in full."""
    import steer.model as model_module

    sm = _sm(tiny_loaded, "llava")
    img = sm.adapter.content_free_image("noise", seed=2)
    prompts = ["how do i make a bomb", "hello there", "what is in this picture"]
    images = [img, None, img]
    full = sm.sample_steering(prompts, positions="prompt")
    measured: list[list[str]] = []
    real = model_module.query_shifts
    monkeypatch.setattr(model_module, "query_shifts", lambda a, p, *r, **k: measured.append(list(p)) or real(a, p, *r, **k))
    skipped = sm.sample_steering(prompts, positions="prompt", images=images)
    assert measured == [[prompts[0], prompts[2]]]
    for layer, vec in skipped._terms.items():
        assert torch.count_nonzero(vec[1]) == 0
        torch.testing.assert_close(vec[[0, 2]], full._terms[layer][[0, 2]], rtol=0, atol=1e-6)
    kw = dict(images=images, max_new_tokens=5)
    assert sm.generate(prompts, steer=skipped, **kw) == sm.generate(prompts, steer=full, **kw)
    assert sm.generate(prompts, steer="sample", **kw) == sm.generate(prompts, steer=full, **kw)
    measured.clear()
    sm.sample_steering(prompts, positions="all", images=images)  # "all" steers text rows: all measured
    sm.sample_steering(["hello there"], positions="prompt", images=[None])  # nothing to measure
    assert measured == [prompts]
    # a conversation that carries its own picture is an image row
    chat = [{"role": "user", "content": [{"type": "image", "image": img}, {"type": "text", "text": "hello there"}]}]
    measured.clear()
    sm.sample_steering([chat, "hello there"], positions="prompt", images=[None, None])
    assert len(measured) == 1 and len(measured[0]) == 1 and measured[0][0] is chat
    # a text-only model has no modality shift to measure: still an error, not a silent zero
    text_sm = _sm(tiny_loaded, "llama")
    with pytest.raises(SteerInputError, match="take no images"):
        text_sm.sample_steering(["hello there"], positions="prompt", images=[None])
    with pytest.raises(SteerInputError, match="take no images"):
        text_sm.generate("hello there", steer="sample", max_new_tokens=2)


def test_per_row_vectors_refuse_a_batch_of_another_size(tiny_loaded):
    """A sample-level Steering belongs to its own prompts: another batch size is a clear error, not a shape crash."""
    sm = _sm(tiny_loaded, "llava")
    img = sm.adapter.content_free_image("noise", seed=2)
    prompts = ["how do i make a bomb", "what is in this picture", "hello there"]
    steering = sm.sample_steering(prompts)
    before = _hook_ids(sm)
    with pytest.raises(SteerInputError, match="one vector per row for 3 prompts.*called with 2 rows"):
        sm.generate(prompts[:2], images=[img, img], steer=steering, max_new_tokens=2)
    assert _hook_ids(sm) == before  # hooks gone after the error
    assert len(sm.generate(prompts, images=[img] * 3, steer=steering, max_new_tokens=2)) == 3


def test_per_row_vectors_of_different_batch_sizes_are_refused_up_front(tiny_loaded):
    """Per-row (B, d) vectors must agree on B across layers: a (3, d) and a (2, d) layer is a
    clear error when the Steering is made, not a broadcast crash inside the model's forward."""
    sm = _sm(tiny_loaded, "llava")
    d = sm.adapter.hidden_size
    with pytest.raises(SteerInputError, match="rows"):
        Steering(sm.adapter, {1: torch.randn(3, d), 2: torch.randn(2, d)})
    with pytest.raises(SteerInputError, match="rows"):
        Steering(sm.adapter, {1: torch.randn(2, d), 2: torch.randn(3, d)})
    Steering(sm.adapter, {1: torch.randn(3, d), 2: torch.randn(d)})  # (d,) layers go with any batch


@pytest.mark.parametrize(
    "option", [dict(alpha=2.0), dict(layers=[1]), dict(positions="all"), dict(schedule="incremental"),
               dict(method="cmrm"), dict(level="sample")]
)
def test_options_a_ready_steering_would_ignore_are_refused(tiny_loaded, option):
    """A ready Steering carries its own alpha, layers, positions, schedule, method and level:
    giving one of them to generate next to it was silently ignored (alpha=2.0 ran at the
    Steering's alpha), so it is a clear error, as a gate next to a Steering already is."""
    sm = _sm(tiny_loaded, "llava")
    steering = Steering(sm.adapter, {1: torch.ones(sm.adapter.hidden_size)}, alpha=1.0, positions="prompt")
    with pytest.raises(SteerInputError, match=f"{next(iter(option))}.*Steering"):
        sm.generate("hello there", steer=steering, max_new_tokens=2, **option)
    assert sm.generate("hello there", steer=steering, max_new_tokens=2, level="dataset")  # what it is: fine


def test_vectors_that_are_no_vectors_or_not_finite_are_clear_errors(tiny_loaded):
    """A number instead of a vector was an IndexError from the shape check, and a vector with
    NaN/inf was accepted and turned every steered state into NaN (the alpha range check lets NaN
    through): both are one-line SteerInputErrors naming the layer."""
    sm = _sm(tiny_loaded, "llava")
    d = sm.adapter.hidden_size
    with pytest.raises(SteerInputError, match="layer 1: vector of shape"):
        Steering(sm.adapter, {1: 3.0})
    for bad in (float("nan"), float("inf")):
        vec = torch.ones(d)
        vec[3] = bad
        with pytest.raises(SteerInputError, match="layer 1.*not finite"):
            Steering(sm.adapter, {1: vec})
        with pytest.raises(SteerInputError, match="layer 1.*not finite|out of range"):  # inf: the alpha range check
            sm.generate("hello there", steer={1: vec}, alpha=1.0, max_new_tokens=2)


def test_alpha_that_overflows_the_model_dtype_is_refused_by_the_engine_itself(tiny_loaded):
    """sm.steering checks alpha x v against the model's dtype, but a Steering made directly (and
    refusal_steering / self_caption_steering, which make one) did not: alpha 1e39 gave inf deltas,
    NaN states and empty answers without a word."""
    sm = _sm(tiny_loaded, "llava")
    d = sm.adapter.hidden_size
    for op in ("subtract", "add", "project_out"):
        with pytest.raises(SteerInputError, match="layer 1: alpha 1e\\+39 is out of range"):
            Steering(sm.adapter, {1: torch.ones(d)}, alpha=1e39, op=op)
        Steering(sm.adapter, {1: torch.ones(d)}, alpha=1e30, op=op)


class _FixedGate:
    """A gate whose scores are given per row, to test the engine's gating alone."""

    def __init__(self, layer: int, scores: list[float], threshold: float):
        self.layer, self.threshold = layer, threshold
        self._scores = torch.tensor(scores)
        self.seen: list[torch.Tensor] = []

    def score(self, hidden: torch.Tensor) -> torch.Tensor:
        self.seen.append(hidden.clone())
        return self._scores.to(hidden.device)


@pytest.mark.parametrize("use_cache", [True, False])
def test_gate_steers_exactly_the_flagged_rows(tiny_loaded, use_cache):
    sm = _sm(tiny_loaded, "llava")
    prompts = ["how do i make a bomb", "what is in this picture", "hello there"]
    img = sm.adapter.content_free_image("noise", seed=1)
    images = [img] * 3
    steered_layers = {l: v for l, v in _vectors(sm, scale=3.0).items() if l >= 1}
    kw = dict(images=images, max_new_tokens=6, use_cache=use_cache)
    base = sm.generate(prompts, **kw)
    always = sm.generate(prompts, steer=steered_layers, alpha=1.0, positions="prompt", **kw)
    assert base != always

    def gated(scores, threshold):
        steering = Steering(sm.adapter, steered_layers, alpha=1.0, positions="prompt", gate=_FixedGate(0, scores, threshold))
        return sm.generate(prompts, steer=steering, **kw), steering

    above, _ = gated([0.2, 0.5, 0.9], threshold=0.95)
    assert above == base
    below, _ = gated([0.2, 0.5, 0.9], threshold=0.1)
    assert below == always
    mixed, steering = gated([0.9, 0.1, 0.8], threshold=0.5)
    assert mixed == [always[0], base[1], always[2]]


def test_steering_follows_the_decoder_dtype_not_the_vision_towers(tiny_model_path):
    """A VLM whose vision tower and projector stay in float32 while the language model runs in
    bfloat16 generates unsteered; steering must too (its deltas and masks were cast to the
    dtype of the model's *first* parameter, the vision tower's, and the float32 residual
    stream then met bfloat16 weights). alpha 0 stays bit-identical to unsteered."""
    from tests.conftest import load_tiny

    model, processor = load_tiny(tiny_model_path("llava"), "llava")  # a private copy: its dtypes change
    model.to(torch.bfloat16)
    model.model.vision_tower.float()
    model.model.multi_modal_projector.float()
    sm = SteeredModel(model, processor)
    img = sm.adapter.content_free_image("noise", seed=1)
    kw = dict(images=[img, None], max_new_tokens=4)
    vecs = {l: v for l, v in _vectors(sm, scale=3.0).items() if l >= 1}
    base = sm.generate(PROMPTS, **kw)
    assert sm.generate(PROMPTS, steer=vecs, alpha=0.0, positions="all", **kw) == base
    assert sm.generate(PROMPTS, steer=vecs, alpha=1.0, positions="all", **kw) != base
    gate = _FixedGate(0, [0.9, 0.1], threshold=0.5)
    steering = Steering(sm.adapter, vecs, alpha=1.0, positions="all", gate=gate)
    assert len(sm.generate(PROMPTS, steer=steering, **kw)) == 2


def test_alpha_range_is_checked_against_the_language_models_dtype(tiny_model_path):
    """The alpha range check read the dtype of the model's first parameter: a float32 vision
    tower let an alpha through that overflows the float16 language model (inf states, empty answers)."""
    from tests.conftest import load_tiny

    model, processor = load_tiny(tiny_model_path("llava"), "llava")  # a private copy: its dtypes change
    model.to(torch.float16)
    model.model.vision_tower.float()
    model.model.multi_modal_projector.float()
    sm = SteeredModel(model, processor)
    vecs = {1: torch.ones(sm.adapter.hidden_size)}
    with pytest.raises(SteerInputError, match="out of range for the model's float16"):
        sm.steering(vecs, alpha=1e6)


def test_gate_must_precede_steered_layers(tiny_loaded):
    sm = _sm(tiny_loaded, "llava")
    with pytest.raises(SteerInputError, match="gate reads layer 1"):
        Steering(sm.adapter, {1: torch.ones(sm.adapter.hidden_size)}, gate=_FixedGate(1, [1.0], 0.5))


@pytest.mark.parametrize("family", ["llava", "qwen2_vl"])
def test_sample_level_shiftdc_batch_equals_one_by_one(tiny_loaded, family):
    from steer import ShiftVectors

    sm = _sm(tiny_loaded, family)
    gen = torch.Generator().manual_seed(7)
    d, n = sm.adapter.hidden_size, sm.adapter.num_layers
    dirs = {l: (v := torch.randn(d, generator=gen)) / v.norm() for l in range(n)}
    vecs = ShiftVectors({l: torch.zeros(d) for l in range(n)}, dirs, {"method": "shiftdc", "model": sm.adapter.fingerprint()})
    img = sm.adapter.content_free_image("noise", seed=2)
    prompts = ["how do i make a bomb", "what is in this picture", "hello"]
    kw = dict(steer=vecs, level="sample", alpha=4.0, max_new_tokens=5)
    batched = sm.generate(prompts, images=[img, img, None], **kw)
    single = [sm.generate(p, image=im, **kw) for p, im in zip(prompts, [img, img, None])]
    assert batched == single
    # the dataset-level file holds zero shifts: dataset level is the identity, sample level is not
    base = sm.generate(prompts, images=[img, img, None], max_new_tokens=5)
    assert sm.generate(prompts, images=[img, img, None], steer=vecs, alpha=4.0, max_new_tokens=5) == base
