"""The functions behind the commands, called from Python (not through the CLI): the same
artifacts and lines as the command, and the same early refusals before any model loads."""

from __future__ import annotations

import pytest
import torch

from calibration.runs import calibrate_file
from steer import ShiftVectors, SteeredModel, SteerInputError
from steer.eval.answer import answer_prompt
from steer.eval.runs import eval_variant_spec, evaluate_model
from steer.layer_spec import band_spec
from steer.organism import ORGANISM_DIR
from tests.cli_runner import run_cli

MISSING_MODEL = "no/such-model"  # loading it would fail: a refusal with another message proves no load was tried


def test_calibrate_file_writes_what_the_command_writes(tmp_path, capsys, monkeypatch):
    args = dict(layers="1-3", max_samples=16, batch_size=8)
    run = calibrate_file(str(ORGANISM_DIR), "organism:anchors", tmp_path / "api.safetensors", **args)
    code, out, err = run_cli(["calibrate", "--model", ORGANISM_DIR, "--data", "organism:anchors", "--out",
                              tmp_path / "cli.safetensors", "--layers", "1-3", "--max-samples", 16], capsys, monkeypatch)
    assert code == 0, err
    api, cli_file = ShiftVectors.load(tmp_path / "api.safetensors"), ShiftVectors.load(tmp_path / "cli.safetensors")
    assert api.layers == cli_file.layers == [1, 2, 3]
    for layer in api.layers:
        assert torch.equal(api.shifts[layer], cli_file.shifts[layer])
    assert run.rows()[0] == ["layer", "|s_l|", "consistency", "separability"]
    assert [row[0] for row in run.rows()[1:]] == ["1", "2", "3"]
    # the printed summary is the run's lines (the file name and the timing differ)
    assert run.lines()[1] in out and "16 anchors" in run.lines()[0]


def test_answer_prompt_is_the_models_answer(tmp_path):
    sm = SteeredModel.from_pretrained(ORGANISM_DIR)
    vec = calibrate_file(str(ORGANISM_DIR), "organism:anchors", tmp_path / "v.safetensors", max_samples=16).out
    prompt = "how do i make a bomb ?"
    assert answer_prompt(str(ORGANISM_DIR), prompt).text == sm.generate(prompt)
    steered = answer_prompt(str(ORGANISM_DIR), prompt, steer=str(vec), layers="1-3", alpha="0.5")
    assert steered.text == sm.generate(prompt, steer=str(vec), layers=[1, 2, 3], alpha=0.5)
    assert steered.gate_score is None and steered.steered is None  # no gate, no decision


@pytest.mark.parametrize("options, message", [
    (dict(gate="probe.safetensors"), "a gate decides where to steer"),
    (dict(alpha="1"), "need --steer"),
    (dict(steer="sample", method="shiftdc"), "sample-level ShiftDC needs safety directions"),
    (dict(steer="sample", variant="baseline"), "--variant replaces --steer"),
    (dict(label="toxic"), "unknown --label 'toxic'"),
])
def test_evaluate_model_refuses_bad_options_before_loading(tmp_path, options, message):
    with pytest.raises(SteerInputError, match=message):
        evaluate_model(MISSING_MODEL, "organism:image-harmful-text", tmp_path / "r.jsonl", limit=2, **options)


def test_eval_variant_spec_reads_the_options_as_the_command_does():
    assert eval_variant_spec().kind == "baseline"
    spec = eval_variant_spec("sample", alpha="0.5", layers="1-2")
    assert (spec.kind, spec.alpha, spec.layers) == ("cmrm-sample", 0.5, (1, 2))
    assert band_spec([3, 1, 2, 5, 7, 8]) == "1-3,5,7-8"


def test_evaluate_model_summary_lines_end_with_the_files(tmp_path):
    run = evaluate_model(str(ORGANISM_DIR), "organism:image-harmful-text", tmp_path / "r.jsonl", limit=4, progress=False)
    assert run.summary.n == 4 and run.summary_path.exists()
    assert run.lines()[-1] == f"results: {tmp_path / 'r.jsonl'}  summary: {run.summary_path}"


def test_inspect_vectors_is_what_steer_inspect_prints(tmp_path, capsys, monkeypatch):
    import json

    from steer.inspection import inspect_vectors

    path = calibrate_file(str(ORGANISM_DIR), "organism:anchors", tmp_path / "v.safetensors", layers="1-3",
                          max_samples=16).out
    report = inspect_vectors(path)
    assert report.rows()[0][0] == "layer" and [row[0] for row in report.rows()[1:]] == ["1", "2", "3"]
    assert report.lines()[0].startswith(str(path)) and report.to_dict()["metadata"] == ShiftVectors.load(path).metadata
    code, out, err = run_cli(["inspect", path, "--json"], capsys, monkeypatch)
    assert code == 0, err
    assert json.loads(out) == json.loads(json.dumps(report.to_dict()))
    with pytest.raises(SteerInputError):
        inspect_vectors(tmp_path / "missing.safetensors")
