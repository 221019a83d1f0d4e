"""`steer generate` / `steer inspect` end to end, and one-line errors on bad input."""

from __future__ import annotations


import pytest
from typing import Optional
import torch

from tests.cli_runner import run_cli
import cli
from steer import SteeredModel, ShiftVectors


@pytest.fixture
def llava_setup(tiny_model_path, tiny_loaded, tmp_path):
    path = tiny_model_path("llava")
    sm = SteeredModel(*tiny_loaded("llava"))
    gen = torch.Generator().manual_seed(0)
    shifts = {l: 4 * torch.randn(sm.adapter.hidden_size, generator=gen) for l in range(sm.adapter.num_layers)}
    vec_path = ShiftVectors(shifts, None, {"method": "cmrm", "model": sm.adapter.fingerprint()}).save(
        tmp_path / "shift.safetensors"
    )
    img_path = tmp_path / "img.png"
    sm.adapter.content_free_image("noise", seed=4).save(img_path)
    return path, sm, vec_path, img_path


def test_generate_baseline_and_steered_match_the_api(llava_setup, capsys, monkeypatch):
    path, sm, vec_path, img_path = llava_setup
    base_args = ["generate", "--model", path, "--prompt", "how do i make a bomb", "--image", img_path, "--max-new-tokens", 6]
    code, out, err = run_cli(base_args, capsys, monkeypatch)
    assert code == 0, err
    assert out.strip() == sm.generate("how do i make a bomb", image=img_path, max_new_tokens=6)
    code, out_steered, err = run_cli(base_args + ["--steer", vec_path, "--alpha", "1.0", "--layers", "0-1"], capsys, monkeypatch)
    assert code == 0, err
    want = sm.generate("how do i make a bomb", image=img_path, steer=vec_path, alpha=1.0, layers=[0, 1], max_new_tokens=6)
    assert out_steered.strip() == want


def test_inspect_shows_layers_and_provenance(llava_setup, capsys, monkeypatch):
    _, sm, vec_path, _ = llava_setup
    code, out, err = run_cli(["inspect", vec_path], capsys, monkeypatch)
    assert code == 0, err
    assert "llava" in out and "norm" in out and "cos_prev" in out
    code, out, _ = run_cli(["inspect", vec_path, "--json"], capsys, monkeypatch)
    assert code == 0 and '"method": "cmrm"' in out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--image", "/nonexistent/cat.png"], "image not found"),
        (["--steer", "/nonexistent/v.safetensors"], "vector file not found"),
        (["--steer", "VEC", "--layers", "0-99"], "out of range"),
        (["--steer", "VEC", "--alpha", "strong"], "alpha must be a number"),
        (["--image", "BADIMG"], "cannot read image"),
    ],
)
def test_bad_input_gives_one_line_error(llava_setup, capsys, monkeypatch, tmp_path, extra, message):
    path, _, vec_path, _ = llava_setup
    bad_img = tmp_path / "bad.png"
    bad_img.write_text("this is not an image")
    extra = [str(vec_path) if e == "VEC" else str(bad_img) if e == "BADIMG" else e for e in extra]
    code, out, err = run_cli(["generate", "--model", path, "--prompt", "hi", *extra], capsys, monkeypatch)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", [
    ["generate", "--prompt", "hi"],
    ["eval", "--data", "organism:text-harmful", "--limit", "1", "--out", "OUT"],
    ["compare", "--variants", "baseline", "--data", "organism:text-harmful", "--limit", "1", "--out", "OUT"],
])
def test_device_map_without_accelerate_names_the_fix(llava_setup, capsys, monkeypatch, tmp_path, command):
    """--device-map reaches from_pretrained on every model-loading command; without accelerate the error says what to install."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "accelerate" else real(name, *a))
    path = llava_setup[0]
    args = [str(tmp_path / "out") if a == "OUT" else a for a in command]
    code, _, err = run_cli([args[0], "--model", path, *args[1:], "--device-map", "auto"], capsys, monkeypatch)
    assert code == 2 and "pip install accelerate" in err and "Traceback" not in err


def test_text_model_with_image_and_foreign_vectors_are_refused(tiny_model_path, llava_setup, capsys, monkeypatch):
    _, _, vec_path, img_path = llava_setup
    llama = tiny_model_path("llama")
    code, _, err = run_cli(["generate", "--model", llama, "--prompt", "hi", "--image", img_path], capsys, monkeypatch)
    assert code == 2 and "drop --image" in err
    code, _, err = run_cli(["generate", "--model", llama, "--prompt", "hi", "--steer", vec_path], capsys, monkeypatch)
    assert code == 2 and "vector file" in err and "llava" in err


def test_missing_model_path_is_clear(capsys, monkeypatch, tmp_path):
    code, _, err = run_cli(["generate", "--model", tmp_path / "nope", "--prompt", "hi"], capsys, monkeypatch)
    assert code == 2 and "model path not found" in err


def test_parse_layers():
    assert cli.parse_layers("8-10") == [8, 9, 10]
    assert cli.parse_layers("3,5,7-8") == [3, 5, 7, 8]
    assert cli.parse_layers("all", 3) == [0, 1, 2]
    assert cli.parse_layers("-1") == [-1]
    assert cli.parse_layers(None) is None
    with pytest.raises(Exception, match="cannot read layers"):
        cli.parse_layers("ten")


@pytest.mark.parametrize("args, message", [
    ([], "Usage:"),
    (["foo"], "No such command 'foo'"),
    (["eval", "--model", "x"], "Missing option '--data'"),
    (["demo", "--limit", "0"], "greater than or equal to 1"),
    (["organism"], "Missing command"),
])
def test_usage_errors_are_messages_not_tracebacks(capsys, monkeypatch, args, message):
    """typer vendors its own click: its usage errors must still end as click's usage message, exit 2."""
    code, out, err = run_cli(args, capsys, monkeypatch)
    assert code == 2 and message in out + err and "Traceback" not in out + err


def test_user_text_is_never_read_as_rich_markup(llava_setup, capsys, monkeypatch, tmp_path):
    """Paths and messages with '[/x]' or ':smile:' are printed as typed (no MarkupError, no emoji)."""
    path = llava_setup[0]
    code, _, err = run_cli(["generate", "--model", path, "--prompt", "hi", "--image", ":smile:[/x].png"], capsys, monkeypatch)
    assert code == 2 and ":smile:[/x].png" in err and "Traceback" not in err


def test_bad_output_paths_fail_before_the_work(llava_setup, capsys, monkeypatch, tmp_path):
    path = llava_setup[0]
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, _, err = run_cli(["calibrate", "--model", path, "--data", "organism:anchors", "--out", afile / "v.safetensors"],
                           capsys, monkeypatch)
    assert code == 2 and "is a file, not a folder" in err and "shift" not in err  # no calibration progress shown
    code, _, err = run_cli(["compare", "--model", path, "--variants", "baseline", "--data", "organism:text-harmful",
                            "--out", afile], capsys, monkeypatch)
    assert code == 2 and "takes a folder" in err


def test_hub_ids_reach_from_pretrained(monkeypatch):
    """'org/name' is a hub id, not a missing local path: offline it fails with the loader's reason."""
    from steer.errors import SteerInputError
    from steer.model import load_model_and_processor

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SteerInputError, match="cannot load model 'llava-hf/llava-1.5-7b-hf'"):
        load_model_and_processor("llava-hf/llava-1.5-7b-hf")
    with pytest.raises(SteerInputError, match="model path not found: ./nowhere"):
        load_model_and_processor("./nowhere")


def test_demo_on_a_text_only_model_says_what_it_needs(tiny_model_path, capsys, monkeypatch, tmp_path):
    code, _, err = run_cli(["demo", "--model", tiny_model_path("llama"), "--out", tmp_path / "d"], capsys, monkeypatch)
    assert code == 2 and "text-only model" in err and "steer organism train" in err


@pytest.mark.parametrize("spec", ["-3-1", "5-2", "x"])
def test_layer_ranges_must_be_readable(spec):
    from steer.errors import SteerInputError

    with pytest.raises(SteerInputError, match="ranges take layers >= 0"):
        cli.parse_layers(spec, 4)
    assert cli.parse_layers("-1", 4) == [-1] and cli.parse_layers("1-3", 4) == [1, 2, 3]


COMMANDS = ["generate", "inspect", "calibrate", "probe", "eval", "sweep", "compare", "report", "train-tga",
            "inspect-layers", "export", "demo", "organism", "organism train"]


@pytest.mark.parametrize("columns", [80, 100])
def test_help_is_plain_text_that_fits_the_terminal(columns, capsys, monkeypatch):
    """Help at 80/100 columns: no emoji codes or markup interpreted, nothing cut, every option listed."""
    code, out, _ = run_cli(["--help"], capsys, monkeypatch, columns=columns)
    commands = out[out.index("Commands:"):]
    assert code == 0 and "--version" in out and "..." not in commands  # command summaries are whole
    for command in COMMANDS:
        code, out, _ = run_cli([*command.split(), "--help"], capsys, monkeypatch, columns=columns)
        assert code == 0, command
        assert "…" not in out and "✌" not in out and "\\[" not in out, command
        assert max(map(len, out.splitlines())) <= columns, command
    code, out, _ = run_cli(["compare", "--help"], capsys, monkeypatch, columns=columns)
    assert "gated:V:PROBE[:T]" in out  # ':V:' is text, not the emoji code it used to become
    code, out, _ = run_cli(["calibrate", "--help"], capsys, monkeypatch, columns=columns)
    assert "--recipe" in out and "measured" in out and "paper" in out


def test_version(capsys, monkeypatch):
    from steer.version import __version__

    code, out, _ = run_cli(["--version"], capsys, monkeypatch)
    assert code == 0 and out.strip() == f"steer {__version__}"


def test_alpha_is_text_parsed_the_same_everywhere():
    """--alpha is one type (text, parsed by one function) in every command that takes it."""
    import inspect
    from typing import Annotated, get_args, get_origin

    seen = []
    for info in cli.app.registered_commands:
        param = inspect.signature(info.callback, eval_str=True).parameters.get("alpha")
        if param is not None:
            seen.append(info.callback.__name__)
            annotation = param.annotation  # a shared option type (cli_options) is Annotated[type, option]
            if get_origin(annotation) is Annotated:
                annotation = get_args(annotation)[0]
            assert annotation in (str, Optional[str]), info.callback.__name__
    assert len(seen) >= 5


@pytest.mark.parametrize(
    "args, needle",
    [
        (["generate", "--prompt", "hi", "--positions", "everywhere"], "everywhere"),
        (["generate", "--prompt", "hi", "--schedule", "sometimes"], "sometimes"),
        (["generate", "--prompt", "hi", "--layers", "a-b"], "a-b"),
        (["generate", "--prompt", "hi", "--level", "corpus"], "corpus"),
        (["eval", "--data", "advbench", "--out", "x.jsonl", "--steer", "sample", "--positions", "everywhere"], "everywhere"),
        (["sweep", "--steer", "sample", "--safety-data", "advbench", "--layers", "x;y"], "x"),
        (["calibrate", "--data", "advbench", "--out", "x.safetensors", "--recipe", "papr"], "papr"),
        (["probe", "--data", "organism:probe", "--out", "p.safetensors", "--view", "sideways"], "sideways"),
        (["probe", "--data", "organism:probe", "--out", "p.safetensors", "--layers", "q"], "'q'"),
    ],
)
def test_options_are_checked_before_the_model_loads(args, needle, capsys, monkeypatch, tmp_path):
    """A model that does not exist is never reached: the bad option is reported first."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli([args[0], "--model", "no/such-model", *args[1:]], capsys, monkeypatch)
    assert code == 2 and needle in err and "no/such-model" not in err, err


def test_help_names_the_positions_and_schedules_the_code_accepts():
    """cli_options spells the choices out (importing steer.positions would load torch for --help); keep them equal."""
    import cli_options
    from steer.positions import POSITIONS
    from steer.schedule import SCHEDULES

    assert cli_options.POSITION_NAMES == " | ".join(POSITIONS)
    assert cli_options.SCHEDULE_NAMES == " | ".join(SCHEDULES)
