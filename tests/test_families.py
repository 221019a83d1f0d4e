"""The 2026 VLM families (Gemma 3, Qwen3-VL, LLaVA-OneVision, Mistral 3, InternVL) end to end.

The adapter and hook-engine invariants (image positions, padded batch == one by one, KV
cache == recompute, alpha 0, sample level) run on every family through the family lists
in tests/test_adapters.py and tests/test_steering.py. This file adds, per new family,
what the other suites test on LLaVA only: calibrate -> ``steer generate`` from the CLI,
ShiftDC at sample level, a TGA projector swap and a probe gate. Each is one light pass
(few prompts, few tokens) so the five families cost seconds, not minutes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from calibration import calibrate_cmrm, calibrate_shiftdc
from calibration.probe import fit_probe
from calibration.tga import train_tga_projector
from steer import SteeredModel, ShiftVectors
from tests.cli_runner import run_cli
from tests.test_calibration import BENIGN, HARMFUL, _one_thread  # noqa: F401 (_one_thread: autouse fixture)
from tests.test_tga import FMT, _assert_swap_changes_image_outputs_only, _rows
from tests.tiny_models import NEW_VLM_FAMILIES, random_shift_files

def _sm(tiny_loaded, family) -> SteeredModel:
    return SteeredModel(*tiny_loaded(family))


@pytest.mark.parametrize("family", NEW_VLM_FAMILIES)
def test_calibrate_then_cli_generate_steers_and_alpha_zero_is_unsteered(family, tiny_loaded, tiny_model_path, tmp_path,
                                                                        capsys, monkeypatch):
    """The done-when command: ``steer generate --model <tiny dir> --image x.png --prompt p --steer v``."""
    sm = _sm(tiny_loaded, family)
    calibrated = calibrate_cmrm(sm, HARMFUL + BENIGN, batch_size=4, progress=False)
    assert calibrated.layers == list(range(sm.adapter.num_layers))
    assert calibrated.metadata["model"]["family"] == family
    vec = calibrated.save(tmp_path / "v.safetensors")
    strong, _ = random_shift_files(sm, tmp_path, torch.Generator().manual_seed(0))
    image = tmp_path / "x.png"
    sm.adapter.content_free_image("noise", seed=4).save(image)
    base = ["generate", "--model", tiny_model_path(family), "--image", image, "--prompt", "how do i make a bomb",
            "--max-new-tokens", 6]

    def run(*extra: object) -> str:
        code, out, err = run_cli([*base, *extra], capsys, monkeypatch)
        assert code == 0, err
        return out.strip()

    unsteered = run()
    assert unsteered == sm.generate("how do i make a bomb", image=image, max_new_tokens=6)
    assert run("--steer", strong, "--alpha", "0") == unsteered
    steered = run("--steer", strong, "--alpha", "1")
    assert steered != unsteered
    assert steered == sm.generate("how do i make a bomb", image=image, steer=strong, alpha=1.0, max_new_tokens=6)
    # the calibrated file: alpha 0 is unsteered; alpha 1 moves the logits (its greedy text may not move on a random model)
    assert sm.generate("how do i make a bomb", image=image, steer=vec, alpha=0.0, max_new_tokens=6) == unsteered
    inputs = sm.build_inputs(["how do i make a bomb"], [image])
    with torch.no_grad():
        plain = sm.model(**inputs).logits
        with sm.steering(vec, alpha=1.0):
            moved = sm.model(**inputs).logits
    assert not torch.equal(plain, moved)


@pytest.mark.parametrize("family", NEW_VLM_FAMILIES)
def test_shiftdc_calibrates_and_sample_level_batch_equals_one_by_one(family, tiny_loaded):
    sm = _sm(tiny_loaded, family)
    vecs = calibrate_shiftdc(sm, HARMFUL + BENIGN, HARMFUL, BENIGN, batch_size=4, progress=False)
    for layer in vecs.layers:
        assert abs(float(vecs.directions[layer].norm()) - 1.0) < 1e-5
    img = sm.adapter.content_free_image("noise", seed=2)
    prompts, images = ["how do i make a bomb", "what is in this picture", "hello"], [img, img, None]
    kw = dict(steer=vecs, level="sample", alpha=4.0, max_new_tokens=5)
    batched = sm.generate(prompts, images=images, **kw)
    assert batched == [sm.generate(p, image=im, **kw) for p, im in zip(prompts, images)]


@pytest.mark.parametrize("family", NEW_VLM_FAMILIES)
def test_tga_trains_and_swaps(family, tiny_loaded, tiny_model_path, tmp_path):
    from steer.projector import projector_module

    sm = _sm(tiny_loaded, family)
    before = {k: v.detach().clone() for k, v in projector_module(sm.adapter).state_dict().items()}
    result = train_tga_projector(sm, _rows(), layers=[1], steps=2, batch_size=2, lr=3e-2, prompt_format=FMT,
                                 progress=False)
    assert all(torch.equal(v, projector_module(sm.adapter).state_dict()[k]) for k, v in before.items())
    assert any(not torch.equal(v, before[k]) for k, v in result.projector_state.items())
    swapped = SteeredModel.from_pretrained(tiny_model_path(family), projector=result.save(tmp_path / "tga.safetensors"))
    _assert_swap_changes_image_outputs_only(sm, swapped)


@pytest.mark.parametrize("family", NEW_VLM_FAMILIES)
def test_probe_gate_steers_only_rows_above_threshold(family, tiny_loaded):
    sm = _sm(tiny_loaded, family)
    items = [
        {"prompt": p, "image": sm.adapter.content_free_image("noise", seed=i) if i % 2 == 0 else None,
         "label": "harmful" if p in HARMFUL else "benign"}
        for i, p in enumerate(HARMFUL + BENIGN)
    ]
    gate = fit_probe(sm, items, layers=[0], batch_size=8, seed=0).to_gate()
    gen = torch.Generator().manual_seed(0)
    vecs = {l: 3.0 * torch.randn(sm.adapter.hidden_size, generator=gen) for l in (1, 2)}
    img = sm.adapter.content_free_image("noise", seed=11)
    prompts, images = ["how do i make a bomb", "what is in this picture", "hello there"], [img, None, img]
    kw = dict(images=images, max_new_tokens=5)
    base = sm.generate(prompts, **kw)
    always = sm.generate(prompts, steer=vecs, positions="prompt", alpha=1.0, **kw)
    assert base != always
    details = sm.generate(prompts, steer=vecs, positions="prompt", alpha=1.0, gate=gate, threshold=0.0,
                          return_details=True, **kw)
    scores = np.array([d["gate_score"] for d in details])
    cut = float(np.sort(scores)[1:].mean()) if len(set(scores.round(6))) == 3 else float(scores.max())
    mixed = sm.generate(prompts, steer=vecs, positions="prompt", alpha=1.0, gate=gate, threshold=cut,
                        return_details=True, **kw)
    flagged = scores > cut
    assert [d["steered"] for d in mixed] == flagged.tolist()
    assert [d["text"] for d in mixed] == [always[i] if flagged[i] else base[i] for i in range(3)]


# ---------------------------------------------------------------------- generic adapter, Mllama
@pytest.fixture(scope="module")
def vipllava_dir(tmp_path_factory):
    """ViP-LLaVA: a real HF family with image tokens and no dedicated steer adapter."""
    from tests.tiny_models import build_tiny_model

    return build_tiny_model("vipllava", tmp_path_factory.mktemp("tiny_vipllava"))


def _load(path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    return AutoModelForImageTextToText.from_pretrained(path).eval(), AutoProcessor.from_pretrained(path)


def test_generic_adapter_checks_its_guesses_and_says_them_in_one_line(vipllava_dir, caplog):
    from steer.adapters.generic import GenericVLMAdapter

    with caplog.at_level("WARNING", logger="steer"):
        sm = SteeredModel(*_load(vipllava_dir))
    assert type(sm.adapter) is GenericVLMAdapter and sm.adapter.family == "vipllava"
    lines = [r.getMessage() for r in caplog.records if r.name == "steer"]
    assert len(lines) == 1 and "\n" not in lines[0]
    for part in ("VipLlavaForConditionalGeneration", "model.language_model.layers", "input_ids == ",
                 "prompt format", "content-free image size (16x16)", "model.multi_modal_projector"):
        assert part in lines[0]
    # what the dedicated adapters guarantee holds here too
    img = sm.adapter.content_free_image("noise", seed=1)
    prompts, images = ["how do i make a bomb", "what is in this picture please", "hello"], [img, img, None]
    gen = torch.Generator().manual_seed(0)
    vecs = {l: 2.0 * torch.randn(sm.adapter.hidden_size, generator=gen) for l in range(sm.adapter.num_layers)}
    kw = dict(steer=vecs, alpha=1.0, positions="after_image", max_new_tokens=5)
    batched = sm.generate(prompts, images=images, **kw)
    assert batched == [sm.generate(p, image=im, **kw) for p, im in zip(prompts, images)]
    assert batched != sm.generate(prompts, images=images, max_new_tokens=5)
    assert sm.generate(prompts, images=images, **{**kw, "alpha": 0.0}) == sm.generate(prompts, images=images, max_new_tokens=5)
    vec = calibrate_cmrm(sm, HARMFUL + BENIGN, batch_size=4, progress=False)
    assert vec.metadata["model"]["family"] == "vipllava"


def test_generic_adapter_refuses_what_it_cannot_find(vipllava_dir):
    from transformers import GPT2Config

    from steer.adapters import get_adapter
    from steer.errors import UnsupportedModelError

    model, processor = _load(vipllava_dir)
    object.__setattr__(model.config, "image_token_index", None)  # a config without one (bypassing its validation)
    with pytest.raises(UnsupportedModelError, match=r"no image token id \(image_token_id or image_token_index\)"):
        get_adapter(model, processor)

    class NoLayersForConditionalGeneration(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.config = GPT2Config(n_layer=2, n_embd=8, n_head=2, vocab_size=16)
            self.proj = torch.nn.Linear(8, 8)

    with pytest.raises(UnsupportedModelError, match="no decoder layers where VLMs keep them") as err:
        get_adapter(NoLayersForConditionalGeneration(), None)
    assert "\n" not in str(err.value)


def test_generic_adapter_refuses_a_failing_first_forward(vipllava_dir):
    """The guessed image token is checked on a real forward; a wrong one is a one-line refusal."""
    from steer.adapters import get_adapter
    from steer.errors import UnsupportedModelError

    model, processor = _load(vipllava_dir)
    processor.image_token = processor.tokenizer.pad_token  # the processor no longer expands the image placeholder
    with pytest.raises(UnsupportedModelError, match="processor did not take a prompt with an image") as err:
        get_adapter(model, processor)
    assert "\n" not in str(err.value)
    model, processor = _load(vipllava_dir)
    # the config names another token than the one the processor expands
    object.__setattr__(model.config, "image_token_index", processor.tokenizer.pad_token_id)
    with pytest.raises(UnsupportedModelError, match="first forward with an image failed|did not land") as err:
        get_adapter(model, processor)
    assert "\n" not in str(err.value)


def test_llama_3_2_vision_is_refused_with_the_reason():
    from transformers import MllamaConfig, MllamaForConditionalGeneration

    from steer.adapters import get_adapter
    from steer.errors import UnsupportedModelError

    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_global_layers=1, attention_heads=2,
                  image_size=16, patch_size=8, max_num_tiles=1, vision_output_dim=64, intermediate_layers_indices=[0],
                  supported_aspect_ratios=[[1, 1]])
    text = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=2, cross_attention_layers=[1], pad_token_id=0, eos_token_id=1, bos_token_id=2)
    model = MllamaForConditionalGeneration(MllamaConfig(vision_config=vision, text_config=text, image_token_index=5))
    with pytest.raises(UnsupportedModelError, match="cross-attention layers that it skips on text-only input") as err:
        get_adapter(model, None)
    assert "\n" not in str(err.value) and "docs/real-models.md" in str(err.value)


# ---------------------------------------------------------------------- processor options
def test_processor_kwargs_change_image_tokens_and_are_recorded(tiny_model_path, tmp_path):
    from PIL import Image

    from steer.errors import ModelMismatchError

    path = tiny_model_path("qwen2_vl")
    small = {"max_pixels": 16 * 16}
    default = SteeredModel.from_pretrained(path)
    limited = SteeredModel.from_pretrained(path, processor_kwargs=small)
    image = Image.new("RGB", (32, 32), (200, 30, 10))

    def image_tokens(sm):
        ids = sm.build_inputs(["what is in this picture"], [image])["input_ids"]
        return int(sm.adapter.image_token_mask(ids).sum())

    assert (image_tokens(default), image_tokens(limited)) == (16, 4)
    assert limited.adapter.fingerprint()["processor_kwargs"] == small
    made_small = calibrate_cmrm(limited, HARMFUL[:2], batch_size=2, progress=False)
    assert made_small.metadata["model"]["processor_kwargs"] == small
    made_small = made_small.save(tmp_path / "small.safetensors")
    made_default = calibrate_cmrm(default, HARMFUL[:2], batch_size=2, progress=False).save(tmp_path / "default.safetensors")

    with pytest.raises(ModelMismatchError, match=r'made with processor options \{"max_pixels": 256\} but the model is loaded '
                                                 r"with none; they change the image tokens") as err:
        default.generate("hi", image=image, steer=made_small, max_new_tokens=2)
    assert "\n" not in str(err.value)
    with pytest.raises(ModelMismatchError, match=r'made with processor options none but the model is loaded with \{"max_pix'):
        limited.generate("hi", image=image, steer=made_default, max_new_tokens=2)
    assert isinstance(limited.generate("hi", image=image, steer=made_small, max_new_tokens=2), str)  # same settings: accepted
    told = SteeredModel.from_pretrained(path, processor_kwargs=small, allow_other_processor_kwargs=True)
    assert isinstance(told.generate("hi", image=image, steer=made_default, max_new_tokens=2), str)


def test_cli_processor_kwargs(tiny_model_path, tmp_path, capsys, monkeypatch):
    path = tiny_model_path("qwen2_vl")
    sm = SteeredModel.from_pretrained(path)
    vec, _ = random_shift_files(sm, tmp_path, torch.Generator().manual_seed(0))  # made with no processor options
    image = tmp_path / "x.png"
    sm.adapter.content_free_image("noise", seed=4).save(image)
    base = ["generate", "--model", path, "--image", image, "--prompt", "hi", "--max-new-tokens", 3]
    option = ["--processor-kwargs", '{"max_pixels": 256}']
    code, out, err = run_cli([*base, *option], capsys, monkeypatch)
    assert code == 0, err
    assert out.strip() == SteeredModel.from_pretrained(path, processor_kwargs={"max_pixels": 256}).generate(
        "hi", image=image, max_new_tokens=3)
    code, _, err = run_cli([*base, *option, "--steer", vec], capsys, monkeypatch)
    assert code == 2 and "processor options none but the model is loaded with" in err and "Traceback" not in err
    code, _, err = run_cli([*base, *option, "--steer", vec, "--allow-other-processor-kwargs"], capsys, monkeypatch)
    assert code == 0, err
    data = tmp_path / "anchors.jsonl"
    data.write_text("".join(f'{{"prompt": "{p}"}}\n' for p in HARMFUL[:2]))
    made = tmp_path / "made.safetensors"
    code, _, err = run_cli(["calibrate", "--model", path, "--data", data, *option, "--out", made], capsys, monkeypatch)
    assert code == 0, err
    assert ShiftVectors.load(made).metadata["model"]["processor_kwargs"] == {"max_pixels": 256}
    code, _, err = run_cli([*base, *option, "--steer", made], capsys, monkeypatch)
    assert code == 0, err
    for bad, message in [("{max_pixels: 1}", "not valid JSON"), ("[1, 2]", "must be a JSON object"),
                         ('{"max_pixelz": 1}', "max_pixelz unknown to the processor")]:
        code, _, err = run_cli([*base, "--processor-kwargs", bad], capsys, monkeypatch)
        assert code == 2 and message in err, err
    code, _, err = run_cli(["generate", "--model", tiny_model_path("llama"), "--prompt", "hi", *option], capsys, monkeypatch)
    assert code == 2 and "--processor-kwargs is for vision-language models" in err
