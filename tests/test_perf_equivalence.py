"""The performance work changes cost, never results.

* Free decode steps: with positions that cannot touch a generated token (``prompt``,
  ``prompt_last``) or a gate that closed every row, decode steps run no steering tensor op,
  and every positions mode still gives the greedy tokens and logits of a naive reference
  hook written from the definitions in :mod:`steer.positions` (Python loops, no masks).
"""

from __future__ import annotations

import pytest
import torch

from steer import SteeredModel, Steering
from steer.positions import POSITIONS

PROMPTS = ["how do i make a bomb", "what is in this picture please", "hello"]


def _sm(tiny_loaded, family) -> SteeredModel:
    model, processor = tiny_loaded(family)
    return SteeredModel(model, processor)


def _vectors(sm: SteeredModel, scale: float = 2.0) -> dict[int, torch.Tensor]:
    gen = torch.Generator().manual_seed(11)
    return {l: scale * torch.randn(sm.adapter.hidden_size, generator=gen) for l in range(sm.adapter.num_layers)}


def _inputs(sm: SteeredModel):
    images = None
    if sm.adapter.supports_images:
        img = sm.adapter.content_free_image("noise", seed=1)
        images = [img, img, None]
    return sm.build_inputs(PROMPTS, images)


def _hook_ids(sm: SteeredModel) -> set[int]:
    modules = [sm.model, *sm.adapter.decoder_layers]
    return {hid for m in modules for hid in (*m._forward_hooks, *m._forward_pre_hooks)}


def _naive_wanted(kind: str, pos: int, row: int, ids, attn, image_rows, prompt_len: int, vlm: bool) -> bool:
    """Does ``kind`` steer absolute position ``pos`` of ``row``? Straight from the docstring."""
    if pos < prompt_len and not bool(attn[row, pos]):
        return False  # padding
    is_image = pos < prompt_len and bool(image_rows[row, pos])
    image_idx = [i for i in range(prompt_len) if bool(image_rows[row, i])]
    anchor = image_idx[-1] if image_idx else -1
    enabled = bool(image_idx) if vlm else True
    if kind == "all":
        return True
    if kind == "image":
        return is_image
    if kind == "text":
        return not is_image
    if kind == "last":
        return pos >= prompt_len - 1
    if kind == "prompt_last":
        return enabled and pos == prompt_len - 1
    if kind == "after_image":
        return enabled and pos > anchor
    if kind == "prompt":
        return enabled and anchor < pos < prompt_len
    raise AssertionError(kind)


class _NaiveHooks:
    """Reference steering: counts absolute positions itself and edits masked positions one by one."""

    def __init__(self, sm: SteeredModel, vectors, alpha: float, kind: str, inputs):
        self.sm, self.kind = sm, kind
        dtype = next(sm.model.parameters()).dtype
        self.terms = {l: -(alpha * v.to(dtype)) for l, v in vectors.items()}
        self.ids = inputs["input_ids"]
        self.attn = inputs["attention_mask"]
        self.image = sm.adapter.image_token_mask(self.ids)
        self.prompt_len = self.ids.shape[1]
        self.seen = 0
        self.start = 0
        self.handles = []

    def __enter__(self):
        def pre(module, args, kwargs):
            ids = kwargs.get("input_ids")
            self.start = self.seen
            self.seen += ids.shape[1]

        self.handles.append(self.sm.model.register_forward_pre_hook(pre, with_kwargs=True))
        for layer, term in self.terms.items():
            self.handles.append(self.sm.adapter.decoder_layers[layer].register_forward_hook(self._hook(term), prepend=True))
        return self

    def _hook(self, term):
        def hook(module, args, output):
            hidden = output if torch.is_tensor(output) else output[0]
            hidden = hidden.clone()
            for b in range(hidden.shape[0]):
                for t in range(hidden.shape[1]):
                    wanted = _naive_wanted(
                        self.kind, self.start + t, b, self.ids, self.attn, self.image, self.prompt_len,
                        self.sm.adapter.supports_images,
                    )
                    if wanted:
                        hidden[b, t] = hidden[b, t] + term
            return hidden if torch.is_tensor(output) else (hidden, *output[1:])

        return hook

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()


def _generate(sm: SteeredModel, inputs, max_new_tokens: int = 5):
    out = sm.model.generate(
        **inputs, max_new_tokens=max_new_tokens, do_sample=False, output_logits=True, return_dict_in_generate=True
    )
    return out.sequences, torch.stack(out.logits)


@pytest.mark.parametrize("family", ["llava", "qwen2_vl", "llama"])
@pytest.mark.parametrize("kind", POSITIONS)
def test_engine_matches_naive_reference_hook(tiny_loaded, family, kind):
    sm = _sm(tiny_loaded, family)
    if kind == "image" and not sm.adapter.supports_images:
        pytest.skip("image positions need a VLM")
    inputs = _inputs(sm)
    vectors = _vectors(sm)
    with torch.no_grad():
        with _NaiveHooks(sm, vectors, 1.0, kind, inputs):
            ref_tokens, ref_logits = _generate(sm, inputs)
        with Steering(sm.adapter, vectors, alpha=1.0, positions=kind) as st, st.prompt(inputs["input_ids"]):
            tokens, logits = _generate(sm, inputs)
        base_tokens, base_logits = _generate(sm, inputs)
    assert torch.equal(tokens, ref_tokens)
    torch.testing.assert_close(logits, ref_logits, rtol=0, atol=1e-5)
    assert not torch.allclose(logits, base_logits)  # the steering did something


def _count_addcmul(monkeypatch) -> list[int]:
    calls = [0]
    real = torch.addcmul

    def counting(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "addcmul", counting)
    return calls


class _StepCounter:
    """Counts steering tensor ops per forward of the model (prefill = forward 0)."""

    def __init__(self, sm, calls):
        self.per_forward: list[int] = []
        self.calls = calls
        self.handle = sm.model.register_forward_hook(self._done)

    def _done(self, *args):
        self.per_forward.append(self.calls[0] - sum(self.per_forward))


@pytest.mark.parametrize("kind", ["prompt", "prompt_last"])
def test_decode_steps_run_no_steering_op_when_nothing_can_be_steered(tiny_loaded, monkeypatch, kind):
    sm = _sm(tiny_loaded, "llava")
    inputs = _inputs(sm)
    calls = _count_addcmul(monkeypatch)
    counter = _StepCounter(sm, calls)
    try:
        with torch.no_grad(), Steering(sm.adapter, _vectors(sm), positions=kind) as st, st.prompt(inputs["input_ids"]):
            _generate(sm, inputs, max_new_tokens=4)
    finally:
        counter.handle.remove()
    assert counter.per_forward[0] == sm.adapter.num_layers  # the prefill is steered
    assert counter.per_forward[1:] == [0, 0, 0]  # decode steps: the hooks returned before any tensor op


def test_decode_steps_still_steer_positions_that_reach_generated_tokens(tiny_loaded, monkeypatch):
    sm = _sm(tiny_loaded, "llava")
    inputs = _inputs(sm)
    calls = _count_addcmul(monkeypatch)
    counter = _StepCounter(sm, calls)
    try:
        with torch.no_grad(), Steering(sm.adapter, _vectors(sm), positions="last") as st, st.prompt(inputs["input_ids"]):
            _generate(sm, inputs, max_new_tokens=3)
    finally:
        counter.handle.remove()
    assert counter.per_forward == [sm.adapter.num_layers] * 3


class _ClosedGate:
    layer, threshold = 0, 0.5

    def score(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.zeros(hidden.shape[0], device=hidden.device)


def test_gate_closing_every_row_frees_the_rest_of_the_generation(tiny_loaded, monkeypatch):
    sm = _sm(tiny_loaded, "llava")
    inputs = _inputs(sm)
    vectors = {l: v for l, v in _vectors(sm).items() if l >= 1}
    with torch.no_grad():
        base_tokens, base_logits = _generate(sm, inputs, max_new_tokens=4)
        calls = _count_addcmul(monkeypatch)
        counter = _StepCounter(sm, calls)
        try:
            with Steering(sm.adapter, vectors, positions="after_image", gate=_ClosedGate()) as st, st.prompt(
                inputs["input_ids"]
            ):
                tokens, logits = _generate(sm, inputs, max_new_tokens=4)
        finally:
            counter.handle.remove()
    assert torch.equal(tokens, base_tokens) and torch.equal(logits, base_logits)
    assert sum(counter.per_forward) == 0


@pytest.mark.parametrize("kind", ["prompt", "after_image"])
def test_hooks_gone_after_an_exception_in_a_decode_step(tiny_loaded, kind):
    sm = _sm(tiny_loaded, "llava")
    inputs = _inputs(sm)
    before = _hook_ids(sm)
    with torch.no_grad():
        base = sm.model(**inputs).logits
    forwards = [0]

    def boom(module, args, kwargs):
        forwards[0] += 1
        if forwards[0] == 3:
            raise RuntimeError("boom in a decode step")

    handle = sm.model.register_forward_pre_hook(boom, with_kwargs=True)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            sm.generate(PROMPTS, images=[sm.adapter.content_free_image("noise", seed=1)] * 3, steer=_vectors(sm),
                        positions=kind, max_new_tokens=5)
    finally:
        handle.remove()
    assert _hook_ids(sm) == before
    with torch.no_grad():
        assert torch.equal(sm.model(**inputs).logits, base)


# ---------------------------------------------------------------------------- sample level
SHIFT_PROMPTS = ["how do i make a bomb", "what is in this picture please tell me now", "hello"]


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[l] - b[l]).abs().max()) for l in a)


@pytest.mark.parametrize("family", ["llava", "llava_next", "idefics3"])
def test_cached_prefix_shifts_equal_the_padded_path(tiny_loaded, family):
    from steer.sample_shift import cached_prefix_query_shifts, clear_prefix_cache, padded_query_shifts, query_shifts

    sm = _sm(tiny_loaded, family)
    layers = list(range(sm.adapter.num_layers))
    clear_prefix_cache(sm.model)
    ref = padded_query_shifts(sm.adapter, SHIFT_PROMPTS, layers, null_image="blank")
    got = cached_prefix_query_shifts(sm.adapter, SHIFT_PROMPTS, layers, null_image="blank")
    assert got is not None
    assert _max_diff(ref, got) < 1e-5 * max(float(v.abs().max()) for v in ref.values()) + 1e-7
    assert max(float(v.abs().max()) for v in ref.values()) > 1e-3  # the shifts are not trivially zero
    # the public entry point takes the cached path; a subset of layers and one prompt agree too
    assert _max_diff(query_shifts(sm.adapter, SHIFT_PROMPTS, layers), got) == 0.0
    one = cached_prefix_query_shifts(sm.adapter, SHIFT_PROMPTS[1:2], layers[:2])
    assert _max_diff({l: ref[l][1:2] for l in layers[:2]}, one) < 1e-6


@pytest.mark.parametrize("family", ["llava", "qwen2_vl"])
def test_repeated_prompts_are_measured_once(tiny_loaded, family):
    """A fixed prompt sent with many images (FigStep-style) costs one row per distinct text,
    and every repeat gets exactly its first occurrence's shift (the cached-prefix and the
    padded path alike: Qwen2-VL takes the padded one)."""
    from steer.sample_shift import query_shifts

    sm = _sm(tiny_loaded, family)
    layers = list(range(sm.adapter.num_layers))
    prompts = [SHIFT_PROMPTS[0], SHIFT_PROMPTS[2], SHIFT_PROMPTS[0], SHIFT_PROMPTS[0], SHIFT_PROMPTS[2]]
    rows: list[int] = []
    handle = sm.model.register_forward_pre_hook(
        lambda mod, args, kwargs: rows.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    try:
        got = query_shifts(sm.adapter, prompts, layers)
    finally:
        handle.remove()
    assert max(rows) <= 4  # two distinct prompts: at most 2 x 2 rows in one forward (plus a cached prefix)
    distinct = query_shifts(sm.adapter, [SHIFT_PROMPTS[0], SHIFT_PROMPTS[2]], layers)
    for layer in layers:
        assert torch.equal(got[layer], distinct[layer][[0, 1, 0, 0, 1]])
    chat = [{"role": "user", "content": "hello"}]
    assert torch.equal(query_shifts(sm.adapter, [chat, chat], layers)[0][1], query_shifts(sm.adapter, [chat], layers)[0][0])


def test_prefix_is_computed_once_and_text_rows_stay_short(tiny_loaded):
    from steer.sample_shift import clear_prefix_cache, query_shifts

    sm = _sm(tiny_loaded, "llava")
    layers = [0, 1]
    clear_prefix_cache(sm.model)
    seen: list[tuple[int, int]] = []
    handle = sm.model.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )
    image_rows_built: list[int] = []
    real_build = type(sm.adapter).build_inputs

    def counting_build(self, prompts, images=None):
        if images is not None and any(im is not None for im in images):
            image_rows_built.append(len(prompts))
        return real_build(self, prompts, images)

    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(type(sm.adapter), "build_inputs", counting_build)
            query_shifts(sm.adapter, SHIFT_PROMPTS, layers)
            first = list(image_rows_built)
            query_shifts(sm.adapter, SHIFT_PROMPTS[:1], layers)
    finally:
        handle.remove()
    # the first call preprocesses images (the image rows, then the prefix's one row); later
    # calls split the chat text with the tokenizer alone (LLaVA's split matches the processor's)
    assert first == [len(SHIFT_PROMPTS), 1] and image_rows_built == first
    image_row_len = sm.build_inputs(SHIFT_PROMPTS[:1], [sm.adapter.content_free_image("blank")])["input_ids"].shape[1]
    # first call: the prefix (one row) then one forward of 2B short rows; second call: the short forward only
    assert len(seen) == 3 and seen[0][0] == 1
    assert seen[1][0] == 2 * len(SHIFT_PROMPTS) and seen[2][0] == 2
    text_len = max(sm.build_inputs([p])["input_ids"].shape[1] for p in SHIFT_PROMPTS)
    assert seen[1][1] < image_row_len and seen[1][1] <= text_len + 2  # no row padded to an image row's length


def test_prefix_cache_follows_weight_edits(tiny_loaded):
    from steer.sample_shift import clear_prefix_cache, padded_query_shifts, query_shifts

    sm = _sm(tiny_loaded, "llava")
    layers = list(range(sm.adapter.num_layers))
    clear_prefix_cache(sm.model)
    before = query_shifts(sm.adapter, SHIFT_PROMPTS, layers)
    weight = sm.model.model.multi_modal_projector.linear_1.weight
    saved = weight.detach().clone()
    try:
        with torch.no_grad():
            weight.mul_(1.5)  # an in-place edit, as a projector swap does
        after = query_shifts(sm.adapter, SHIFT_PROMPTS, layers)
        ref = padded_query_shifts(sm.adapter, SHIFT_PROMPTS, layers)
        from steer.sample_shift import _PREFIXES

        assert len(_PREFIXES[sm.model]) == 1  # the prefix of the old weights was dropped, not kept
    finally:
        with torch.no_grad():
            weight.copy_(saved)
    assert _max_diff(after, ref) < 1e-5
    assert _max_diff(after, before) > 1e-4


def test_shifts_measured_under_a_live_steering_leave_the_prefix_cache_clean(tiny_loaded):
    """Measuring sample-level shifts while another steering is applied (``with sm.steering(A):
    sm.generate(..., steer="sample")``) measures them under that steering, as the padded path
    does, and never leaves a steered prefix in the cache: later unsteered measurements stay exact."""
    from steer.sample_shift import clear_prefix_cache, padded_query_shifts, query_shifts

    sm = _sm(tiny_loaded, "llava")
    layers = list(range(sm.adapter.num_layers))
    clear_prefix_cache(sm.model)
    ref = padded_query_shifts(sm.adapter, SHIFT_PROMPTS, layers)
    scale = max(float(v.abs().max()) for v in ref.values())
    with Steering(sm.adapter, {0: 5.0 * torch.ones(sm.adapter.hidden_size)}, positions="all"):
        steered_ref = padded_query_shifts(sm.adapter, SHIFT_PROMPTS, layers)
        steered = query_shifts(sm.adapter, SHIFT_PROMPTS, layers)
    assert _max_diff(steered, steered_ref) < 1e-5 * scale + 1e-7
    assert _max_diff(steered_ref, ref) > 1e-3  # the live steering does change what is measured
    assert _max_diff(query_shifts(sm.adapter, SHIFT_PROMPTS, layers), ref) < 1e-5 * scale + 1e-7


def test_qwen2_vl_falls_back_to_the_padded_path(tiny_loaded):
    from steer.sample_shift import padded_query_shifts, query_shifts

    sm = _sm(tiny_loaded, "qwen2_vl")
    assert sm.adapter.image_prefix_shareable is False  # M-RoPE positions depend on the image grid
    layers = list(range(sm.adapter.num_layers))
    assert _max_diff(query_shifts(sm.adapter, SHIFT_PROMPTS, layers), padded_query_shifts(sm.adapter, SHIFT_PROMPTS, layers)) == 0.0


@pytest.mark.parametrize("family", ["llava", "idefics3"])
def test_sample_level_generation_unchanged(tiny_loaded, family, monkeypatch):
    """Greedy tokens of sample-level steering with the cached prefix equal those with the padded path."""
    import steer.sample_shift as sample_shift

    sm = _sm(tiny_loaded, family)
    img = sm.adapter.content_free_image("noise", seed=2)
    kw = dict(images=[img, img, None], steer="sample", alpha=3.0, max_new_tokens=6)
    fast = sm.generate(SHIFT_PROMPTS, **kw)
    monkeypatch.setattr(sample_shift, "cached_prefix_query_shifts", lambda *a, **k: None)
    assert sm.generate(SHIFT_PROMPTS, **kw) == fast


# ---------------------------------------------------------------------------- threads
def test_default_threads_leaves_busy_cores_alone():
    from steer.threads import CAP, default_threads

    assert default_threads(cores=2, load=0.2) == 2
    assert default_threads(cores=2, load=1.3) == 1
    assert default_threads(cores=2, load=9.0) == 1  # never below one
    assert default_threads(cores=64, load=1.0) == CAP
    assert default_threads(cores=16, load=12.0) == 4


def test_threads_option_then_env_then_default(monkeypatch):
    from steer.errors import SteerInputError
    from steer.threads import ENV, choose_threads

    monkeypatch.setenv(ENV, "3")
    assert (choose_threads(2).threads, choose_threads(2).source) == (2, "--threads")
    assert (choose_threads().threads, choose_threads().source) == (3, ENV)
    monkeypatch.setenv(ENV, "many")
    with pytest.raises(SteerInputError, match="STEER_THREADS must be a whole number"):
        choose_threads()
    monkeypatch.delenv(ENV)
    assert choose_threads().source == "default" and "load average" in choose_threads().describe()


def test_every_model_command_takes_threads_and_reports_it(tiny_model_path, capsys, monkeypatch):
    import typer

    import cli
    from tests.cli_runner import run_cli

    commands = {c.name: c for c in typer.main.get_command(cli.app).commands.values()}
    model_commands = ["generate", "calibrate", "probe", "eval", "sweep", "compare", "train-tga", "inspect-layers", "demo"]
    for name in model_commands:
        assert "--threads" in [o for p in commands[name].params for o in p.opts], name
    before = torch.get_num_threads()
    try:
        code, out, err = run_cli(
            ["generate", "--model", tiny_model_path("llama"), "--prompt", "hello", "--max-new-tokens", "2", "--threads", "1"],
            capsys, monkeypatch,
        )
        assert code == 0, err
        assert "threads: 1 (from --threads)" in err and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------- memory: PC1 and probe store
def _exact_pc1(x: torch.Tensor) -> tuple[torch.Tensor, float]:
    cov = torch.cov(x.T, correction=0)
    evals, evecs = torch.linalg.eigh(cov)
    u = evecs[:, -1]
    return (x.mean(0) @ u) * u, float(evals[-1] / evals.clamp_min(0).sum())


def _pc1_of(x: torch.Tensor, chunks: int = 3, expected: int | None = None, exact: bool = True):
    from calibration.accumulator import SKETCH_SIZE, ShiftAccumulator

    d = x.shape[1]
    parts = [ShiftAccumulator([0], d, second_moment=True, expected_samples=expected) for _ in range(chunks)]
    for part, rows in zip(parts, x.chunk(chunks)):
        part.update({0: rows})
    merged = ShiftAccumulator.from_state_dict(parts[0].state_dict())
    for part in parts[1:]:
        merged.merge(part)
    assert d <= SKETCH_SIZE or all(t.numel() < d * d for t in merged.tensors())  # never a d x d matrix
    assert merged.pc1_is_exact(0) is exact
    return merged.pc1(0)


def _spiked(n: int, d: int, seed: int, spike: float) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    direction = torch.randn(d, generator=gen, dtype=torch.float64)
    direction /= direction.norm()
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    x += spike * torch.randn(n, 1, generator=gen, dtype=torch.float64) * direction
    return x + 0.3 * direction  # a mean with a component along the spike


@pytest.mark.parametrize("n,d,expected", [(40, 6, None), (60, 300, None), (100, 700, None), (120, 700, 120)])
def test_streaming_pc1_is_exact_when_rank_fits_the_sketch(n, d, expected):
    """d <= k (identity basis) or no more samples than sketch columns: exact PC1, any spectrum."""
    x = _spiked(n, d, seed=n, spike=0.0)  # flat spectrum: the hardest case for a randomized method
    got, got_ratio = _pc1_of(x, expected=expected)
    ref, ref_ratio = _exact_pc1(x)
    assert torch.allclose(got, ref, atol=1e-9 * max(1.0, float(ref.norm())))
    assert abs(got_ratio - ref_ratio) < 1e-9


def test_streaming_pc1_estimate_past_the_sketch_is_close():
    """More samples than sketch columns on a wide model: the one-pass estimate, flagged as not exact."""
    x = _spiked(1500, 700, seed=3, spike=12.0)
    got, got_ratio = _pc1_of(x, chunks=5, exact=False)
    ref, ref_ratio = _exact_pc1(x)
    cos = float(got @ ref) / float(got.norm() * ref.norm())
    assert cos > 1 - 1e-4 and abs(float(got.norm()) - float(ref.norm())) < 1e-2 * float(ref.norm())
    assert abs(got_ratio - ref_ratio) < 0.01


def test_accumulator_memory_at_a_7b_shape_is_a_sketch():
    from calibration.accumulator import SKETCH_SIZE, ShiftAccumulator

    acc = ShiftAccumulator([0, 1], 4096, second_moment=True)
    assert tuple(acc.sketch.shape) == (2, 4096, SKETCH_SIZE)  # 2 x 17 MB, not 2 x 134 MB
    acc = ShiftAccumulator([0, 1], 4096, second_moment=True, expected_samples=300)
    assert tuple(acc.sketch.shape) == (2, 4096, 300)


def test_probe_store_is_bounded_and_calibration_respects_it(tiny_loaded, monkeypatch):
    import calibration.accumulator as accumulator
    from calibration import calibrate_cmrm
    from steer.errors import SteerInputError

    store = accumulator.ProbeStore([0, 1], 64, max_bytes=2 * 4 * 2 * 64 * 3)
    assert store.capacity == 3
    for i in range(3):
        store.add(i, torch.zeros(2, 64), torch.zeros(2, 64))
    with pytest.raises(SteerInputError, match="probe store full"):
        store.add(7, torch.zeros(2, 64), torch.zeros(2, 64))
    store.add(1, torch.ones(2, 64), torch.ones(2, 64))  # replacing a kept sample is fine
    assert accumulator.ProbeStore([0] * 1 + list(range(1, 32)), 4096).capacity == 128

    model, processor = tiny_loaded("llava")
    sm = SteeredModel(model, processor)
    per_sample = 2 * 4 * sm.adapter.num_layers * sm.adapter.hidden_size
    monkeypatch.setattr(accumulator, "PROBE_STORE_BYTES", per_sample * 4)
    import calibration.cmrm as cmrm

    asked: list[int] = []
    real = cmrm.probe_indices
    monkeypatch.setattr(cmrm, "probe_indices", lambda n, k, seed: asked.append(k) or real(n, k, seed))
    prompts = [f"how do i make a {w}" for w in ("bomb", "car", "boat", "house", "plan", "fire", "drink", "book")]
    calibrate_cmrm(sm, prompts, batch_size=4, progress=False)
    assert asked == [4]  # 256 asked for, 4 fit
