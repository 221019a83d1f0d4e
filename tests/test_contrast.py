"""General steering vectors: contrastive-pair training (mean_diff, pca), the
`calibrate --method contrast` CLI, and vector arithmetic with provenance."""

from __future__ import annotations

import json

import pytest
import torch

from calibration import train_vector
from calibration.contrast import contrast_vectors, load_pairs, orient_pc1
from steer import SteeredModel, ShiftVectors
from steer.errors import ModelMismatchError, SteerInputError

PAIRS = [
    ("answer in a happy way : what is a dog", "answer in a sad way : what is a dog"),
    ("answer in a happy way : where is the city", "answer in a sad way : where is the city"),
    ("be kind and tell me about the sun", "be bad and tell me about the sun"),
]


def _sm(tiny_loaded, family: str = "llama") -> SteeredModel:
    return SteeredModel(*tiny_loaded(family))


def _last_state(sm: SteeredModel, prompt, layer: int) -> torch.Tensor:
    """The naive way: one prompt alone, HF hidden_states (layer i's output = hidden_states[i + 1])."""
    inputs = sm.build_inputs([prompt])
    with torch.no_grad():
        out = sm.model(**inputs, output_hidden_states=True)
    return out.hidden_states[layer + 1][0, -1].double()


# ---------------------------------------------------------------------------- training
@pytest.mark.parametrize("family", ["llama", "qwen2_vl"])
def test_mean_diff_equals_a_naive_hand_computation(tiny_loaded, family):
    sm = _sm(tiny_loaded, family)
    layers = [0, 1]  # not the last: HF replaces hidden_states[-1] by the final-normed state
    vecs = train_vector(sm, PAIRS, layers, method="mean_diff", batch_size=2)
    for layer in layers:
        naive = torch.stack([_last_state(sm, p, layer) - _last_state(sm, n, layer) for p, n in PAIRS]).mean(0)
        # stored orientation: what the engine subtracts, i.e. mean(negative) - mean(positive)
        torch.testing.assert_close(vecs.shifts[layer].double(), -naive, rtol=1e-5, atol=1e-5)
    meta = vecs.metadata
    assert meta["method"] == "contrast" and meta["contrast"]["method"] == "mean_diff"
    assert meta["n_samples"] == 3 and meta["contrast"]["n_pairs"] == 3 and len(meta["data_sha256"]) == 64
    assert meta["positions"] == "text" and meta["schedule"] == "incremental"
    assert meta["model"]["weights_sha256"] == sm.adapter.fingerprint()["weights_sha256"]


def test_pca_orientation_is_fixed_by_the_data():
    gen = torch.Generator().manual_seed(0)
    d = 6
    behaviour = torch.zeros(d, dtype=torch.float64)
    behaviour[2] = 1.0
    diffs = 3.0 * behaviour + 0.2 * torch.randn(40, d, generator=gen, dtype=torch.float64)
    for flip in (1.0, -1.0):  # the same data up to the solver's sign choice: the answer must not change
        u, share = orient_pc1(flip * diffs * flip, diffs.mean(0))
        assert float(u @ behaviour) > 0.99 and share > 0.9
    vectors, stats = contrast_vectors({0: diffs}, "pca")
    mean = diffs.mean(0)
    u, _ = orient_pc1(diffs, mean)
    # scaled to the mean difference's component on the direction, stored as what is subtracted
    torch.testing.assert_close(vectors[0].double(), -(mean @ u) * u, rtol=1e-6, atol=1e-6)
    assert float(vectors[0].double() @ behaviour) < 0  # subtracting it moves toward the positives
    assert stats["0"]["agreement"] == 1.0 and stats["0"]["cos_pc1_mean"] > 0.99
    # reversed pairs give exactly the opposite vector
    reversed_vectors, _ = contrast_vectors({0: -diffs}, "pca")
    torch.testing.assert_close(reversed_vectors[0], -vectors[0])


def test_positive_alpha_moves_hidden_states_toward_the_positive_side(tiny_loaded):
    sm = _sm(tiny_loaded)
    layer = 1
    vecs = train_vector(sm, PAIRS, [layer], method="pca")
    direction = -vecs.shifts[layer].double()  # positive minus negative, along the principal direction
    probe = "what is a dog"
    inputs = sm.build_inputs([probe])

    def projection(alpha: float) -> float:
        with sm.steering(vecs, alpha=alpha, positions="all"):
            with torch.no_grad():
                h = sm.model(**inputs, output_hidden_states=True).hidden_states[layer + 1][0, -1]
        return float(h.double() @ direction)

    assert projection(1.0) > projection(0.0) > projection(-1.0)


def test_pairs_file_and_bad_pairs(tmp_path, tiny_loaded):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"positive": p, "negative": n}) + "\n" for p, n in PAIRS))
    from_file = train_vector(_sm(tiny_loaded), path, [0])
    in_memory = train_vector(_sm(tiny_loaded), [{"positive": p, "negative": n} for p, n in PAIRS], [0])
    assert torch.equal(from_file.shifts[0], in_memory.shifts[0])
    assert from_file.metadata["data_sha256"] == in_memory.metadata["data_sha256"]
    assert from_file.metadata["contrast"]["data"] == str(path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"positive": "a", "negativ": "b"}) + "\n")
    with pytest.raises(SteerInputError, match="missing 'negative'"):
        load_pairs(bad)
    with pytest.raises(SteerInputError, match="at least two pairs"):
        train_vector(_sm(tiny_loaded), PAIRS[:1], [0], method="pca")
    with pytest.raises(SteerInputError, match="unknown contrast method"):
        train_vector(_sm(tiny_loaded), PAIRS, [0], method="lda")


def test_conversation_pairs_with_a_system_prompt(tiny_loaded):
    sm = _sm(tiny_loaded, "qwen2_vl")
    pairs = [
        {"positive": [{"role": "system", "content": "you are happy"}, {"role": "user", "content": q}],
         "negative": [{"role": "system", "content": "you are sad"}, {"role": "user", "content": q}]}
        for q in ("what is a dog", "where is the city")
    ]
    vecs = train_vector(sm, pairs, [0], method="mean_diff")
    naive = torch.stack([_last_state(sm, p["positive"], 0) - _last_state(sm, p["negative"], 0) for p in pairs]).mean(0)
    torch.testing.assert_close(vecs.shifts[0].double(), -naive, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------- arithmetic
def _two(tiny_loaded):
    sm = _sm(tiny_loaded)
    a = train_vector(sm, PAIRS, [0, 1], name="happy")
    b = train_vector(sm, PAIRS[:2], [0, 1], method="pca", name="kind")
    return sm, a, b


def test_arithmetic_values_are_exact_and_keep_provenance(tiny_loaded, tmp_path):
    sm, a, b = _two(tiny_loaded)
    c = 0.5 * a + b
    for layer in (0, 1):
        assert torch.equal(c.shifts[layer], 0.5 * a.shifts[layer] + b.shifts[layer])
        assert torch.equal((a - b).shifts[layer], a.shifts[layer] - b.shifts[layer])
        assert torch.equal((-a).shifts[layer], -a.shifts[layer])
        assert torch.equal((a * 2).shifts[layer], 2 * a.shifts[layer])
        assert torch.equal((a / 4).shifts[layer], a.shifts[layer] / 4)
    assert c.metadata["derived"]["expression"] == "0.5 * happy + kind"
    assert set(c.metadata["derived"]["sources"]) == {"happy", "kind"}
    assert c.metadata["derived"]["sources"]["happy"]["data_sha256"] == a.metadata["data_sha256"]
    assert (a - (b + a)).metadata["derived"]["expression"] == "happy - (kind + happy)"
    assert "stats" not in c.metadata or not c.metadata["stats"]  # measured stats do not carry over to a sum
    assert c.metadata["model"] == a.metadata["model"] and c.method == "contrast"
    one = a.select_layers([1])
    assert one.layers == [1] and torch.equal(one.shifts[1], a.shifts[1])
    assert one.metadata["derived"]["expression"] == "happy.select_layers([1])"
    assert "expression='0.5 * happy + kind'" in repr(c)

    path = c.save(tmp_path / "mix.safetensors")
    back = ShiftVectors.load(path)
    for layer in (0, 1):
        assert torch.equal(back.shifts[layer], c.shifts[layer])
    assert back.metadata["derived"] == c.metadata["derived"]
    assert back.method == "contrast" and back.metadata["positions"] == "text"
    # and it steers like the two applied together
    x = sm.build_inputs(["what is a dog"])
    with sm.steering(back, alpha=1.0, schedule="cumulative"), torch.no_grad():
        together = sm.model(**x).logits
    with sm.steering(0.5 * a, alpha=1.0, schedule="cumulative"), sm.steering(b, alpha=1.0, schedule="cumulative"), torch.no_grad():
        nested = sm.model(**x).logits
    torch.testing.assert_close(together, nested, rtol=1e-5, atol=1e-5)


def test_arithmetic_refuses_what_has_no_single_meaning(tiny_loaded):
    sm, a, b = _two(tiny_loaded)
    with pytest.raises(SteerInputError, match="different layers"):
        a + a.select_layers([0])
    with pytest.raises(SteerInputError, match="positions"):
        a + ShiftVectors(b.shifts, None, dict(b.metadata, positions="all"))
    other = dict(a.metadata["model"], weights_sha256="0" * 16, name_or_path="elsewhere")
    with pytest.raises(ModelMismatchError, match="different models"):
        a + ShiftVectors(b.shifts, None, dict(b.metadata, model=other))
    with pytest.raises(ModelMismatchError, match="hidden size"):
        a + ShiftVectors({0: torch.ones(7), 1: torch.ones(7)}, None, {"positions": "text", "schedule": "incremental"})
    with pytest.raises(SteerInputError, match="number"):
        a + 1.0
    with pytest.raises(SteerInputError, match="finite number"):
        a * float("nan")
    with pytest.raises(SteerInputError, match="only vector files"):
        a + {"0": torch.ones(3)}
    with pytest.raises(SteerInputError, match="not in this vector file"):
        a.select_layers([5])


def test_shiftdc_operand_adds_what_it_subtracts():
    d = 4
    dirs = {0: torch.tensor([1.0, 0, 0, 0])}
    dc = ShiftVectors({0: torch.tensor([2.0, 3.0, 0, 0])}, dirs, {"method": "shiftdc"})
    plain = ShiftVectors({0: torch.ones(d)}, None, {"method": "cmrm"})
    mix = dc + plain
    assert mix.directions is None and mix.method == "custom"
    assert torch.equal(mix.shifts[0], torch.tensor([3.0, 1.0, 1.0, 1.0]))  # (s.v)v + ones
    half = 0.5 * dc
    assert half.method == "shiftdc" and torch.equal(half.to_subtract()[0], 0.5 * dc.to_subtract()[0])
    # two different files under one label: both stay in the provenance
    twin = ShiftVectors({0: 2 * torch.ones(d)}, None, {"method": "cmrm"})
    assert list((plain + twin).metadata["derived"]["sources"]) == ["cmrm", "cmrm (2)"]
    assert list((plain + plain).metadata["derived"]["sources"]) == ["cmrm"]


# ---------------------------------------------------------------------------- CLI
def test_cli_calibrate_contrast(tiny_model_path, tmp_path, capsys, monkeypatch):
    from tests.cli_runner import run_cli

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"positive": p, "negative": n}) + "\n" for p, n in PAIRS))
    out = tmp_path / "happy.safetensors"
    args = ["calibrate", "--model", str(tiny_model_path("llama")), "--method", "contrast",
            "--data", str(pairs), "--out", str(out), "--layers", "0-1"]
    code, stdout, stderr = run_cli(args + ["--reduce", "pc1"], capsys, monkeypatch)
    assert code == 0, stderr
    vecs = ShiftVectors.load(out)
    assert vecs.method == "contrast" and vecs.metadata["contrast"]["method"] == "pca" and vecs.layers == [0, 1]
    assert vecs.metadata["positions"] == "text" and vecs.metadata["schedule"] == "incremental"
    assert "agreement" in stdout and "toward the positive" in stdout
    code, _, _ = run_cli(args + ["--positions", "all", "--alpha", "2"], capsys, monkeypatch)
    assert code == 0
    vecs = ShiftVectors.load(out)
    assert vecs.metadata["contrast"]["method"] == "mean_diff" and vecs.metadata["positions"] == "all"
    assert vecs.metadata["default_alpha"] == 2.0
    code, _, stderr = run_cli(args + ["--safety-data", "x.jsonl"], capsys, monkeypatch)
    assert code == 2 and "--safety-data is not used" in stderr
