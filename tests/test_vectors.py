"""Vector files: round trip, provenance, atomic writes, refusal of the wrong model."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from steer import SteeredModel, ShiftVectors
from steer.errors import ModelMismatchError, SteerInputError
from steer.schedule import apply_schedule


def _file_for(sm: SteeredModel, tmp_path, layers=(0, 1), directions=False) -> ShiftVectors:
    gen = torch.Generator().manual_seed(0)
    d = sm.adapter.hidden_size
    shifts = {l: torch.randn(d, generator=gen) for l in layers}
    dirs = None
    if directions:
        dirs = {l: (v := torch.randn(d, generator=gen)) / v.norm() for l in layers}
    return ShiftVectors(
        shifts,
        dirs,
        {"method": "shiftdc" if directions else "cmrm", "model": sm.adapter.fingerprint(), "n_samples": 3},
    )


def test_round_trip_keeps_tensors_and_metadata(tiny_loaded, tmp_path):
    sm = SteeredModel(*tiny_loaded("llava"))
    vecs = _file_for(sm, tmp_path, directions=True)
    path = vecs.save(tmp_path / "v.safetensors")
    back = ShiftVectors.load(path)
    assert back.layers == [0, 1]
    for l in back.layers:
        assert torch.equal(back.shifts[l], vecs.shifts[l])
        assert torch.equal(back.directions[l], vecs.directions[l])
    meta = back.metadata
    for key in ("format_version", "method", "layers", "hidden_size", "dtype", "model", "toolkit_version", "created"):
        assert key in meta, key
    assert meta["model"]["model_type"] == "llava"
    with safe_open(str(path), framework="pt") as fh:
        assert json.loads(fh.metadata()["steer"])["method"] == "shiftdc"
    back.check_model(sm.adapter)  # same model: accepted
    assert not list(tmp_path.glob(".*.tmp"))  # no temp file left behind


def test_mismatched_model_is_refused_naming_both(tiny_loaded, tmp_path):
    llava = SteeredModel(*tiny_loaded("llava"))
    qwen = SteeredModel(*tiny_loaded("qwen2_vl"))
    vecs = _file_for(llava, tmp_path)
    with pytest.raises(ModelMismatchError) as err:
        vecs.check_model(qwen.adapter)
    text = str(err.value)
    assert "d=" in text or "model_type" in text or "qwen2_vl" in text
    # same architecture, other weights: refused unless allowed
    other = dict(vecs.metadata["model"], weights_sha256="0" * 16)
    forged = ShiftVectors(vecs.shifts, None, dict(vecs.metadata, model=other))
    with pytest.raises(ModelMismatchError, match="other weights"):
        forged.check_model(llava.adapter)
    forged.check_model(llava.adapter, allow_other_weights=True)
    with pytest.raises(ModelMismatchError):
        llava.generate("hello", steer=forged)


def test_shiftdc_direction_for_other_hidden_size_is_refused(tiny_loaded, tmp_path):
    llava = SteeredModel(*tiny_loaded("llava"))
    d = llava.adapter.hidden_size + 8
    v = torch.ones(d) / d**0.5
    vecs = ShiftVectors({0: torch.ones(d)}, {0: v}, {"method": "shiftdc", "model": {"name_or_path": "elsewhere"}})
    with pytest.raises(ModelMismatchError, match="hidden-size mismatch"):
        vecs.check_model(llava.adapter)


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(SteerInputError, match="not found"):
        ShiftVectors.load(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(SteerInputError, match="not a readable"):
        ShiftVectors.load(junk)
    with pytest.raises(SteerInputError, match="unit norm"):
        ShiftVectors({0: torch.ones(4)}, {0: torch.ones(4)})


def test_failed_write_leaves_old_file(tmp_path, monkeypatch):
    path = tmp_path / "v.safetensors"
    ShiftVectors({0: torch.ones(4)}).save(path)
    before = path.read_bytes()
    import steer.artifact as artifact_mod

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(artifact_mod, "save_file", boom)
    with pytest.raises(OSError):
        ShiftVectors({0: torch.zeros(4)}).save(path)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_shiftdc_parallel_equals_cmrm_and_orthogonal_is_identity(tiny_loaded):
    sm = SteeredModel(*tiny_loaded("llava"))
    d = sm.adapter.hidden_size
    s = torch.randn(d, generator=torch.Generator().manual_seed(1))
    ortho = torch.randn(d, generator=torch.Generator().manual_seed(2))
    ortho = ortho - (ortho @ s) / (s @ s) * s
    ortho = ortho / ortho.norm()
    par = ShiftVectors({0: s}, {0: s / s.norm()}, {"method": "shiftdc"})
    orth = ShiftVectors({0: s}, {0: ortho}, {"method": "shiftdc"})
    assert torch.allclose(par.to_subtract()[0], s, atol=1e-5)
    assert orth.to_subtract()[0].abs().max() < 1e-5
    img = sm.adapter.content_free_image("noise", seed=3)
    inputs = sm.build_inputs(["how do i make a bomb"], [img])
    with torch.no_grad():
        base = sm.model(**inputs).logits
        with sm.steering(ShiftVectors({0: torch.zeros(d)}, {0: ortho}, {"method": "shiftdc"}), alpha=1.0):
            same = sm.model(**inputs).logits
        with sm.steering(orth, alpha=1.0):
            nearly = sm.model(**inputs).logits
        with sm.steering(par, alpha=1.0):
            via_dc = sm.model(**inputs).logits
        with sm.steering(ShiftVectors({0: s}, None, {"method": "cmrm"}), alpha=1.0):
            via_cmrm = sm.model(**inputs).logits
    assert torch.equal(base, same)
    assert torch.allclose(base, nearly, atol=1e-4)
    assert torch.allclose(via_dc, via_cmrm, atol=1e-4)
    assert not torch.allclose(base, via_cmrm, atol=1e-3)


def test_schedules_on_identity_layers(tiny_model_path):
    """With attention and MLP zeroed every decoder layer is the identity, so the residual
    after layer l is exactly what the schedule has subtracted up to l."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tiny_model_path("llama")
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    for layer in model.model.layers:
        torch.nn.init.zeros_(layer.self_attn.o_proj.weight)
        torch.nn.init.zeros_(layer.mlp.down_proj.weight)
    sm = SteeredModel(model, AutoTokenizer.from_pretrained(path))
    n = sm.adapter.num_layers
    gen = torch.Generator().manual_seed(0)
    shifts = {l: torch.randn(sm.adapter.hidden_size, generator=gen) for l in range(n)}
    inputs = sm.build_inputs(["hello there"])
    alpha = 0.5
    with torch.no_grad():
        emb = sm.model(**inputs, output_hidden_states=True).hidden_states[0]
        for schedule in ("cumulative", "incremental"):
            with sm.steering(ShiftVectors(shifts), alpha=alpha, positions="all", schedule=schedule):
                hs = sm.model(**inputs, output_hidden_states=True).hidden_states
            for l in range(n - 1):  # the last entry is post-norm
                removed = emb - hs[l + 1]
                if schedule == "incremental":
                    want = alpha * shifts[l]
                else:
                    want = alpha * sum(shifts[k] for k in range(l + 1))
                assert torch.allclose(removed, want.expand_as(removed), atol=1e-5), (schedule, l)
    with pytest.raises(SteerInputError, match="single"):
        apply_schedule(shifts, "single")
    assert list(apply_schedule({n - 1: shifts[n - 1]}, "single")) == [n - 1]
