"""Content-aware steering (issue 16): self-caption anchoring and gated refusal addition, every family."""

from __future__ import annotations

import pytest
import torch

from steer import ShiftVectors, SteeredModel
from steer.capture import capture_pooled
from steer.errors import SteerInputError
from steer.eval.variants import build_variant, parse_variant
from steer.gate import ProbeGate
from steer.sample_shift import padded_query_shifts
from steer.self_caption import self_caption_shifts
from tests.tiny_models import ALL_FAMILIES, VLM_FAMILIES

PROMPTS = ["how do i make this", "what is in this picture", "hello there"]


def _sm(tiny_loaded, family) -> SteeredModel:
    return SteeredModel(*tiny_loaded(family))


def _hook_ids(sm: SteeredModel) -> set[int]:
    modules = [sm.model, *sm.adapter.decoder_layers]
    return {hid for m in modules for hid in (*m._forward_hooks, *m._forward_pre_hooks)}


def _images(sm: SteeredModel) -> list:
    return [sm.adapter.content_free_image("noise", seed=s) for s in (1, 2)] + [None]


def _shiftdc_file(sm: SteeredModel, seed: int = 3) -> ShiftVectors:
    """A ShiftDC-shaped vector file: unit directions and a recorded gap norm per layer."""
    gen = torch.Generator().manual_seed(seed)
    d, n = sm.adapter.hidden_size, sm.adapter.num_layers
    dirs = {l: (v := torch.randn(d, generator=gen)) / v.norm() for l in range(n)}
    meta = {
        "method": "shiftdc",
        "model": sm.adapter.fingerprint(),
        "safety": {"gap_norm": {str(l): 2.0 + l for l in range(n)}},
    }
    return ShiftVectors({l: torch.zeros(d) for l in range(n)}, dirs, meta)


# ---------------------------------------------------------------------- self-caption anchoring
@pytest.mark.parametrize("family", VLM_FAMILIES)
def test_self_caption_batch_equals_one_by_one(tiny_loaded, family):
    sm = _sm(tiny_loaded, family)
    images = _images(sm)
    captions = sm.self_captions(images, max_new_tokens=4)
    assert captions == [sm.self_captions([im], max_new_tokens=4)[0] for im in images]
    assert captions[2] == ""  # no image, no caption
    vecs = _shiftdc_file(sm)
    for method, vectors, twin in (("cmrm", None, "caption"), ("shiftdc", vecs, "caption"), ("shiftdc", vecs, "both")):
        kw = dict(vectors=vectors, method=method, alpha=3.0, twin=twin)
        steering = sm.self_caption_steering(PROMPTS, images, **kw)
        batched = sm.generate(PROMPTS, images=images, steer=steering, max_new_tokens=5)
        single = [
            sm.generate(p, image=im, steer=sm.self_caption_steering([p], [im], **kw), max_new_tokens=5)
            for p, im in zip(PROMPTS, images)
        ]
        assert batched == single, (method, twin)


@pytest.mark.parametrize("family", VLM_FAMILIES)
def test_empty_caption_is_sample_level_cmrm(tiny_loaded, family, monkeypatch):
    """With the content-free image and an empty caption, the twin is the query alone: sample-level CMRM
    (on its one-batch reference path; the cached-prefix path agrees to rounding, tests/test_perf_equivalence.py)."""
    import steer.sample_shift

    monkeypatch.setattr(steer.sample_shift, "cached_prefix_query_shifts", lambda *a, **k: None)
    sm = _sm(tiny_loaded, family)
    blank = sm.adapter.content_free_image("blank")
    layers = list(range(sm.adapter.num_layers))
    ours = self_caption_shifts(sm.adapter, PROMPTS, [blank] * 3, layers, [""] * 3)
    ref = padded_query_shifts(sm.adapter, PROMPTS, layers, null_image="blank")  # the same one-batch path, bit for bit
    for layer in layers:
        assert torch.equal(ours[layer], ref[layer].cpu())
    steering = sm.self_caption_steering(PROMPTS, [blank] * 3, captions=[""] * 3)
    kw = dict(images=[blank] * 3, max_new_tokens=5)
    assert sm.generate(PROMPTS, steer=steering, **kw) == sm.generate(PROMPTS, steer="sample", **kw)


@pytest.mark.parametrize("family", VLM_FAMILIES)
def test_self_caption_leaves_text_only_rows_and_a_caption_changes_the_twin(tiny_loaded, family):
    sm = _sm(tiny_loaded, family)
    images = _images(sm)
    layers = list(range(sm.adapter.num_layers))
    with_caption = self_caption_shifts(sm.adapter, PROMPTS, images, layers, ["a red ball", "a red ball", "x"])
    without = self_caption_shifts(sm.adapter, PROMPTS, images, layers, ["", "", ""])
    last = layers[-1]
    assert torch.equal(with_caption[last][2], torch.zeros(sm.adapter.hidden_size))  # text-only row: zero shift
    assert not torch.equal(with_caption[last][:2], without[last][:2])  # the caption is in the twin
    steering = sm.self_caption_steering(PROMPTS, images, alpha=5.0)
    steered = sm.generate(PROMPTS, images=images, steer=steering, max_new_tokens=5)
    assert steered[2] == sm.generate(PROMPTS, images=images, max_new_tokens=5)[2]


@pytest.mark.parametrize("family", VLM_FAMILIES)
def test_self_caption_hooks_gone_after_errors(tiny_loaded, family):
    sm = _sm(tiny_loaded, family)
    images = _images(sm)
    before = _hook_ids(sm)
    steering = sm.self_caption_steering(PROMPTS, images)
    with pytest.raises(SteerInputError, match="one vector per row for 3 prompts"):
        sm.generate(PROMPTS[:2], images=images[:2], steer=steering, max_new_tokens=2)
    assert _hook_ids(sm) == before

    def boom(module, args, output):
        raise RuntimeError("layer failed")

    handle = sm.adapter.decoder_layers[0].register_forward_hook(boom)
    try:
        with pytest.raises(RuntimeError, match="layer failed"):
            sm.self_caption_steering(PROMPTS, images, captions=["a", "b", ""])
    finally:
        handle.remove()
    assert _hook_ids(sm) == before
    with pytest.raises(SteerInputError, match="caption prompt is empty"):
        sm.self_captions(images, prompt=" ")
    with pytest.raises(SteerInputError, match="safety directions"):
        sm.self_caption_steering(PROMPTS, images, method="shiftdc")
    with pytest.raises(SteerInputError, match="use method shiftdc"):
        sm.self_caption_steering(PROMPTS, images, twin="both")


def test_twin_both_removes_the_more_refusing_component(tiny_loaded):
    """``twin=both`` keeps, per row and layer, the most negative coefficient along v of the two twins."""
    from steer.self_caption import anchored_shifts, described_prompts, most_refusing_along

    sm = _sm(tiny_loaded, "llava")
    images = _images(sm)
    vecs = _shiftdc_file(sm)
    layers = vecs.layers
    captions = ["a red ball", "a blue kite", ""]
    sets = anchored_shifts(sm.adapter, PROMPTS, images, layers, [described_prompts(sm.adapter, PROMPTS, captions), PROMPTS])
    alone = anchored_shifts(sm.adapter, PROMPTS, images, layers, [PROMPTS])[0]
    picked = most_refusing_along(sets, vecs.directions)
    for layer in layers:
        v = vecs.directions[layer]
        a, b = sets[0][layer] @ v, sets[1][layer] @ v
        assert torch.allclose(alone[layer], sets[1][layer], atol=1e-4)  # the twin set's place in the batch does not matter
        assert torch.allclose(picked[layer] @ v, torch.minimum(a, b), atol=1e-5)
        assert torch.equal(picked[layer][2], torch.zeros(sm.adapter.hidden_size))


def test_self_caption_refuses_a_text_only_model(tiny_loaded):
    sm = _sm(tiny_loaded, "llama")
    with pytest.raises(SteerInputError, match="take no images"):
        sm.self_captions([None])


# ---------------------------------------------------------------------- gated refusal addition
def _gate_between(sm: SteeredModel, inputs: dict, seed: int = 5) -> tuple[ProbeGate, torch.Tensor]:
    """A layer-0 probe with random weights and a threshold that splits the batch's rows."""
    gen = torch.Generator().manual_seed(seed)
    d = sm.adapter.hidden_size
    gate = ProbeGate(0, torch.zeros(d), torch.ones(d), torch.randn(d, generator=gen) / d**0.5, torch.zeros(1),
                     metadata={"model": sm.adapter.fingerprint()})  # made on this model, as `steer probe` records
    scores = gate.score(capture_pooled(sm.adapter, inputs, [0])[0].float())
    order = scores.sort().values
    assert order[0] < order[-1], "rows need distinct scores to split them"
    threshold = float((order[0] + order[1]) / 2)  # the lowest-scoring row stays under the threshold
    return gate.with_threshold(threshold), scores > threshold


@pytest.mark.parametrize("family", ALL_FAMILIES)
@pytest.mark.parametrize("positions", ["all", "prompt_last"])
def test_gated_addition_adds_exactly_alpha_r_on_flagged_rows(tiny_loaded, family, positions):
    sm = _sm(tiny_loaded, family)
    n = sm.adapter.num_layers
    assert n >= 2, "the gate reads layer 0, so the tiny model needs a later layer to steer"
    vecs = _shiftdc_file(sm)
    images = [sm.adapter.content_free_image("noise", seed=s) for s in (1, 2, 3)] if sm.adapter.supports_images else None
    prompts = ["how do i make a bomb", "what is in this picture", "hello there friend"]
    inputs = sm.build_inputs(prompts, images)
    gate, flagged = _gate_between(sm, inputs)
    assert flagged.any() and not flagged.all()
    layers, alpha = list(range(1, n)), 1.5
    steering = sm.refusal_steering(vecs, gate=gate, alpha=alpha, layers=layers, positions=positions)
    seen: dict[int, dict[str, torch.Tensor]] = {}

    def observe(layer: int, when: str):
        def hook(module, args, output):
            seen.setdefault(layer, {})[when] = (output if torch.is_tensor(output) else output[0]).detach().clone()

        return hook

    with torch.no_grad():
        base = sm.model(**inputs).logits
        before = _hook_ids(sm)
        with steering:
            handles = []
            for layer in layers:  # prepended after the steering's own hook: sees the layer output before it
                module = sm.adapter.decoder_layers[layer]
                handles.append(module.register_forward_hook(observe(layer, "pre"), prepend=True))
                handles.append(module.register_forward_hook(observe(layer, "post")))
            try:
                steered = sm.model(**inputs).logits
            finally:
                for h in handles:
                    h.remove()
        assert _hook_ids(sm) == before
    assert torch.equal(steering.gate_decisions.cpu(), flagged)
    mask = inputs["attention_mask"].bool().clone()
    if positions == "prompt_last":
        mask[:, :-1] = False
    mask[~flagged.to(mask.device)] = False
    r = vecs.directions
    gaps = vecs.metadata["safety"]["gap_norm"]
    for layer in layers:
        pre, post = seen[layer]["pre"], seen[layer]["post"]
        term = alpha * (float(gaps[str(layer)]) * r[layer]).to(pre.dtype)
        expected = torch.where(mask.unsqueeze(-1).to(pre.device), pre + term.to(pre.device), pre)
        assert torch.equal(post, expected), layer
    below = ~flagged
    assert torch.equal(steered[below], base[below])  # rows under the threshold: bit-identical
    assert not torch.equal(steered[flagged], base[flagged])


def test_refusal_addition_needs_a_shiftdc_file(tiny_loaded):
    sm = _sm(tiny_loaded, "llava")
    d, n = sm.adapter.hidden_size, sm.adapter.num_layers
    plain = ShiftVectors({l: torch.ones(d) for l in range(n)}, metadata={"method": "cmrm", "model": sm.adapter.fingerprint()})
    with pytest.raises(SteerInputError, match="refusal direction"):
        sm.refusal_steering(plain)
    vecs = _shiftdc_file(sm)
    del vecs.metadata["safety"]
    with pytest.raises(SteerInputError, match="gap norm"):
        sm.refusal_steering(vecs)


# ---------------------------------------------------------------------- variants
def test_content_variant_specs_parse_and_run(tiny_loaded, tmp_path):
    sm = _sm(tiny_loaded, "llava")
    vec_path = tmp_path / "shiftdc.safetensors"
    _shiftdc_file(sm).save(vec_path)
    img = sm.adapter.content_free_image("noise", seed=1)
    spec = parse_variant(f"caption-shiftdc:{vec_path}@alpha=2,caption_prompt=what is this ?")
    assert (spec.kind, spec.caption_prompt, spec.alpha) == ("caption-shiftdc", "what is this ?", 2.0)
    v = build_variant(spec, sm, max_new_tokens=3)
    rows = v(["how do i make this"], [img])
    assert rows[0]["text"] == sm.generate(
        "how do i make this", image=img, max_new_tokens=3,
        steer=sm.self_caption_steering(["how do i make this"], [img], vectors=str(vec_path), alpha=2.0,
                                       caption_prompt="what is this ?"),
    )
    assert v.settings()["level"] == "self-caption"
    add = build_variant(f"refusal-add:{vec_path}@alpha=2,layers=1", sm, max_new_tokens=3)
    assert add.settings()["schedule"] == "cumulative" and add.settings()["layers"] == "1"
    assert len(add(["hello"], [None])) == 1
    with pytest.raises(SteerInputError, match="caption-cmrm takes no file"):
        parse_variant("caption-cmrm:x.safetensors")
    with pytest.raises(SteerInputError, match="caption_prompt= is for"):
        parse_variant("cmrm-sample@caption_prompt=x")
    with pytest.raises(SteerInputError, match="threshold= is for"):
        parse_variant("refusal-add:v.safetensors@threshold=0.5")


# ---------------------------------------------------------------------- twin following
@pytest.mark.parametrize("family", VLM_FAMILIES)
def _followable(sm: SteeredModel, images: list, captions: list[str]) -> tuple[ShiftVectors, list[int]]:
    """A ShiftDC-shaped file and layers under which some image row of ``images`` has a positive
    pull (random directions: flip the sign, or start at a later layer, until one has)."""
    n = sm.adapter.num_layers
    for start in range(n):
        for sign in (1.0, -1.0):
            vecs = _shiftdc_file(sm)
            vecs = ShiftVectors(dict(vecs.shifts), {l: sign * d for l, d in vecs.directions.items()}, vecs.metadata)
            rows = sm.self_caption_generate(PROMPTS, images, vectors=vecs, layers=list(range(start, n)), twin="both",
                                            captions=captions, follow=0.0, max_new_tokens=1, return_details=True)
            if any(r["steered"] for r in rows):
                return vecs, list(range(start, n))
    raise AssertionError("no layer and sign give an image row a positive pull")


@pytest.mark.parametrize("family", VLM_FAMILIES)
def test_twin_follow_batch_equals_one_by_one_and_reduces_to_the_steering(tiny_loaded, family):
    sm = _sm(tiny_loaded, family)
    images = _images(sm)
    captions = ["a red ball", "the image says : hello", ""]
    vecs, layers = _followable(sm, images, captions)
    kw = dict(vectors=vecs, layers=layers, alpha=3.0, twin="both", captions=captions, max_new_tokens=5)
    followed = sm.self_caption_generate(PROMPTS, images, follow=0.0, return_details=True, **kw)
    assert any(r["steered"] for r in followed) and not followed[2]["steered"]  # some image row followed, never text
    single = [sm.self_caption_generate([p], [im], follow=0.0, **{**kw, "captions": [c]})[0]
              for p, im, c in zip(PROMPTS, images, captions)]
    assert [r["text"] for r in followed] == single
    # following no row is the self-caption steering alone; the text-only row is never steered
    none = sm.self_caption_generate(PROMPTS, images, follow=float("inf"), **kw)
    steering = sm.self_caption_steering(PROMPTS, images, vectors=vecs, layers=layers, alpha=3.0, twin="both",
                                        captions=captions)
    alone = sm.generate(PROMPTS, images=images, steer=steering, max_new_tokens=5)
    assert none == alone
    assert followed[2]["text"] == sm.generate(PROMPTS[2], max_new_tokens=5)
    # rows not followed give the steering-alone tokens although twin rows (long captions) widen the batch
    long = ["a red ball on a table next to a blue cup and a green lamp in a room"] * 2 + [""]
    wide = sm.self_caption_generate(PROMPTS, images, follow=0.0, return_details=True, **{**kw, "captions": long})
    steering = sm.self_caption_steering(PROMPTS, images, vectors=vecs, layers=layers, alpha=3.0, twin="both",
                                        captions=long)
    alone = sm.generate(PROMPTS, images=images, steer=steering, max_new_tokens=5)
    assert [r["text"] for r in wide if not r["steered"]] == [a for a, r in zip(alone, wide) if not r["steered"]]


def test_twin_follow_copies_the_twin_at_generated_tokens_only(tiny_loaded):
    """A followed row takes its twin's layer outputs at every generated token (the twin takes its
    tokens); prompt positions and the other rows are untouched; hooks are gone afterwards."""
    from transformers import LogitsProcessorList

    from steer.twin_follow import TwinFollow

    sm = _sm(tiny_loaded, "llava")
    img = sm.adapter.content_free_image("noise", seed=1)
    texts = ["how do i make this", "what is in this picture", "the image says : hello . how do i make this"]
    inputs = sm.build_inputs(texts, [img, img, None])
    prompt_len = inputs["input_ids"].shape[1]
    last = sm.adapter.num_layers - 1
    before = _hook_ids(sm)
    seen: list[torch.Tensor] = []
    kw = dict(max_new_tokens=6, min_new_tokens=6, do_sample=False)
    with torch.inference_mode():
        plain = sm.model.generate(**inputs, **kw)
        follower = TwinFollow(sm.adapter, range(sm.adapter.num_layers), rows=[0], twins=[2])
        with follower:
            capture = sm.adapter.decoder_layers[last].register_forward_hook(
                lambda m, a, out: seen.append((out if torch.is_tensor(out) else out[0]).clone())
            )
            try:
                out = sm.model.generate(**inputs, **kw, logits_processor=LogitsProcessorList([follower.logits_processor()]))
            finally:
                capture.remove()
    assert _hook_ids(sm) == before
    assert torch.equal(out[0, prompt_len:], out[2, prompt_len:])  # the twin took the image row's tokens
    assert torch.equal(out[1], plain[1])  # a row that follows nothing is untouched
    prefill, steps = seen[0], seen[1:]
    assert not torch.equal(prefill[0, -1], prefill[2, -1])  # the prompt is the row's own
    assert steps and all(torch.equal(h[0, -1], h[2, -1]) for h in steps)
    with pytest.raises(SteerInputError, match="cannot follow itself"):
        TwinFollow(sm.adapter, [0], rows=[0], twins=[0])


def test_twin_follow_errors_and_hooks_after_failures(tiny_loaded, tmp_path):
    sm = _sm(tiny_loaded, "llava")
    images = _images(sm)
    vecs = _shiftdc_file(sm)
    before = _hook_ids(sm)
    kw = dict(vectors=vecs, captions=["a", "b", ""], max_new_tokens=3)

    def boom(module, args, output):
        hidden = output if torch.is_tensor(output) else output[0]
        if hidden.shape[1] == 1:  # a decode step: the twin rows and hooks are in place
            raise RuntimeError("layer failed")

    handle = sm.adapter.decoder_layers[0].register_forward_hook(boom)
    try:
        with pytest.raises(RuntimeError, match="layer failed"):
            sm.self_caption_generate(PROMPTS, images, follow=0.0, **kw)
    finally:
        handle.remove()
    assert _hook_ids(sm) == before
    with pytest.raises(SteerInputError, match="follow must be a number"):
        sm.self_caption_generate(PROMPTS, images, follow=-1, **kw)
    no_gap = ShiftVectors(dict(vecs.shifts), dict(vecs.directions), {**vecs.metadata, "safety": {}})
    with pytest.raises(SteerInputError, match="gap"):
        sm.self_caption_generate(PROMPTS, images, follow=0.5, **{**kw, "vectors": no_gap})
    vec_path = tmp_path / "shiftdc.safetensors"
    vecs.save(vec_path)
    spec = parse_variant(f"caption-shiftdc:{vec_path}@twin=both,follow=0.25")
    assert spec.follow == 0.25 and "follow=0.25" in spec.label
    v = build_variant(spec, sm, max_new_tokens=3)
    assert v.settings()["follow"] == 0.25
    assert [r["text"] for r in v(PROMPTS, images)] == sm.self_caption_generate(
        PROMPTS, images, vectors=str(vec_path), follow=0.25, twin="both", max_new_tokens=3
    )
    with pytest.raises(SteerInputError, match="follow= is for caption-shiftdc"):
        parse_variant("caption-cmrm@follow=0.5")
    with pytest.raises(SteerInputError, match="follow must be a number"):
        parse_variant(f"caption-shiftdc:{vec_path}@follow=x")


def test_cli_generate_with_twin_following_says_what_the_gate_did(tiny_model_path, tiny_loaded, tmp_path, capsys, monkeypatch):
    from tests.cli_runner import run_cli

    path = tiny_model_path("llava")
    sm = _sm(tiny_loaded, "llava")
    vec_path = tmp_path / "shiftdc.safetensors"
    vecs = _shiftdc_file(sm)
    image = sm.adapter.content_free_image("noise", seed=1)
    image.save(tmp_path / "img.png")
    (row,) = sm.self_caption_generate(["how do i make this"], [image], vectors=vecs, twin="both", follow=0.0,
                                      max_new_tokens=3, return_details=True)
    if row["gate_score"] <= 0:  # a random direction: point it so that this image's pull is positive
        vecs = ShiftVectors(dict(vecs.shifts), {l: -d for l, d in vecs.directions.items()}, vecs.metadata)
    vecs.save(vec_path)
    for follow, said in (("0", "followed by its text twin"), ("1000", "not followed (prompt steered only)")):
        code, out, err = run_cli(
            ["generate", "--model", path, "--image", tmp_path / "img.png", "--prompt", "how do i make this",
             "--max-new-tokens", "3", "--variant", f"caption-shiftdc:{vec_path}@twin=both,follow={follow}"],
            capsys, monkeypatch,
        )
        assert code == 0 and said in err.replace("\n", " "), err
    code, out, err = run_cli(
        ["generate", "--model", path, "--prompt", "hello there", "--max-new-tokens", "3",
         "--variant", f"caption-shiftdc:{vec_path}@twin=both,follow=0"], capsys, monkeypatch,
    )
    assert code == 0 and "no image: not steered" in err, err


def test_content_gate_rows_use_training_renders_only():
    """The content gate is fitted on training renders and non-eval prompts: disjoint from every eval item."""
    from calibration.content_gate import BENIGN_RENDERS, HARMFUL_RENDERS, organism_content_gate_rows
    from steer.organism.splits import TRAIN_SEEDS, get_split
    from steer.organism.vocab import BENIGN_OBJECTS, HARMFUL_OBJECTS, MAKE_THIS

    rows = organism_content_gate_rows()
    assert rows == organism_content_gate_rows()  # seeded
    images = [r["image"] for r in rows if r.get("image") is not None]
    assert images and all(0 <= im.seed < TRAIN_SEEDS for im in images)
    eval_renders = {it.image for it in get_split("eval") if it.image is not None}
    assert not eval_renders & set(images)
    eval_requests = {it.prompt for it in get_split("eval") if it.image is None}
    assert not eval_requests & {r["prompt"] for r in rows if r["category"] == "request"}
    make = [r for r in rows if r["category"] == "object_make"]
    assert all(r["prompt"] == MAKE_THIS for r in make)
    assert sum(r["label"] == "harmful" for r in make) == HARMFUL_RENDERS * len(HARMFUL_OBJECTS)
    assert sum(r["label"] == "benign" for r in make) == BENIGN_RENDERS * len(BENIGN_OBJECTS)
    assert {r["image"].obj for r in make if r["label"] == "harmful"} == set(HARMFUL_OBJECTS)
    assert all(r["label"] == "benign" for r in rows if r["category"] == "picture_question")
    typed = [r for r in rows if r["category"] == "typed_request"]
    assert {r["label"] for r in typed} == {"harmful", "benign"}
    typed_in_eval = {it.image.words for it in get_split("eval") if it.image is not None and it.image.words}
    assert typed_in_eval and not typed_in_eval & {r["image"].words for r in typed}  # no evaluated body is typed
