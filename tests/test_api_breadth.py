"""The Python API as a steering-vectors / repeng / nnsight user tries it: HF generation
options with steering intact, chat messages wherever a prompt is taken, from_pretrained
pass-through options, and readable reprs."""

from __future__ import annotations

import pytest
import torch

from steer import SteeredModel, ShiftVectors
from steer.errors import SteerInputError
from tests.tiny_models import VLM_FAMILIES


def _sm(tiny_loaded, family: str = "llava") -> SteeredModel:
    return SteeredModel(*tiny_loaded(family))


def _vectors(sm: SteeredModel, scale: float = 3.0) -> ShiftVectors:
    gen = torch.Generator().manual_seed(0)
    shifts = {l: scale * torch.randn(sm.adapter.hidden_size, generator=gen) for l in range(sm.adapter.num_layers)}
    return ShiftVectors(shifts, None, {"method": "cmrm", "model": sm.adapter.fingerprint(), "positions": "all"})


# ---------------------------------------------------------------------------- generation options
@pytest.mark.parametrize("family", ["llava", "llama"])
def test_sampled_steered_generation_equals_a_manual_hook_run(tiny_loaded, family):
    sm = _sm(tiny_loaded, family)
    vecs = _vectors(sm)
    image = sm.adapter.content_free_image("noise", seed=1) if sm.adapter.supports_images else None
    opts = dict(do_sample=True, temperature=1.7, top_p=0.95, max_new_tokens=12)
    ours = sm.generate("how do i make a bomb", image=image, steer=vecs, seed=3, **opts)

    inputs = sm.build_inputs(["how do i make a bomb"], [image])
    torch.manual_seed(3)
    with sm.steering(vecs) as st, st.prompt(inputs["input_ids"], inputs.get("attention_mask")):
        out = sm.model.generate(**inputs, **opts)
    manual = sm.adapter.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert ours == manual
    # the steering changes the sampled answer for the same seed (so the equality above means something)
    assert sm.generate("how do i make a bomb", image=image, seed=3, **opts) != ours


def test_nnsight_backend_samples_the_same_steered_answer(tiny_loaded):
    pytest.importorskip("nnsight")
    model, processor = tiny_loaded("llava")
    native, traced = SteeredModel(model, processor), SteeredModel(model, processor, backend="nnsight")
    vecs = _vectors(native)
    image = native.adapter.content_free_image("noise", seed=1)
    opts = dict(steer=vecs, do_sample=True, temperature=1.7, seed=5, max_new_tokens=8)
    assert traced.generate("how do i make a bomb", image=image, **opts) == native.generate("how do i make a bomb", image=image, **opts)


def test_alpha_zero_sampling_equals_unsteered_sampling(tiny_loaded):
    sm = _sm(tiny_loaded)
    image = sm.adapter.content_free_image("noise", seed=1)
    opts = dict(do_sample=True, temperature=1.5, max_new_tokens=10, seed=11)
    prompts = ["how do i make a bomb", "what is in this picture"]
    plain = sm.generate(prompts, image=image, **opts)
    assert sm.generate(prompts, image=image, steer=_vectors(sm), alpha=0.0, **opts) == plain
    assert sm.generate(prompts, image=image, **opts) == plain  # the seed makes it repeatable


def test_greedy_default_unchanged_and_stopping_criteria_pass_through(tiny_loaded):
    from transformers import StoppingCriteria, StoppingCriteriaList

    sm = _sm(tiny_loaded)
    vecs = _vectors(sm)
    greedy = sm.generate("how do i make a bomb", steer=vecs, max_new_tokens=8)
    assert sm.generate("how do i make a bomb", steer=vecs, max_new_tokens=8, do_sample=False) == greedy

    class StopAfter(StoppingCriteria):
        def __init__(self, n: int):
            self.n, self.calls = n, 0

        def __call__(self, input_ids, scores, **kwargs):
            self.calls += 1
            return torch.full((input_ids.shape[0],), self.calls >= self.n, dtype=torch.bool)

    stop = StopAfter(3)
    short = sm.generate("how do i make a bomb", steer=vecs, max_new_tokens=8, stopping_criteria=StoppingCriteriaList([stop]))
    assert stop.calls == 3
    assert len(sm.adapter.tokenizer.tokenize(short)) <= 3
    assert greedy.startswith(short)  # same steered tokens, cut early


def test_bad_generation_options_are_clear_errors(tiny_loaded):
    sm = _sm(tiny_loaded)
    with pytest.raises(SteerInputError, match="do_sample=True"):
        sm.generate("hi", temperature=0.7)
    with pytest.raises(SteerInputError, match="num_return_sequences"):
        sm.generate("hi", do_sample=True, num_return_sequences=2)
    with pytest.raises(SteerInputError, match="num_beams"):
        sm.generate("hi", steer=_vectors(sm), num_beams=2)
    with pytest.raises(SteerInputError, match="input_ids"):
        sm.generate("hi", input_ids=torch.ones(1, 2, dtype=torch.long))


def test_row_changing_options_inside_a_generation_config_are_refused_too(tiny_loaded):
    """num_return_sequences / num_beams / return_dict_in_generate given through generation_config
    passed the check: 2 prompts came back as 4 answers (each prompt's answers no longer one per row),
    and beam search under steering failed inside the forward with a batch-size error."""
    from transformers import GenerationConfig

    sm = _sm(tiny_loaded)
    prompts = ["hi", "how do i make a bomb"]
    with pytest.raises(SteerInputError, match="num_return_sequences"):
        sm.generate(prompts, generation_config=GenerationConfig(num_beams=2, num_return_sequences=2), max_new_tokens=3)
    with pytest.raises(SteerInputError, match="return_dict_in_generate"):
        sm.generate(prompts, generation_config=GenerationConfig(return_dict_in_generate=True), max_new_tokens=3)
    with pytest.raises(SteerInputError, match="num_beams"):
        sm.generate(prompts, steer=_vectors(sm), generation_config=GenerationConfig(num_beams=2), max_new_tokens=3)
    # unsteered beam search stays allowed; an explicit option overrides the config's
    assert len(sm.generate(prompts, generation_config=GenerationConfig(num_beams=2), max_new_tokens=3)) == 2
    assert len(sm.generate(prompts, generation_config=GenerationConfig(num_beams=2, num_return_sequences=2),
                           num_return_sequences=1, max_new_tokens=3)) == 2


def test_batch_size_must_be_a_whole_number_of_one_or_more(tiny_loaded):
    """batch_size=-1 returned no answers at all for two prompts (a negative range step), and an
    empty prompt list crashed in range(); a bad batch_size is a clear error, no prompts give no answers."""
    sm = _sm(tiny_loaded)
    for bad in (-1, 0, 1.5, "2", True):
        with pytest.raises(SteerInputError, match="batch_size"):
            sm.generate(["hi", "hello"], batch_size=bad, max_new_tokens=2)
    assert sm.generate([], max_new_tokens=2) == []
    assert sm.generate(["hi", "hello"], batch_size=1, max_new_tokens=2) == sm.generate(["hi", "hello"], max_new_tokens=2)


# ---------------------------------------------------------------------------- chat messages
@pytest.mark.parametrize("family", VLM_FAMILIES)
def test_chat_messages_equal_the_plain_prompt(tiny_loaded, family):
    sm = _sm(tiny_loaded, family)
    image = sm.adapter.content_free_image("noise", seed=2)
    vecs = _vectors(sm)
    plain = sm.generate("what is in this picture", image=image, steer=vecs, max_new_tokens=6)
    as_string = [{"role": "user", "content": "what is in this picture"}]
    with_part = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "what is in this picture"}]}]
    assert sm.generate(as_string, image=image, steer=vecs, max_new_tokens=6) == plain
    assert sm.generate(with_part, steer=vecs, max_new_tokens=6) == plain
    a = sm.build_inputs(["what is in this picture"], [image])
    b = sm.build_inputs([with_part])
    assert torch.equal(a["input_ids"], b["input_ids"])
    assert torch.equal(a["pixel_values"], b["pixel_values"])


def test_system_prompt_and_turns_reach_the_template(tiny_loaded):
    sm = _sm(tiny_loaded, "qwen2_vl")
    conversation = [
        {"role": "system", "content": "you are a safe assistant"},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": "what is in this picture"},
    ]
    image = sm.adapter.content_free_image("noise", seed=2)
    text = sm.adapter.format_prompt(conversation, with_image=True)
    assert text.startswith("<|im_start|>system\nyou are a safe assistant<|im_end|>")
    # the picture goes into the last user turn, as for a plain prompt
    assert text.endswith("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>what is in this picture<|im_end|>\n<|im_start|>assistant\n")
    batch = sm.generate([conversation, "what is in this picture"], images=[image, image], max_new_tokens=5)
    assert len(batch) == 2
    assert batch[0] == sm.generate(conversation, image=image, max_new_tokens=5)  # batched == one by one
    assert batch[0] != batch[1]  # the system prompt and earlier turns were read


def test_text_only_model_takes_a_system_prompt(tiny_loaded):
    sm = _sm(tiny_loaded, "llama")
    conversation = [{"role": "system", "content": "be brief"}, {"role": "user", "content": [{"type": "text", "text": "hello"}]}]
    assert sm.adapter.format_prompt(conversation, with_image=False) == "<s>System: be brief\nUser: hello\nAssistant:"
    assert isinstance(sm.generate(conversation, max_new_tokens=4), str)


def test_sample_level_steering_takes_conversations(tiny_loaded):
    sm = _sm(tiny_loaded, "llava")
    image = sm.adapter.content_free_image("noise", seed=2)
    conversation = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "how do i make a bomb"}]}]
    assert sm.generate(conversation, steer="sample", max_new_tokens=5) == sm.generate(
        "how do i make a bomb", image=image, steer="sample", max_new_tokens=5
    )


def test_bad_conversations_are_clear_errors(tiny_loaded):
    sm = _sm(tiny_loaded, "llava")
    image = sm.adapter.content_free_image("noise", seed=2)
    two = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "image", "image": image}, {"type": "text", "text": "hi"}]}]
    with pytest.raises(SteerInputError, match="2 images"):
        sm.generate(two)
    with pytest.raises(SteerInputError, match="no picture"):
        sm.generate([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}])
    with pytest.raises(SteerInputError, match="another was given"):
        sm.generate([{"role": "user", "content": [{"type": "image", "image": image}]}], image=image)
    with pytest.raises(SteerInputError, match="no 'role'"):
        sm.generate([{"role": "user", "content": "hi"}, {"content": "x"}])
    with pytest.raises(SteerInputError, match="parts must be"):
        sm.generate([{"role": "user", "content": [{"type": "video"}]}])


# ---------------------------------------------------------------------------- from_pretrained
def test_from_pretrained_passes_model_kwargs(tiny_model_path):
    path = tiny_model_path("llava")
    sm = SteeredModel.from_pretrained(path, attn_implementation="eager", output_hidden_states=True)
    assert sm.model.config._attn_implementation == "eager"
    assert sm.model.config.output_hidden_states is True
    assert "attn=eager" in repr(sm)
    sdpa = SteeredModel.from_pretrained(path, attn_implementation="sdpa", torch_dtype="bfloat16")
    assert sdpa.model.config._attn_implementation == "sdpa"
    assert next(sdpa.model.parameters()).dtype == torch.bfloat16


def test_hub_options_reach_config_model_and_processor(tiny_model_path, monkeypatch):
    import transformers

    seen: dict[str, dict] = {}
    for cls in ("AutoConfig", "AutoProcessor", "AutoModelForImageTextToText"):
        owner = getattr(transformers, cls)
        original = owner.from_pretrained.__func__

        def spy(klass, *args, _name=cls, _orig=original, **kwargs):
            seen[_name] = kwargs
            return _orig(klass, *args, **kwargs)

        monkeypatch.setattr(owner, "from_pretrained", classmethod(spy))
    SteeredModel.from_pretrained(
        tiny_model_path("llava"), revision="main", trust_remote_code=False, attn_implementation="eager",
        processor_kwargs={"use_fast": True},
    )
    for name in seen:
        assert seen[name]["revision"] == "main" and seen[name]["trust_remote_code"] is False, name
    assert seen["AutoModelForImageTextToText"]["attn_implementation"] == "eager"
    assert "attn_implementation" not in seen["AutoProcessor"] and seen["AutoProcessor"]["use_fast"] is True


def test_quantization_without_bitsandbytes_is_a_clear_error(tiny_model_path):
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is not None:
        pytest.skip("bitsandbytes is installed here")
    with pytest.raises(SteerInputError, match="pip install bitsandbytes"):
        SteeredModel.from_pretrained(tiny_model_path("llama"), quantization_config={"quant_method": "bitsandbytes", "load_in_4bit": True})
    with pytest.raises(SteerInputError, match="not both"):
        SteeredModel.from_pretrained(tiny_model_path("llama"), dtype="float32", torch_dtype="float32")


# ---------------------------------------------------------------------------- repr
def test_reprs_say_what_is_loaded(tiny_loaded, tmp_path):
    sm = _sm(tiny_loaded, "llava")
    text = repr(sm)
    a = sm.adapter
    for part in ("SteeredModel(", "family=llava", f"layers={a.num_layers}", f"hidden_size={a.hidden_size}", "float32 on cpu", "backend=native"):
        assert part in text
    vecs = _vectors(sm)
    path = vecs.save(tmp_path / "v.safetensors")
    shown = repr(ShiftVectors.load(path))
    for part in ("ShiftVectors(", "method=cmrm", f"layers=0-{a.num_layers - 1}", f"hidden_size={a.hidden_size}", "positions=all", "model="):
        assert part in shown, (part, shown)
