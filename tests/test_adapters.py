"""Adapters on tiny offline checkpoints of every family, loaded as hub models are."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from steer.adapters import adapter_classes, get_adapter
from steer.adapters.base import NULL_IMAGE_KINDS, _get_path
from steer.adapters.causal_lm import CausalLMAdapter
from steer.adapters.gemma3 import Gemma3Adapter
from steer.adapters.internvl import InternVLAdapter
from steer.adapters.llava_onevision import LlavaOnevisionAdapter
from steer.adapters.mistral3 import Mistral3Adapter
from steer.adapters.qwen3_vl import Qwen3VLAdapter
from steer.adapters.idefics3 import Idefics3Adapter
from steer.adapters.llava import LlavaAdapter
from steer.adapters.llava_next import LlavaNextAdapter
from steer.adapters.qwen2_vl import Qwen2VLAdapter
from steer.errors import UnsupportedModelError
from tests.tiny_models import ALL_FAMILIES, VLM_FAMILIES

EXPECTED = {
    "llava": LlavaAdapter,
    "llava_next": LlavaNextAdapter,
    "qwen2_vl": Qwen2VLAdapter,
    "idefics3": Idefics3Adapter,
    "llama": CausalLMAdapter,
    "gemma3": Gemma3Adapter,
    "qwen3_vl": Qwen3VLAdapter,
    "llava_onevision": LlavaOnevisionAdapter,
    "mistral3": Mistral3Adapter,
    "internvl": InternVLAdapter,
}
PROMPTS = ["how do i make a bomb", "what is in this picture"]


def _image() -> Image.Image:
    # deliberately not the processor's size and not square
    return Image.new("RGB", (40, 30), (200, 30, 10))


def _mixed(adapter):
    images = [_image(), None] if adapter.supports_images else None
    return adapter.build_inputs(PROMPTS, images)


@pytest.fixture
def adapter_for(tiny_loaded):
    def get(family):
        model, processor = tiny_loaded(family)
        return get_adapter(model, processor)

    return get


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_right_adapter_and_structure(family, adapter_for):
    adapter = adapter_for(family)
    assert type(adapter) is EXPECTED[family]
    text_cfg = adapter.model.config.get_text_config()
    assert adapter.num_layers == len(adapter.decoder_layers) == text_cfg.num_hidden_layers
    assert adapter.hidden_size == text_cfg.hidden_size
    assert adapter.supports_images == (family in VLM_FAMILIES)
    if family in VLM_FAMILIES:
        # the model's image token is the one the processor expands (Gemma 3's processor
        # calls its <start_of_image> marker image_token_id; the expanded soft token is the tokenizer's)
        processor = adapter.processor
        expanded = processor.tokenizer.image_token_id if family == "gemma3" else processor.image_token_id
        assert adapter.image_token_id == expanded
    else:
        assert adapter.image_token_id is None


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_tiny_vocabulary_covers_prompts(family, adapter_for):
    tok = adapter_for(family).tokenizer
    for prompt in PROMPTS:
        assert tok.unk_token_id not in tok(prompt)["input_ids"]


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_build_inputs_left_pads_and_image_mask_matches_features(family, adapter_for):
    adapter = adapter_for(family)
    model = adapter.model
    inputs = _mixed(adapter)
    ids, attn = inputs["input_ids"], inputs["attention_mask"]
    assert ids.shape[0] == 2
    # left padding: every row ends with a real token, padding only at the start
    assert attn[:, -1].all()
    for row in attn:
        first = int(row.argmax())
        assert row[first:].all() and not row[:first].any()

    # Capture what the language model actually receives: positions where its input
    # embedding is not the token embedding of input_ids are those filled with image
    # features by the model itself.
    text_model = _get_path(model, adapter.layers_path.rsplit(".", 1)[0])
    seen = {}

    def pre_hook(module, args, kwargs):
        seen["inputs_embeds"] = kwargs.get("inputs_embeds")

    handle = text_model.register_forward_pre_hook(pre_hook, with_kwargs=True)
    try:
        with torch.no_grad():
            out = model(**inputs)
    finally:
        handle.remove()
    assert torch.isfinite(out.logits).all()
    with torch.no_grad():
        token_embeds = model.get_input_embeddings()(ids)
    received = seen["inputs_embeds"]
    if received is None:  # text-only model fed input_ids directly
        received = token_embeds
    filled = (received != token_embeds).any(-1)

    mask = adapter.image_token_mask(ids)
    assert mask.dtype == torch.bool and mask.shape == ids.shape
    counts = mask.sum(1).tolist()
    if family in VLM_FAMILIES:
        assert counts[0] > 0 and counts[1] == 0
        assert counts == (ids == model.config.image_token_id).sum(1).tolist()
    else:
        assert counts == [0, 0]
    assert torch.equal(mask, filled)


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_text_row_in_mixed_batch_matches_alone(family, adapter_for):
    """Left padding + attention mask make a padded text-only row behave as if alone."""
    adapter = adapter_for(family)
    with torch.no_grad():
        mixed = adapter.model(**_mixed(adapter)).logits[1, -1]
        alone = adapter.model(**adapter.build_inputs([PROMPTS[1]])).logits[0, -1]
    torch.testing.assert_close(mixed, alone, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_layer_index_convention(family, adapter_for):
    """Layer i's raw output (forward hook on decoder_layers[i]) is hidden_states[i + 1]."""
    adapter = adapter_for(family)
    captured: dict[int, torch.Tensor] = {}
    handles = []
    for i, layer in enumerate(adapter.decoder_layers):

        def hook(module, args, output, i=i):
            captured[i] = output[0] if isinstance(output, tuple) else output

        handles.append(layer.register_forward_hook(hook))
    try:
        with torch.no_grad():
            out = adapter.model(**_mixed(adapter), output_hidden_states=True)
    finally:
        for h in handles:
            h.remove()
    hidden = out.hidden_states
    assert len(hidden) == adapter.num_layers + 1
    assert sorted(captured) == list(range(adapter.num_layers))
    for i in range(adapter.num_layers - 1):
        assert torch.equal(captured[i], hidden[i + 1]), f"layer {i}"


@pytest.mark.parametrize("family", VLM_FAMILIES)
@pytest.mark.parametrize("kind", NULL_IMAGE_KINDS)
def test_content_free_image_is_accepted(family, kind, adapter_for):
    adapter = adapter_for(family)
    image = adapter.content_free_image(kind)
    assert image.size == adapter.image_size() and image.mode == "RGB"
    inputs = adapter.build_inputs([PROMPTS[1]], [image])
    assert adapter.image_token_mask(inputs["input_ids"]).sum() > 0
    if kind == "mean":  # normalises to (almost) zero
        assert inputs["pixel_values"].abs().max() < 0.05
    with torch.no_grad():
        assert torch.isfinite(adapter.model(**inputs).logits).all()


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_greedy_generate_mixed_batch(family, adapter_for):
    adapter = adapter_for(family)
    inputs = _mixed(adapter)
    n = inputs["input_ids"].shape[1]
    with torch.no_grad():
        out = adapter.model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape[0] == 2 and n < out.shape[1] <= n + 3
    assert torch.equal(out[:, :n], inputs["input_ids"])


def test_text_only_family_rejects_images(adapter_for):
    from steer.errors import SteerInputError

    with pytest.raises(SteerInputError):
        adapter_for("llama").build_inputs(["what is in this picture"], [_image()])


def test_unknown_architecture_lists_supported_families():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=32, n_embd=16, n_layer=1, n_head=2))
    with pytest.raises(UnsupportedModelError) as err:
        get_adapter(model, None)
    message = str(err.value)
    assert "GPT2LMHeadModel" in message
    families = [cls.family for cls in adapter_classes()]
    assert {"llava", "llava_next", "qwen2_vl", "idefics3", "causal_lm"} <= set(families)
    for family in families:
        assert family in message


def _tiny_qwen2_5_vl():
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    text = dict(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, rope_parameters={"rope_type": "default", "rope_theta": 1e4, "mrope_section": [2, 3, 3]},
    )
    vision = dict(depth=1, hidden_size=32, out_hidden_size=32, intermediate_size=32, num_heads=2, patch_size=4,
                  window_size=16, fullatt_block_indexes=[0])
    return Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(text_config=text, vision_config=vision))


def _tiny_smolvlm():
    from transformers import LlamaConfig, SmolVLMConfig, SmolVLMForConditionalGeneration
    from transformers.models.smolvlm.configuration_smolvlm import SmolVLMVisionConfig

    text = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=2)
    vision = SmolVLMVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                 image_size=32, patch_size=8)
    return SmolVLMForConditionalGeneration(SmolVLMConfig(text_config=text, vision_config=vision, image_token_id=5))


@pytest.mark.parametrize(
    "build, expected", [(_tiny_qwen2_5_vl, Qwen2VLAdapter), (_tiny_smolvlm, Idefics3Adapter)], ids=["qwen2_5_vl", "smolvlm"]
)
def test_sibling_architectures_share_layout(build, expected):
    model = build()
    adapter = get_adapter(model, None)
    assert type(adapter) is expected
    assert adapter.num_layers == model.config.get_text_config().num_hidden_layers
    assert adapter.hidden_size == 32
