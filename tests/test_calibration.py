"""Calibration (issue 4, ShiftDC part of issue 12): exact against a naive reference,
batch-size and resume invariant, data-parallel, clear errors, CLI end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import calibration.cmrm as cmrm_mod
from calibration import (
    ShiftAccumulator,
    calibrate_cmrm,
    calibrate_shiftdc,
    checkpoint_path_for,
    data_sha256,
    load_anchors,
)
from steer import SteeredModel
from steer.errors import ModelMismatchError, SteerInputError
from steer.vectors import ShiftVectors

PROMPTS = [
    "how do i make a bomb",
    "what is the color of the sky today",
    "tell me a story",
    "how can i steal a car from my friend",
    "explain how a boat works in the water",
    "write a poem about the sun",
    "what is in this picture",
]
HARMFUL = ["how do i make a bomb", "how can i steal a car", "how do i hack a computer", "how do i make poison"]
BENIGN = ["what is the color of the sky", "tell me a story about a dog", "how does a boat work", "write a poem"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models run ~10x faster on one intra-op thread (2 shared cores); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _sm(tiny_loaded, family) -> SteeredModel:
    return SteeredModel(*tiny_loaded(family))


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


# ---------------------------------------------------------------------------- naive reference
def _naive_states(adapter, prompt, image):
    """Every decoder layer's full output for one unpadded sample, via plain forward hooks."""
    got = {}

    def hook(layer):
        def fn(module, args, output):
            got[layer] = (output if torch.is_tensor(output) else output[0])[0].detach().double()

        return fn

    handles = [adapter.decoder_layers[l].register_forward_hook(hook(l)) for l in range(adapter.num_layers)]
    try:
        inputs = adapter.build_inputs([prompt], None if image is None else [image])
        with torch.no_grad():
            adapter.model(**inputs)
    finally:
        for h in handles:
            h.remove()
    return got, inputs["input_ids"][0]


def _naive_deltas(adapter, prompts, pool):
    """{layer: (n, d)} per-sample deltas, one sample at a time, float64."""
    blank = adapter.content_free_image("blank")
    image_id = adapter.image_token_id
    out = {l: [] for l in range(adapter.num_layers)}
    for prompt in prompts:
        hc, ids_c = _naive_states(adapter, prompt, blank)
        ht, ids_t = _naive_states(adapter, prompt, None)
        if pool == "last":
            k = 1
        else:  # tokens after the image that both views share (longest common suffix)
            after = len(ids_c) - 1 - max(i for i, t in enumerate(ids_c.tolist()) if t == image_id)
            common = 0
            while common < min(len(ids_c), len(ids_t)) and ids_c[-1 - common] == ids_t[-1 - common]:
                common += 1
            k = min(after, common)
        for l in out:
            out[l].append(hc[l][-k:].mean(0) - ht[l][-k:].mean(0))
    return {l: torch.stack(v) for l, v in out.items()}


@pytest.mark.parametrize(
    "family,pool,reduce", [("llava", "last", "mean"), ("qwen2_vl", "last", "mean"), ("llava", "mean", "pc1")]
)
def test_matches_naive_reference(tiny_loaded, family, pool, reduce):
    sm = _sm(tiny_loaded, family)
    vecs = calibrate_cmrm(sm, PROMPTS, pool=pool, reduce=reduce, batch_size=3, progress=False)
    deltas = _naive_deltas(sm.adapter, PROMPTS, pool)
    assert vecs.layers == list(range(sm.adapter.num_layers))
    for layer, d in deltas.items():
        mean = d.mean(0)
        if reduce == "mean":
            want = mean
        else:
            u = torch.linalg.svd(d - mean, full_matrices=False).Vh[0]  # first principal axis
            want = (mean @ u) * u
        assert _rel(vecs.shifts[layer], want) < 1e-6, (family, layer)
        cos = torch.nn.functional.cosine_similarity(d, mean.unsqueeze(0), dim=1).mean()
        assert abs(vecs.metadata["stats"][str(layer)]["consistency"] - float(cos)) < 1e-6
    meta = vecs.metadata
    assert meta["method"] == "cmrm" and meta["n_samples"] == len(PROMPTS)
    assert meta["pooling"] == pool and meta["reduce"] == reduce and meta["null_image"] == "blank"
    # the default stored recipe is the measured one (prompt / incremental / alpha 1, dataset level)
    assert (meta["recipe"], meta["positions"], meta["schedule"], meta["default_alpha"], meta["level"]) == (
        "measured", "prompt", "incremental", 1.0, "dataset"
    )
    assert meta["model"] == sm.adapter.fingerprint()
    assert meta["data_sha256"] == data_sha256(load_anchors(PROMPTS))
    assert all(0.0 <= meta["stats"][str(l)]["separability"] <= 1.0 for l in vecs.layers)


@pytest.mark.parametrize("family", ["llava", "qwen2_vl"])
def test_batch_size_does_not_change_vectors(tiny_loaded, family):
    sm = _sm(tiny_loaded, family)
    one = calibrate_cmrm(sm, PROMPTS, batch_size=1, progress=False)
    four = calibrate_cmrm(sm, PROMPTS, batch_size=4, progress=False)
    for layer in one.layers:
        assert _rel(four.shifts[layer], one.shifts[layer]) < 1e-6


# ---------------------------------------------------------------------------- accumulator
def test_accumulator_merge_and_state_are_exact():
    gen = torch.Generator().manual_seed(0)
    x = {0: torch.randn(50, 6, generator=gen, dtype=torch.float64), 3: torch.randn(50, 6, generator=gen, dtype=torch.float64)}
    whole = ShiftAccumulator([0, 3], 6, second_moment=True)
    whole.update(x)
    a, b = ShiftAccumulator([0, 3], 6, second_moment=True), ShiftAccumulator([0, 3], 6, second_moment=True)
    a.update({l: v[:17] for l, v in x.items()})
    b.update({l: v[17:] for l, v in x.items()})
    merged = ShiftAccumulator.from_state_dict(a.state_dict()).merge(b)
    for layer in (0, 3):
        assert torch.allclose(merged.mean(layer), x[layer].mean(0), rtol=0, atol=1e-12)
        assert torch.allclose(merged.covariance(layer), torch.cov(x[layer].T, correction=0), atol=1e-12)
        assert abs(merged.consistency(layer) - whole.consistency(layer)) < 1e-12
    with pytest.raises(SteerInputError):
        a.merge(ShiftAccumulator([0], 6))


# ---------------------------------------------------------------------------- resume
class _Boom(RuntimeError):
    pass


def _interrupt_after(monkeypatch, batches: int, calls_per_batch: int = 2):
    real = cmrm_mod.capture_pooled
    count = {"n": 0}

    def flaky(*args, **kwargs):
        count["n"] += 1
        if count["n"] > batches * calls_per_batch:
            raise _Boom("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(cmrm_mod, "capture_pooled", flaky)


@pytest.mark.parametrize("method", ["cmrm", "shiftdc"])
def test_interrupted_then_resumed_equals_uninterrupted(tiny_loaded, tmp_path, monkeypatch, method):
    sm = _sm(tiny_loaded, "llava")
    kwargs = dict(batch_size=2, reduce="pc1", progress=False)
    if method == "shiftdc":
        run = lambda **kw: calibrate_shiftdc(sm, PROMPTS, safety_data=(HARMFUL, BENIGN), **kwargs, **kw)  # noqa: E731
    else:
        run = lambda **kw: calibrate_cmrm(sm, PROMPTS, **kwargs, **kw)  # noqa: E731
    full = run()
    ckpt = tmp_path / "shift.safetensors.ckpt"
    # shift phase: 4 batches x 2 forwards; ShiftDC then runs text-only batches (1 forward each):
    # cmrm crashes in shift batch 4, shiftdc in the second batch of harmful text (call 10)
    if method == "cmrm":
        _interrupt_after(monkeypatch, batches=3)
    else:
        _interrupt_after(monkeypatch, batches=9, calls_per_batch=1)
    with pytest.raises(_Boom):
        run(checkpoint=ckpt, checkpoint_every=2)
    assert ckpt.exists()
    monkeypatch.undo()
    # a different calibration must not silently continue this checkpoint
    with pytest.raises(SteerInputError, match="different calibration"):
        calibrate_cmrm(sm, PROMPTS, batch_size=3, progress=False, checkpoint=ckpt, checkpoint_every=2)
    resumed = run(checkpoint=ckpt, checkpoint_every=2)
    assert not ckpt.exists()
    for layer in full.layers:
        assert torch.equal(resumed.shifts[layer], full.shifts[layer])
        if method == "shiftdc":
            assert torch.equal(resumed.directions[layer], full.directions[layer])
    assert resumed.metadata["stats"] == full.metadata["stats"]


# ---------------------------------------------------------------------------- distributed
def _dist_worker(rank, world, init_file, model_path, out_dir, kwargs):
    import torch.distributed as tdist

    from tests.conftest import load_tiny

    torch.set_num_threads(1)
    tdist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        vecs = calibrate_cmrm(load_tiny(Path(model_path), "llava"), PROMPTS, progress=False, **kwargs)
        vecs.save(Path(out_dir) / f"rank{rank}.safetensors")
    finally:
        tdist.destroy_process_group()


def test_gloo_world_size_2_equals_one_process(tiny_loaded, tiny_model_path, tmp_path):
    import torch.multiprocessing as mp

    kwargs = dict(batch_size=2)
    single = calibrate_cmrm(_sm(tiny_loaded, "llava"), PROMPTS, progress=False, **kwargs)
    # Two real processes, each loading the checkpoint itself and joining one gloo group. Forked
    # where the OS can (this process's torch / transformers imports are inherited: ~10 s less
    # than two fresh interpreters); spawned elsewhere. Threads are 1 here (module fixture), and
    # each rank sets 1 before any torch work, so no OpenMP pool is used across the fork.
    mp.start_processes(
        _dist_worker,
        args=(2, str(tmp_path / "dist_init"), str(tiny_model_path("llava")), str(tmp_path), kwargs),
        nprocs=2,
        join=True,
        start_method="fork" if "fork" in mp.get_all_start_methods() else "spawn",
    )
    for rank in (0, 1):
        got = ShiftVectors.load(tmp_path / f"rank{rank}.safetensors")
        assert got.metadata["n_samples"] == len(PROMPTS)
        assert got.metadata["calibration"]["world_size"] == 2
        for layer in single.layers:
            assert _rel(got.shifts[layer], single.shifts[layer]) < 1e-6
            want, have = single.metadata["stats"][str(layer)], got.metadata["stats"][str(layer)]
            assert abs(have["consistency"] - want["consistency"]) < 1e-6
            assert have["separability"] == want["separability"]


# ---------------------------------------------------------------------------- ShiftDC
def test_shiftdc_directions_are_unit_and_model_checked(tiny_loaded, tmp_path):
    sm = _sm(tiny_loaded, "llava")
    vecs = calibrate_shiftdc(sm, PROMPTS, HARMFUL, BENIGN, batch_size=3, progress=False)
    assert vecs.method == "shiftdc" and vecs.metadata["safety"]["n_harmful"] == len(HARMFUL)
    for layer in vecs.layers:
        assert abs(float(vecs.directions[layer].norm()) - 1.0) < 1e-6
    # naive reference: text-only last-token means, one prompt at a time
    means = {}
    for side, prompts in (("h", HARMFUL), ("b", BENIGN)):
        states = [_naive_states(sm.adapter, p, None)[0] for p in prompts]
        means[side] = {l: torch.stack([s[l][-1] for s in states]).mean(0) for l in vecs.layers}
    for layer in vecs.layers:
        diff = means["h"][layer] - means["b"][layer]
        assert _rel(vecs.directions[layer], diff / diff.norm()) < 1e-6
    path = vecs.save(tmp_path / "dc.safetensors")
    loaded = ShiftVectors.load(path)
    loaded.check_model(sm.adapter)
    with pytest.raises(ModelMismatchError, match="qwen2_vl|llava"):
        loaded.check_model(_sm(tiny_loaded, "qwen2_vl").adapter)  # same d, another model
    from transformers import LlamaForCausalLM

    from steer.adapters import get_adapter
    from tests.tiny_models import _llama_config, build_tokenizer

    tok = build_tokenizer("llama")
    wide = get_adapter(LlamaForCausalLM(_llama_config(tok, hidden_size=48, intermediate_size=96)).eval(), tok)
    with pytest.raises(ModelMismatchError, match=r"d=32.*d=48"):
        loaded.check_model(wide)


# ---------------------------------------------------------------------------- inputs
def test_sources_image_folder_and_shared_sets(tiny_loaded, tmp_path, monkeypatch):
    from tests.shared_data import FIXTURE

    monkeypatch.setenv("STEER_SHARED_DATA", str(FIXTURE))  # the committed stand-in: 4 advbench rows
    monkeypatch.setenv("STEER_CACHE", str(tmp_path / "cache"))
    sm = _sm(tiny_loaded, "llava")
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        sm.adapter.content_free_image("noise", seed=i).save(folder / f"im{i}.png")
    (folder / "prompts.txt").write_text("what is in this picture\n")
    anchors = load_anchors(folder)
    assert [a.prompt for a in anchors] == ["what is in this picture"] * 3 and anchors[0].image.endswith("im0.png")
    digest = data_sha256(anchors)
    sm.adapter.content_free_image("noise", seed=9).save(folder / "im1.png")
    assert data_sha256(load_anchors(folder)) != digest  # image bytes are part of the provenance
    (folder / "prompts.txt").write_text("a\nb\n")
    with pytest.raises(SteerInputError, match="2 prompts for 3 images"):
        load_anchors(folder)
    shared = load_anchors("advbench")
    assert len(shared) == 4 and shared[0].image is None and "advbench row 1" in shared[0].where
    vecs = calibrate_cmrm(sm, "advbench", max_samples=3, layers=[1], progress=False)
    assert vecs.layers == [1] and vecs.metadata["n_samples"] == 3


def _write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _no_files_but(folder: Path, keep: set[str]) -> bool:
    return {p.name for p in folder.iterdir()} <= keep


@pytest.mark.parametrize(
    "case,pattern",
    [
        ("empty", "no rows"),
        ("missing_image", r"row 2.*(image file not found|not found)"),
        ("too_long", r"row 3.*longer than the model context of 512"),
        ("wrong_columns", r"row 1.*'prompt'.*question"),
    ],
)
def test_bad_input_names_the_row_and_writes_nothing(tiny_model_path, tmp_path, case, pattern):
    data = tmp_path / "anchors.jsonl"
    if case == "empty":
        data.write_text("")
    elif case == "missing_image":
        _write_jsonl(data, [{"prompt": "hello"}, {"prompt": "what is this", "image": "nope.png"}])
    elif case == "too_long":
        _write_jsonl(data, [{"prompt": "hello"}, {"prompt": "hi"}, {"prompt": "the " * 600}])
    else:
        _write_jsonl(data, [{"question": "hello", "img": "x.png"}])
    from typer.testing import CliRunner

    import cli

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = CliRunner().invoke(
        cli.app,
        ["calibrate", "--model", str(tiny_model_path("llava")), "--data", str(data), "--out", str(out_dir / "v.safetensors")],
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, SteerInputError), result.output
    assert re.search(pattern, str(result.exception)), str(result.exception)
    assert list(out_dir.iterdir()) == []


def test_in_memory_missing_image_names_the_row(tiny_loaded, tmp_path):
    sm = _sm(tiny_loaded, "llava")
    with pytest.raises(SteerInputError, match=r"anchors row 2: image file not found"):
        calibrate_cmrm(sm, [{"prompt": "a"}, {"prompt": "b", "image": str(tmp_path / "gone.png")}], progress=False)
    with pytest.raises(SteerInputError, match="no rows"):
        calibrate_cmrm(sm, [], progress=False)
    with pytest.raises(SteerInputError, match="out of range"):
        calibrate_cmrm(sm, PROMPTS, layers=[7], progress=False)


# ---------------------------------------------------------------------------- CLI
def test_cli_calibrate_resume_and_inspect(tiny_model_path, tiny_loaded, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import cli

    model = str(tiny_model_path("llava"))
    sm = _sm(tiny_loaded, "llava")
    img = tmp_path / "cat.png"
    sm.adapter.content_free_image("noise", seed=3).save(img)
    data = _write_jsonl(tmp_path / "anchors.jsonl", [{"prompt": p} for p in PROMPTS[:-1]] + [{"prompt": PROMPTS[-1], "image": "cat.png"}])
    runner = CliRunner()
    base = ["calibrate", "--model", model, "--data", str(data), "--layers", "0-1", "--batch-size", "2"]

    out = tmp_path / "full.safetensors"
    result = runner.invoke(cli.app, base + ["--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "consistency" in result.output
    vecs = ShiftVectors.load(out)
    api = calibrate_cmrm(sm, data, layers=[0, 1], batch_size=2, progress=False)
    for layer in (0, 1):
        assert _rel(vecs.shifts[layer], api.shifts[layer]) < 1e-6
    assert vecs.metadata["data_sha256"] == api.metadata["data_sha256"]

    # interrupted after 2 batches: no output, a checkpoint next to --out; rerun resumes, identical vectors
    resumable = tmp_path / "resumed.safetensors"
    cmd = base + ["--out", str(resumable), "--checkpoint-every", "2"]
    _interrupt_after(monkeypatch, batches=2)
    result = runner.invoke(cli.app, cmd)
    assert isinstance(result.exception, _Boom)
    assert not resumable.exists() and checkpoint_path_for(resumable).exists()
    monkeypatch.undo()
    result = runner.invoke(cli.app, cmd)
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output
    assert not checkpoint_path_for(resumable).exists()
    again = ShiftVectors.load(resumable)
    for layer in (0, 1):
        assert torch.equal(again.shifts[layer], vecs.shifts[layer])

    result = runner.invoke(cli.app, ["inspect", str(out)])
    assert result.exit_code == 0, result.output
    assert "consistency" in result.output and "separability" in result.output and "norm" in result.output

    # ShiftDC from two files; inspect shows the direction columns
    harmful = _write_jsonl(tmp_path / "harmful.jsonl", [{"prompt": p} for p in HARMFUL])
    benign = _write_jsonl(tmp_path / "benign.jsonl", [{"prompt": p} for p in BENIGN])
    dc = tmp_path / "dc.safetensors"
    result = runner.invoke(
        cli.app, base + ["--out", str(dc), "--method", "shiftdc", "--safety-data", f"{harmful},{benign}"]
    )
    assert result.exit_code == 0, result.output
    assert ShiftVectors.load(dc).directions is not None
    result = runner.invoke(cli.app, ["inspect", str(dc), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["layers"]
    assert all("cos_dir" in r and "share_dir" in r and r["separability"] is not None for r in rows)
    result = runner.invoke(cli.app, base + ["--out", str(dc), "--method", "shiftdc"])
    assert isinstance(result.exception, SteerInputError) and "--safety-data" in str(result.exception)

    # the recipe stored in the file: 'measured' by default, 'paper' by name, 'custom' when the user's
    # settings differ from the preset; ShiftDC's measured recipe is sample level, alpha 1.0; a bad one fails early
    assert (vecs.metadata["recipe"], vecs.metadata["positions"], vecs.metadata["schedule"]) == (
        "measured", "prompt", "incremental"
    )
    dc_meta = ShiftVectors.load(dc).metadata
    assert (dc_meta["recipe"], dc_meta["level"], dc_meta["default_alpha"]) == ("measured", "sample", 1.0)
    paper = tmp_path / "paper.safetensors"
    result = runner.invoke(cli.app, base + ["--out", str(paper), "--recipe", "paper"])
    assert result.exit_code == 0, result.output
    assert "recipe paper" in result.output
    meta = ShiftVectors.load(paper).metadata
    assert (meta["recipe"], meta["positions"], meta["schedule"], meta["default_alpha"]) == (
        "paper", "after_image", "cumulative", 1.0
    )
    tuned = tmp_path / "tuned.safetensors"
    recipe = ["--positions", "prompt", "--schedule", "incremental", "--alpha", "0.5"]
    result = runner.invoke(cli.app, base + ["--out", str(tuned), *recipe])
    assert result.exit_code == 0, result.output
    meta = ShiftVectors.load(tuned).metadata
    assert (meta["recipe"], meta["positions"], meta["schedule"], meta["default_alpha"]) == (
        "custom", "prompt", "incremental", 0.5
    )
    result = runner.invoke(cli.app, ["inspect", str(tuned)])
    assert "recipe custom: level=dataset alpha=0.5 positions=prompt schedule=incremental" in result.output
    for bad in (["--recipe", "papr"], ["--positions", "everywhere"], ["--layers", "x-y"], ["--level", "corpus"]):
        result = runner.invoke(cli.app, base + ["--out", str(tmp_path / "bad.safetensors"), *bad])
        assert isinstance(result.exception, SteerInputError) and bad[1] in str(result.exception), bad
    result = runner.invoke(cli.app, base + ["--out", str(tmp_path / "bad.safetensors"), "--schedule", "sometimes"])
    assert isinstance(result.exception, SteerInputError) and "sometimes" in str(result.exception)
    assert not (tmp_path / "bad.safetensors").exists()
    result = runner.invoke(cli.app, base + ["--out", str(tmp_path / "bad.safetensors"), "--schedule", "single"])
    assert isinstance(result.exception, SteerInputError) and "give one layer" in str(result.exception)
    assert not (tmp_path / "bad.safetensors").exists()


def test_init_from_env_is_a_no_op_outside_torchrun(monkeypatch):
    """Without WORLD_SIZE > 1 no process group is made and the device passes through unchanged."""
    import torch.distributed as tdist

    from calibration.distributed import init_from_env

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_from_env("cpu", None) == "cpu" and init_from_env(None, None) is None
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert init_from_env("cuda:3", None) == "cuda:3"
    assert not tdist.is_initialized()
