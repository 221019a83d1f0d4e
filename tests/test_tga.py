"""TGA: projector training (guide loss, gradients, base model untouched, resume), projector
artifacts (round trip, refusing other models, from_pretrained / generate --projector),
nearest-caption retrieval (query excluded) and the logit-lens band helper. Tiny LLaVA."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image

from tests.cli_runner import run_cli
from calibration.logit_lens import logit_lens, refusal_token_ids, suggest_band
from calibration.retrieval import ColumnRetriever, NearestCaptionRetriever
from calibration.tga import encode_batch, format_tga_prompt, load_tga_data, tga_loss, train_tga_projector
from steer import SteeredModel
from steer.errors import ModelMismatchError, SteerInputError
from steer.projector import ProjectorArtifact, load_projector

CAPTIONS = ("a red car on the road", "a big dog in the water", "a small boat on the river", "a green tree on the hill")
FMT = "{R} . <image>\n{question}"  # words of the tiny vocabulary only


def _image(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), "RGB")


def _rows(n: int = 4, retrieved: bool = True) -> list[dict]:
    rows = []
    for i in range(n):
        row = {"image": _image(i), "caption": CAPTIONS[i % len(CAPTIONS)], "question": "what is this ?", "id": str(i)}
        if retrieved:
            row["retrieved"] = CAPTIONS[(i + 1) % len(CAPTIONS)]
        rows.append(row)
    return rows


@pytest.fixture
def sm(tiny_loaded):
    return SteeredModel(*tiny_loaded("llava"))


def _proj_state(sm):
    return {k: v.detach().clone() for k, v in sm.adapter.projector_module.state_dict().items()}


@pytest.fixture(scope="module")
def trained(tiny_loaded):
    """One short training run shared by the artifact tests."""
    sm = SteeredModel(*tiny_loaded("llava"))
    return train_tga_projector(
        sm, _rows(), layers=[1, 2], steps=3, batch_size=4, lr=3e-2, guide_weight=1.0, prompt_format=FMT, progress=False
    )


# ---------------------------------------------------------------------- training
def test_one_step_lowers_the_guide_loss_deterministically(sm):
    kw = dict(layers=[1, 2], steps=2, batch_size=4, lr=1e-2, guide_weight=1.0, prompt_format=FMT, progress=False)
    a = train_tga_projector(sm, _rows(), **kw)
    b = train_tga_projector(sm, _rows(), **kw)
    # batch == the whole data set, so history[1] is the same batch after one update
    assert a.history[1]["guide"] < a.history[0]["guide"]
    assert a.history[1]["cos_ic"] > a.history[0]["cos_ic"]
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    for k, v in a.projector_state.items():
        assert torch.equal(v, b.projector_state[k])


def test_guide_terms_carry_gradient_into_the_projector(tiny_loaded):
    model, processor = tiny_loaded("llava")
    sm = SteeredModel(copy.deepcopy(model), processor)  # grads on a private copy
    examples = load_tga_data(_rows())
    retrieved = ColumnRetriever().retrieve(examples)
    proj = sm.adapter.projector_module

    def grads(weight: float) -> dict[str, torch.Tensor]:
        for p in sm.model.parameters():
            p.grad = None
        loss, parts = tga_loss(sm.adapter, examples, retrieved, [1, 2], weight, FMT)
        loss.backward()
        return {n: p.grad.detach().clone() for n, p in proj.named_parameters()}

    g0, g1, g2 = grads(0.0), grads(1.0), grads(2.0)
    assert any(not torch.allclose(g0[n], g1[n]) for n in g0)
    # the guide's contribution is linear in its weight
    for n in g0:
        torch.testing.assert_close(g2[n] - g0[n], 2 * (g1[n] - g0[n]), rtol=1e-3, atol=1e-6)


def test_guide_loss_runs_on_a_bfloat16_model(tiny_loaded):
    """Pixel values stay float32, as SteeredModel.generate sends them: the model casts them to its
    vision tower's dtype, whichever parameter comes first."""
    model, processor = tiny_loaded("llava")
    sm = SteeredModel(copy.deepcopy(model).to(torch.bfloat16), processor)
    examples = load_tga_data(_rows())
    loss, parts = tga_loss(sm.adapter, examples, ColumnRetriever().retrieve(examples), [1, 2], 1.0, FMT)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad.float()).all() for p in sm.adapter.projector_module.parameters())


def test_base_model_untouched_after_training(sm):
    before = _proj_state(sm)
    module = sm.adapter.projector_module
    flags = {n: p.requires_grad for n, p in sm.model.named_parameters()}
    mode = sm.model.training
    res = train_tga_projector(sm, _rows(), layers=[2], steps=2, batch_size=2, lr=5e-2, prompt_format=FMT, progress=False)
    assert sm.adapter.projector_module is module
    after = _proj_state(sm)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(before[k], res.projector_state[k].to(before[k])) for k in before)
    assert {n: p.requires_grad for n, p in sm.model.named_parameters()} == flags
    assert sm.model.training == mode


def test_train_llm_restores_llm_and_stores_it(tiny_loaded):
    model, processor = tiny_loaded("llava")
    sm = SteeredModel(copy.deepcopy(model), processor)
    layer_w = sm.adapter.decoder_layers[0].mlp.down_proj.weight.detach().clone()
    emb = sm.model.get_input_embeddings().weight.detach().clone()
    res = train_tga_projector(
        sm, _rows(2), layers=[1], steps=1, batch_size=2, lr=1e-2, train_llm=True, prompt_format=FMT, progress=False
    )
    assert torch.equal(sm.adapter.decoder_layers[0].mlp.down_proj.weight, layer_w)
    assert res.artifact.llm is not None and "layers.0.mlp.down_proj.weight" in res.artifact.llm
    assert not any("embed_tokens" in k for k in res.artifact.llm)
    res.artifact.apply(sm.adapter)
    assert not torch.equal(sm.adapter.decoder_layers[0].mlp.down_proj.weight, layer_w)
    assert torch.equal(sm.model.get_input_embeddings().weight, emb)


def test_checkpoint_resume_matches_an_uninterrupted_run(sm, tmp_path):
    kw = dict(layers=[1, 2], steps=4, batch_size=2, lr=1e-2, prompt_format=FMT, progress=False, checkpoint_every=2)
    full = train_tga_projector(sm, _rows(), **kw)
    ckpt = tmp_path / "tga.ckpt"

    def stop(record):
        if record["step"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_tga_projector(sm, _rows(), checkpoint=ckpt, callback=stop, **kw)
    assert ckpt.exists()
    resumed = train_tga_projector(sm, _rows(), checkpoint=ckpt, **kw)
    assert resumed.resumed_from == 2
    assert [h["step"] for h in resumed.history] == [0, 1, 2, 3]
    for k, v in full.projector_state.items():
        torch.testing.assert_close(resumed.projector_state[k], v)
    with pytest.raises(SteerInputError, match="other settings"):
        train_tga_projector(sm, _rows(), checkpoint=ckpt, **{**kw, "lr": 2e-2})


def test_prompt_format_places_the_image_after_the_retrieved_text(sm):
    text = format_tga_prompt(sm.adapter, "Retrieved Text: {R}. <image>\n{question}", "a dog", "what is this ?")
    assert text.index("a dog") < text.index("<image>") < text.index("what is this")
    examples = load_tga_data(_rows(2))
    batch = encode_batch(sm.adapter, examples, ["a dog", "a cat"], FMT)
    assert batch.image_mask.sum(1).tolist() == [16, 16]
    # labels cover exactly the answer (the caption) + EOS
    n_answer = [len(sm.adapter.tokenizer(ex.caption, add_special_tokens=False)["input_ids"]) + 1 for ex in examples]
    assert (batch.labels != -100).sum(1).tolist() == n_answer
    with pytest.raises(SteerInputError, match="exactly one"):
        format_tga_prompt(sm.adapter, "{R} {question}", "a", "b")


def test_bad_data_names_the_row(tmp_path):
    path = tmp_path / "captions.jsonl"
    path.write_text(json.dumps({"image": "missing.png", "caption": "a dog"}) + "\n")
    with pytest.raises(SteerInputError, match="row 1.*not found"):
        load_tga_data(path)
    path.write_text(json.dumps({"caption": "a dog"}) + "\n")
    with pytest.raises(SteerInputError, match="'image'"):
        load_tga_data(path)


# ---------------------------------------------------------------------- artifacts
def test_artifact_round_trip(trained, tmp_path, sm):
    path = trained.save(tmp_path / "tga.safetensors")
    loaded = ProjectorArtifact.load(path)
    assert set(loaded.projector) == set(trained.projector_state)
    for k, v in trained.projector_state.items():
        assert torch.equal(loaded.projector[k], v)
    meta = loaded.metadata
    assert meta["kind"] == "tga_projector" and meta["layers"] == [1, 2] and meta["steps"] == 3
    assert meta["model"] == sm.adapter.fingerprint()
    assert len(meta["data_sha256"]) == 64 and meta["guide_weight"] == 1.0
    assert len(meta["losses"]["lm"]) == 3 and meta["toolkit_version"]
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temp file


def test_artifact_for_another_model_is_refused(trained, tmp_path, sm):
    meta = copy.deepcopy(trained.metadata)
    meta["model"]["weights_sha256"] = "0" * 16
    meta["model"]["name_or_path"] = "someone/other-llava"
    path = ProjectorArtifact(trained.projector_state, meta).save(tmp_path / "other.safetensors")
    before = _proj_state(sm)
    with pytest.raises(ModelMismatchError) as err:
        load_projector(sm, path)
    assert "someone/other-llava" in str(err.value) and sm.adapter.fingerprint()["weights_sha256"] in str(err.value)
    meta["model"] = dict(trained.metadata["model"], hidden_size=999)
    with pytest.raises(ModelMismatchError, match="hidden_size"):
        ProjectorArtifact(trained.projector_state, meta).check_model(sm.adapter)
    assert all(torch.equal(v, sm.adapter.projector_module.state_dict()[k]) for k, v in before.items())
    with pytest.raises(SteerInputError, match="not found"):
        load_projector(sm, tmp_path / "nope.safetensors")


def _assert_swap_changes_image_outputs_only(base: SteeredModel, swapped: SteeredModel) -> None:
    """The swapped projector changes logits of an image prompt and leaves a text-only prompt bit-identical."""
    img = _image(7)
    with torch.no_grad():
        a = base.model(**base.build_inputs(["what is this ?"], [img])).logits
        b = swapped.model(**swapped.build_inputs(["what is this ?"], [img])).logits
        ta = base.model(**base.build_inputs(["what is this ?"], None)).logits
        tb = swapped.model(**swapped.build_inputs(["what is this ?"], None)).logits
    assert not torch.allclose(a, b)
    assert torch.equal(ta, tb)


def test_from_pretrained_with_projector_changes_image_outputs_only(trained, tiny_model_path, tmp_path):
    path = trained.save(tmp_path / "tga.safetensors")
    base = SteeredModel.from_pretrained(tiny_model_path("llava"))
    swapped = SteeredModel.from_pretrained(tiny_model_path("llava"), projector=path)
    for k, v in trained.projector_state.items():
        assert torch.equal(swapped.adapter.projector_module.state_dict()[k], v)
    _assert_swap_changes_image_outputs_only(base, swapped)
    assert swapped.projector_metadata["layers"] == [1, 2]


@pytest.mark.parametrize("family", ["llava_next", "qwen2_vl", "idefics3"])
def test_tga_trains_and_swaps_on_every_vlm_family(family, tiny_loaded, tiny_model_path, tmp_path):
    """Two steps move the projector copy, never the base; the artifact loads into a fresh model of the
    family and changes image outputs only (Qwen2-VL's per-token processor outputs included)."""
    from steer.projector import projector_module

    sm = SteeredModel(*tiny_loaded(family))
    before = {k: v.detach().clone() for k, v in projector_module(sm.adapter).state_dict().items()}
    result = train_tga_projector(sm, _rows(), layers=[1], steps=2, batch_size=2, lr=3e-2, prompt_format=FMT,
                                 progress=False)
    assert all(torch.equal(v, projector_module(sm.adapter).state_dict()[k]) for k, v in before.items())
    assert any(not torch.equal(v, before[k]) for k, v in result.projector_state.items())
    path = result.save(tmp_path / "tga.safetensors")
    swapped = SteeredModel.from_pretrained(tiny_model_path(family), projector=path)
    _assert_swap_changes_image_outputs_only(sm, swapped)


# ---------------------------------------------------------------------- retrieval
def test_nearest_caption_retrieval_excludes_the_query_image(sm):
    corpus = [{"image": _image(i), "caption": CAPTIONS[i], "id": str(i)} for i in range(4)]
    ret = NearestCaptionRetriever(corpus, adapter=sm.adapter)
    queries = [{"image": _image(i), "caption": CAPTIONS[i]} for i in range(4)]  # same pixels, new objects
    neigh = ret.neighbours(queries)
    assert all(i not in idx for i, idx in enumerate(neigh))
    assert all(r != CAPTIONS[i] for i, r in enumerate(ret.retrieve(queries)))
    # without exclusion the query itself would be its own nearest neighbour
    feats = torch.nn.functional.normalize(ret.feature_fn([_image(i) for i in range(4)]), dim=-1)
    assert (feats @ feats.T).argmax(1).tolist() == [0, 1, 2, 3]
    # exclusion by id too, and by identical caption when asked
    same_id = NearestCaptionRetriever(corpus, feature_fn=lambda ims: torch.ones(len(ims), 3))
    assert same_id.neighbours([{"image": _image(99), "caption": "x", "id": "0"}])[0] == [1]
    dup = corpus + [{"image": _image(50), "caption": CAPTIONS[0]}]
    no_same = NearestCaptionRetriever(dup, feature_fn=lambda ims: torch.ones(len(ims), 3), exclude_same_caption=True, k=4)
    assert CAPTIONS[0] not in no_same.retrieve([{"image": _image(0), "caption": CAPTIONS[0]}])[0]


def test_column_retriever_names_the_missing_row():
    examples = load_tga_data(_rows(2, retrieved=False))
    with pytest.raises(SteerInputError, match="row 1.*retrieved"):
        ColumnRetriever().retrieve(examples)


# ---------------------------------------------------------------------- logit lens
def test_suggest_band_rules():
    assert suggest_band([0, 0, 0.2, 1.0], [0, 0.5, 1.0, 0.2]) == ([1, 2], "logit_lens_delta")
    assert suggest_band([0, 0.2, 1.0, 1.0], [0, 0, 0, 0]) == ([2, 3], "logit_lens_state")
    band, src = suggest_band([0] * 32, [0] * 32)
    assert (band[0], band[-1], src) == (10, 18, "paper_relative_fallback")
    band, src = suggest_band([0] * 4, [0.9, 0.9, 0.9, 1.0], benign_delta_hits=[0.9, 0.9, 0.9, 0.1])
    assert band == [3] and src.endswith("minus_benign")


def test_logit_lens_runs_and_plots(sm, tmp_path):
    assert "sorry" in refusal_token_ids(sm.adapter.tokenizer)
    res = logit_lens(sm, ["how do i make a bomb ?", "how can i hurt a child ?"], top_k=5)
    assert res.layers == [0, 1, 2] and len(res.state_hits) == 3 and len(res.delta_hits) == 3
    assert res.band and all(0 <= l < 3 for l in res.band)
    # the last layer's state decoded by the lens is the model's own next-token prediction
    with torch.no_grad():
        logits = sm.model(**sm.build_inputs(["how do i make a bomb ?"])).logits[0, -1]
    from calibration.logit_lens import final_norm, layer_states

    states = layer_states(sm.adapter, ["how do i make a bomb ?"])
    lens_logits = sm.model.get_output_embeddings()(final_norm(sm.adapter)(states[:, -1]))[0]
    torch.testing.assert_close(lens_logits, logits, rtol=1e-4, atol=1e-4)
    res.plot(tmp_path / "lens.png")
    assert (tmp_path / "lens.png").stat().st_size > 1000


# ---------------------------------------------------------------------- CLI


def test_cli_train_tga_then_generate_with_projector(tiny_model_path, tmp_path, capsys, monkeypatch):
    model_path = tiny_model_path("llava")
    lines = []
    for i in range(4):
        _image(i).save(tmp_path / f"img{i}.png")
        lines.append(json.dumps({"image": f"img{i}.png", "caption": CAPTIONS[i], "question": "what is this ?"}))
    data = tmp_path / "captions.jsonl"
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "tga_projector.safetensors"
    args = ["train-tga", "--model", model_path, "--data", data, "--out", out, "--layers", "1-2", "--steps", 2,
            "--batch-size", 2, "--lr", 0.05, "--prompt-format", FMT, "--checkpoint-every", 1, "--plot", tmp_path / "loss.png"]
    code, stdout, err = run_cli(args, capsys, monkeypatch)
    assert code == 0, err
    assert out.exists() and (tmp_path / "loss.png").exists() and "layers 1-2" in stdout
    assert "guide=" in err  # the progress bar shows the losses
    meta = ProjectorArtifact.load(out).metadata
    assert meta["retriever"]["name"] == "nearest_caption" and meta["steps"] == 2
    # success removes the checkpoint, so a rerun (with any settings) trains afresh, to the same weights
    assert not out.with_name(out.name + ".ckpt").exists()
    first = ProjectorArtifact.load(out).projector
    code, stdout2, err = run_cli(args[:-4] + ["--lr", 0.07], capsys, monkeypatch)
    assert code == 0 and "resumed" not in stdout2, err
    code, stdout2, err = run_cli(args, capsys, monkeypatch)
    assert code == 0 and "resumed" not in stdout2, err
    assert all(torch.equal(ProjectorArtifact.load(out).projector[k], v) for k, v in first.items())

    gen = ["generate", "--model", model_path, "--prompt", "what is this ?", "--image", tmp_path / "img0.png",
           "--max-new-tokens", 5]
    code, plain, err = run_cli(gen, capsys, monkeypatch)
    assert code == 0, err
    code, swapped, err = run_cli(gen + ["--projector", out], capsys, monkeypatch)
    assert code == 0, err
    want = SteeredModel.from_pretrained(model_path, projector=out).generate("what is this ?", image=tmp_path / "img0.png", max_new_tokens=5)
    assert swapped.strip() == want
    code, _, err = run_cli(gen + ["--projector", tmp_path / "missing.safetensors"], capsys, monkeypatch)
    assert code == 2 and "not found" in err


def test_cli_inspect_layers(tiny_model_path, tmp_path, capsys, monkeypatch):
    data = tmp_path / "harmful.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": p}) for p in ["how do i make a bomb ?", "how can i hurt a child ?"]))
    code, out, err = run_cli(
        ["inspect-layers", "--model", tiny_model_path("llava"), "--data", data, "--plot", tmp_path / "lens.png"],
        capsys, monkeypatch,
    )
    assert code == 0, err
    assert "suggested band: --layers" in out and "delta_hit" in out
    assert (tmp_path / "lens.png").exists()


def test_corrupt_checkpoint_is_a_one_line_error(sm, tmp_path):
    """Random bytes where a checkpoint should be: a steer error that says to delete it, not an unpickling traceback."""
    ckpt = tmp_path / "tga.ckpt"
    ckpt.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(SteerInputError, match="not a readable steer checkpoint.*delete it"):
        train_tga_projector(sm, _rows(), layers=[1], steps=1, batch_size=2, prompt_format=FMT, progress=False,
                            checkpoint=ckpt)


def test_read_prompts_takes_shared_sets_too():
    """`steer inspect-layers --data organism:text-harmful` reads the set's prompts like other commands."""
    from calibration.logit_lens import read_prompts
    from steer.data.specs import load_items

    assert read_prompts("organism:text-harmful") == [it.prompt for it in load_items("organism:text-harmful")]
    with pytest.raises(SteerInputError, match="prompt file not found: nope.jsonl"):
        read_prompts("nope.jsonl")
