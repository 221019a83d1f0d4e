"""Tiny random-weight models of every supported family, built offline from configs.

``build_tiny_model(family, out_dir)`` writes a checkpoint directory that loads exactly
like a hub model: ``AutoModelForImageTextToText`` + ``AutoProcessor`` for the VLMs,
``AutoModelForCausalLM`` + ``AutoTokenizer`` for ``"llama"``. Each uses the family's real
processor class, a word-level tokenizer over a few hundred plain English words (plus the
family's special tokens) and a chat template in the family's style. Weights are float32
from a fixed seed; building all five takes a few seconds on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

#: families with a dedicated adapter and a tiny checkpoint here (the 2026 additions last)
NEW_VLM_FAMILIES = ("gemma3", "qwen3_vl", "llava_onevision", "mistral3", "internvl")
VLM_FAMILIES = ("llava", "llava_next", "qwen2_vl", "idefics3") + NEW_VLM_FAMILIES
ALL_FAMILIES = VLM_FAMILIES + ("llama",)

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"

# Plain words: enough for the prompts the tests (and harmful/benign example sets) use.
WORDS = """
a about above across after again against all almost alone along already also always am an
and another answer any anyone anything are area around as ask at away back bad be because
been before behind being below best better between big bird black blue boat body bomb book
both box boy bring brown build building but buy by call can car care cat change child city
clean close cold color come could count cup cut dangerous day did different do does dog
doing done door down draw drink drive drug during each easy eat end enough even ever every
everyone example explain eye face fact family far fast field find fire first fish five food
for four friend from front full game gave get girl give go good green gun hack hand happy
hard harm has hat have he head help her here high hill him his hold home horse hot house
how hurt i if illegal image in inside instructions into is it its just keep kill kind know
large last learn left let life light like list little live long look lot made make man many
may me mean money more most mother mountain move much must my name near need never new next
night no not nothing now number of off often old on one only open or other our out over
own page paper part people person photo picture place plan plant play please point poison
power read red right river road rock room round run safe same say see she shop should show
side sign simple sit sky small so some someone something sky sorry start step steal still
stop story street sun sure table take talk tell ten than thank that the their them then
there these they thing think this those three through time to today together too top town
tree true try two under up us use very view wall want was water way we weapon well went
were what when where which while white who why will window with without woman word work
world would write wrong year yellow yes you your
user assistant system inst
s t d m re ll ve
""".split()
PUNCT = list(".,?!:;'\"()[]/-#*")

# family -> (special tokens, template pieces)
_IMAGE_TOKENS = {
    "llava": ["<image>"],
    "llava_next": ["<image>"],
    "qwen2_vl": [
        "<|im_start|>",
        "<|im_end|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|image_pad|>",
        "<|video_pad|>",
    ],
    "idefics3": ["<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>"]
    + [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)],
    "llama": [],
    "gemma3": ["<start_of_image>", "<end_of_image>", "<image_soft_token>", "<start_of_turn>", "<end_of_turn>"],
    "llava_onevision": ["<image>", "<video>", "<|im_start|>", "<|im_end|>"],
    "mistral3": ["[IMG]", "[IMG_BREAK]", "[IMG_END]", "[INST]", "[/INST]"],
    "internvl": ["<img>", "</img>", "<IMG_CONTEXT>", "<video>", "<|im_start|>", "<|im_end|>"],
}
_IMAGE_TOKENS["qwen3_vl"] = _IMAGE_TOKENS["qwen2_vl"]
_IMAGE_TOKENS["vipllava"] = _IMAGE_TOKENS["llava"]

# Named special tokens the family's processor reads off the tokenizer (``tokenizer.boi_token``...).
_NAMED_TOKENS = {
    "gemma3": {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"},
    "internvl": {
        "start_image_token": "<img>",
        "end_image_token": "</img>",
        "context_image_token": "<IMG_CONTEXT>",
        "video_token": "<video>",
    },
}

# Words a family's chat template needs beyond WORDS (appended last, so the other families'
# vocabularies -- and hence their random weights -- stay as they were).
_EXTRA_WORDS = {"gemma3": ["model"]}

# Chat-template pieces per family: bos, {role: (prefix, suffix)}, image placeholder,
# generation prefix. Shapes follow the real hub templates of each family.
_TEMPLATES: dict = {
    "llava": (  # llava-hf/llava-1.5: "USER: <image>\nQ ASSISTANT:"
        "",
        {"user": ("USER: ", " "), "assistant": ("ASSISTANT: ", "</s> ")},
        "<image>\n",
        "ASSISTANT:",
    ),
    "llava_next": (  # llava-v1.6-mistral: "[INST] <image>\nQ [/INST]"
        "",
        {"user": ("[INST] ", " [/INST]"), "assistant": (" ", "</s>")},
        "<image>\n",
        "",
    ),
    "qwen2_vl": (
        "",
        {
            "user": ("<|im_start|>user\n", "<|im_end|>\n"),
            "assistant": ("<|im_start|>assistant\n", "<|im_end|>\n"),
            "system": ("<|im_start|>system\n", "<|im_end|>\n"),
        },
        "<|vision_start|><|image_pad|><|vision_end|>",
        "<|im_start|>assistant\n",
    ),
    "idefics3": (  # "<|begin_of_text|>User:<image>Q<end_of_utterance>\nAssistant:"
        "<s>",
        {"user": ("User:", "<end_of_utterance>\n"), "assistant": ("Assistant:", "<end_of_utterance>\n")},
        "<image>",
        "Assistant:",
    ),
    "gemma3": (  # "<bos><start_of_turn>user\n<start_of_image>Q<end_of_turn>\n<start_of_turn>model\n"
        "<s>",
        {"user": ("<start_of_turn>user\n", "<end_of_turn>\n"), "assistant": ("<start_of_turn>model\n", "<end_of_turn>\n")},
        "<start_of_image>",
        "<start_of_turn>model\n",
    ),
    "llava_onevision": (  # llava-onevision-qwen2: "<|im_start|>user <image>\nQ<|im_end|><|im_start|>assistant\n"
        "",
        {"user": ("<|im_start|>user ", "<|im_end|>"), "assistant": ("<|im_start|>assistant\n", "<|im_end|>")},
        "<image>\n",
        "<|im_start|>assistant\n",
    ),
    "mistral3": (  # Mistral-Small-3.1: "<s>[INST][IMG]Q[/INST]"
        "<s>",
        {"user": ("[INST]", "[/INST]"), "assistant": ("", "</s>")},
        "[IMG]",
        "",
    ),
    "internvl": (  # InternVL3-hf: "<|im_start|>user\n<IMG_CONTEXT>\nQ<|im_end|>\n<|im_start|>assistant\n"
        "",
        {"user": ("<|im_start|>user\n", "<|im_end|>\n"), "assistant": ("<|im_start|>assistant\n", "<|im_end|>\n")},
        "<IMG_CONTEXT>\n",
        "<|im_start|>assistant\n",
    ),
    "llama": (
        "<s>",
        {"user": ("User: ", "\n"), "assistant": ("Assistant: ", "</s>\n"), "system": ("System: ", "\n")},
        "",
        "Assistant:",
    ),
}
_TEMPLATES["qwen3_vl"] = _TEMPLATES["qwen2_vl"]
_TEMPLATES["vipllava"] = _TEMPLATES["llava"]


def _lit(s: str) -> str:
    """A jinja string literal."""
    return json.dumps(s)


def chat_template(family: str) -> str:
    bos, roles, image, gen = _TEMPLATES[family]
    parts = [f"{{{{ {_lit(bos)} }}}}{{% for message in messages %}}"]
    first = True
    for role, (prefix, _) in roles.items():
        kw = "if" if first else "elif"
        parts.append(f"{{% {kw} message['role'] == {_lit(role)} %}}{{{{ {_lit(prefix)} }}}}")
        first = False
    parts.append("{% else %}{{ message['role'] + ': ' }}{% endif %}")
    parts.append(
        "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
        "{% for item in message['content'] %}"
        f"{{% if item['type'] == 'image' %}}{{{{ {_lit(image)} }}}}"
        "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
        "{% endfor %}{% endif %}"
    )
    first = True
    for role, (_, suffix) in roles.items():
        kw = "if" if first else "elif"
        parts.append(f"{{% {kw} message['role'] == {_lit(role)} %}}{{{{ {_lit(suffix)} }}}}")
        first = False
    parts.append("{% else %}{{ '\\n' }}{% endif %}")
    parts.append(f"{{% endfor %}}{{% if add_generation_prompt %}}{{{{ {_lit(gen)} }}}}{{% endif %}}")
    return "".join(parts)


def build_tokenizer(family: str, padding_side: str = "right"):
    """A word-level ``PreTrainedTokenizerFast`` with the family's special tokens.

    Saved with right padding (as many hub tokenizers are), so that tests show that
    ``ModelAdapter.build_inputs`` left-pads by itself.
    """
    from tokenizers import AddedToken, Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = [PAD, BOS, EOS, UNK] + _IMAGE_TOKENS[family]
    vocab: dict[str, int] = {}
    for tok in specials + PUNCT + WORDS + _EXTRA_WORDS.get(family, []):
        vocab.setdefault(tok, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation(behavior="isolated")]
    )
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        padding_side=padding_side,
        extra_special_tokens=_NAMED_TOKENS.get(family, {}),
    )
    tok.chat_template = chat_template(family)
    return tok


def _text_config(tok, **kw) -> dict:
    """A 3-layer text-model config (hidden 32, 2 heads) in the tiny vocabulary, as a dict."""
    cfg = dict(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
    )
    cfg.update(kw)
    return cfg


def _llama_config(tok, **kw):
    from transformers import LlamaConfig

    return LlamaConfig(**_text_config(tok, **kw))


#: the vision-tower size every tiny VLM shares
TINY_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)


def _clip_vision_config(image_size: int, patch_size: int):
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(**TINY_VISION, image_size=image_size, patch_size=patch_size, projection_dim=32)


def llava_processor(tok, size: int, patch: int):
    """A LLaVA-1.5-style processor (CLS + one token per patch, square crop) over ``tok``;
    the tiny test model's and bench/calibration_overhead.py's larger one."""
    from transformers import CLIPImageProcessor, LlavaProcessor

    return LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size}),
        tokenizer=tok,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=chat_template("llava"),
    )


def _build_llava(tok):
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    size, patch = 16, 4
    processor = llava_processor(tok, size, patch)
    config = LlavaConfig(
        vision_config=_clip_vision_config(size, patch),
        text_config=_llama_config(tok),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    return LlavaForConditionalGeneration(config), processor


def _build_llava_next(tok):
    from transformers import (
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessor,
        LlavaNextProcessor,
    )

    size, patch = 16, 4
    pinpoints = [[16, 16], [16, 32], [32, 16], [32, 32]]
    image_processor = LlavaNextImageProcessor(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        image_grid_pinpoints=pinpoints,
    )
    processor = LlavaNextProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=chat_template("llava_next"),
    )
    config = LlavaNextConfig(
        vision_config=_clip_vision_config(size, patch),
        text_config=_llama_config(tok),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        image_grid_pinpoints=pinpoints,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    return LlavaNextForConditionalGeneration(config), processor


def _build_qwen2_vl(tok):
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    patch, merge, temporal = 4, 2, 2
    factor = patch * merge  # 8: images are resized to multiples of 8 px
    pixels = dict(min_pixels=(2 * factor) ** 2, max_pixels=(4 * factor) ** 2)  # 16x16 .. 32x32
    common = dict(patch_size=patch, merge_size=merge, temporal_patch_size=temporal, **pixels)
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(**common),
        tokenizer=tok,
        video_processor=Qwen2VLVideoProcessor(**common),
        chat_template=chat_template("qwen2_vl"),
    )
    hidden, heads = 32, 2
    head_dim = hidden // heads  # mrope sections sum to head_dim / 2
    text_config = dict(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=512,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    assert sum(text_config["rope_parameters"]["mrope_section"]) == head_dim // 2
    vision_config = dict(
        depth=2,
        embed_dim=32,
        hidden_size=hidden,
        mlp_ratio=2,
        num_heads=2,
        in_channels=3,
        patch_size=patch,
        spatial_merge_size=merge,
        temporal_patch_size=temporal,
    )
    config = Qwen2VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tok.convert_tokens_to_ids("<|vision_end|>"),
        tie_word_embeddings=False,
    )
    return Qwen2VLForConditionalGeneration(config), processor


def _build_idefics3(tok):
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
        Idefics3VisionConfig,
    )

    size, patch, scale = 32, 8, 2
    seq_len = (size // patch) ** 2 // scale**2  # 4 image tokens per image
    image_processor = Idefics3ImageProcessor(
        size={"longest_edge": size},
        max_image_size={"longest_edge": size},
        do_image_splitting=False,
    )
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tok,
        image_seq_len=seq_len,
        chat_template=chat_template("idefics3"),
    )
    config = Idefics3Config(
        vision_config=Idefics3VisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=size,
            patch_size=patch,
        ),
        text_config=_llama_config(tok),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        scale_factor=scale,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    return Idefics3ForConditionalGeneration(config), processor


def _qwen_text_config(tok, **kw) -> dict:
    """:func:`_text_config` ending turns with ``<|im_end|>``, as the Qwen-based families do."""
    return _text_config(tok, **{"eos_token_id": tok.convert_tokens_to_ids("<|im_end|>"), **kw})


def _siglip_vision_config(image_size: int, patch_size: int):
    from transformers import SiglipVisionConfig

    return SiglipVisionConfig(**TINY_VISION, image_size=image_size, patch_size=patch_size)


def _build_gemma3(tok):
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessor, Gemma3Processor

    size, patch, tokens = 16, 4, 4  # 4x4 patches pooled to 2x2 = 4 image tokens
    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessor(size={"height": size, "width": size}),
        tokenizer=tok,
        image_seq_length=tokens,
        chat_template=chat_template("gemma3"),
    )
    text_config = _text_config(
        tok,
        num_key_value_heads=1,
        head_dim=16,
        query_pre_attn_scalar=16,
        sliding_window=8,  # smaller than the prompts, so the sliding layers really slide
        layer_types=["sliding_attention", "full_attention", "sliding_attention"],
        eos_token_id=tok.convert_tokens_to_ids("<end_of_turn>"),
        tie_word_embeddings=True,  # as the hub Gemma 3
    )
    config = Gemma3Config(
        text_config=text_config,
        vision_config=_siglip_vision_config(size, patch),
        mm_tokens_per_image=tokens,
        boi_token_index=tok.convert_tokens_to_ids("<start_of_image>"),
        eoi_token_index=tok.convert_tokens_to_ids("<end_of_image>"),
        image_token_index=tok.convert_tokens_to_ids("<image_soft_token>"),
    )
    return Gemma3ForConditionalGeneration(config), processor


def _build_qwen3_vl(tok):
    from transformers import Qwen2VLImageProcessor, Qwen3VLConfig, Qwen3VLForConditionalGeneration, Qwen3VLProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    patch, merge, temporal = 4, 2, 2
    factor = patch * merge
    pixels = {"shortest_edge": (2 * factor) ** 2, "longest_edge": (4 * factor) ** 2}  # 16x16 .. 32x32
    common = dict(patch_size=patch, merge_size=merge, temporal_patch_size=temporal, size=pixels)
    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(**common),
        tokenizer=tok,
        video_processor=Qwen3VLVideoProcessor(**common),
        chat_template=chat_template("qwen3_vl"),
    )
    text_config = _qwen_text_config(
        tok,
        head_dim=16,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3], "mrope_interleaved": True},
    )
    vision_config = dict(
        depth=2,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        patch_size=patch,
        spatial_merge_size=merge,
        temporal_patch_size=temporal,
        out_hidden_size=32,
        num_position_embeddings=16,  # a 4x4 grid, interpolated to the image's patch grid
        deepstack_visual_indexes=[0],  # vision layer 0's features are added after decoder layer 0
    )
    config = Qwen3VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tok.convert_tokens_to_ids("<|vision_end|>"),
    )
    return Qwen3VLForConditionalGeneration(config), processor


def _build_llava_onevision(tok):
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
    )

    size, patch = 16, 4
    pinpoints = [[16, 16], [16, 32], [32, 16], [32, 32]]
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size={"height": size, "width": size}, image_grid_pinpoints=pinpoints),
        tokenizer=tok,
        video_processor=LlavaOnevisionVideoProcessor(size={"height": size, "width": size}),
        num_image_tokens=(size // patch) ** 2,
        vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_9",
        chat_template=chat_template("llava_onevision"),
    )
    config = LlavaOnevisionConfig(
        vision_config=_siglip_vision_config(size, patch),
        text_config=dict(model_type="qwen2", **_qwen_text_config(tok)),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        video_token_index=tok.convert_tokens_to_ids("<video>"),
        image_grid_pinpoints=pinpoints,
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        vision_aspect_ratio="anyres_max_9",
    )
    return LlavaOnevisionForConditionalGeneration(config), processor


def _build_mistral3(tok):
    from transformers import (
        Mistral3Config,
        Mistral3ForConditionalGeneration,
        PixtralImageProcessor,
        PixtralProcessor,
        PixtralVisionConfig,
    )

    longest, patch, merge = 32, 4, 2  # up to 32 px -> (8/2) x (8/2) = 16 image tokens
    processor = PixtralProcessor(
        image_processor=PixtralImageProcessor(size={"longest_edge": longest}, patch_size={"height": patch, "width": patch}),
        tokenizer=tok,
        patch_size=patch,
        spatial_merge_size=merge,
        chat_template=chat_template("mistral3"),
    )
    vision_config = PixtralVisionConfig(**TINY_VISION, head_dim=16, image_size=longest, patch_size=patch)
    text_config = dict(model_type="mistral", **_text_config(tok, head_dim=16, sliding_window=None))
    config = Mistral3Config(
        vision_config=vision_config,
        text_config=text_config,
        image_token_index=tok.convert_tokens_to_ids("[IMG]"),
        spatial_merge_size=merge,
        vision_feature_layer=-1,
        tie_word_embeddings=False,
    )
    return Mistral3ForConditionalGeneration(config), processor


def _build_internvl(tok):
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
        InternVLVisionConfig,
    )

    size, patch = 16, 4
    seq_len = (size // patch) ** 2 // 4  # downsample_ratio 0.5 -> 4 image tokens per tile
    processor = InternVLProcessor(
        # the processor always tiles (crop_to_patches); 1..2 tiles + a thumbnail keeps it tiny
        image_processor=GotOcr2ImageProcessor(size={"height": size, "width": size}, min_patches=1, max_patches=2),
        tokenizer=tok,
        video_processor=InternVLVideoProcessor(size={"height": size, "width": size}),
        image_seq_length=seq_len,
        chat_template=chat_template("internvl"),
    )
    vision_config = InternVLVisionConfig(**TINY_VISION, image_size=[size, size], patch_size=[patch, patch])
    config = InternVLConfig(
        vision_config=vision_config,
        text_config=dict(model_type="qwen2", **_qwen_text_config(tok)),
        image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"),
        image_seq_length=seq_len,
        downsample_ratio=0.5,
        tie_word_embeddings=False,
    )
    return InternVLForConditionalGeneration(config), processor


def _build_vipllava(tok):
    """ViP-LLaVA: a family with no dedicated adapter (the generic adapter's test subject)."""
    from transformers import CLIPImageProcessor, LlavaProcessor, VipLlavaConfig, VipLlavaForConditionalGeneration

    size, patch = 16, 4
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size}),
        tokenizer=tok,
        patch_size=patch,
        vision_feature_select_strategy="default",  # ViP-LLaVA drops the CLS feature
        num_additional_image_tokens=1,
        chat_template=chat_template("vipllava"),
    )
    config = VipLlavaConfig(
        vision_config=_clip_vision_config(size, patch),
        text_config=_llama_config(tok),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        vision_feature_layers=[-2, -1],
    )
    return VipLlavaForConditionalGeneration(config), processor


def _build_llama(tok):
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM(_llama_config(tok)), tok


_BUILDERS = {
    "llava": _build_llava,
    "llava_next": _build_llava_next,
    "qwen2_vl": _build_qwen2_vl,
    "idefics3": _build_idefics3,
    "llama": _build_llama,
    "gemma3": _build_gemma3,
    "qwen3_vl": _build_qwen3_vl,
    "llava_onevision": _build_llava_onevision,
    "mistral3": _build_mistral3,
    "internvl": _build_internvl,
    "vipllava": _build_vipllava,  # no dedicated adapter: not in ALL_FAMILIES
}


def build_tiny_model(family: str, out_dir: Path, seed: int = 0) -> Path:
    """Build a tiny random ``family`` checkpoint (model + processor) into ``out_dir``."""
    if family not in _BUILDERS:
        raise ValueError(f"unknown tiny family {family!r}; choose one of {', '.join(ALL_FAMILIES)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(family)
    torch.manual_seed(seed)
    model, processor = _BUILDERS[family](tok)
    model = model.to(torch.float32).eval()
    gen = model.generation_config
    gen.bos_token_id = tok.bos_token_id
    gen.eos_token_id = model.config.get_text_config().eos_token_id
    gen.pad_token_id = tok.pad_token_id
    gen.do_sample = False
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def random_shift_files(sm, folder: Path, gen: torch.Generator) -> tuple[Path, Path]:
    """A CMRM and a ShiftDC vector file of random shifts (4 x N(0, 1) per layer) and random
    unit safety directions for ``sm``'s model, drawn from ``gen``: plumbing tests need files
    whose steering visibly changes answers, not calibrated ones."""
    from steer.vectors import ShiftVectors

    d, n = sm.adapter.hidden_size, sm.adapter.num_layers
    shifts = {layer: 4 * torch.randn(d, generator=gen) for layer in range(n)}
    fp = sm.adapter.fingerprint()
    cmrm = ShiftVectors(shifts, None, {"method": "cmrm", "model": fp}).save(folder / "shift.safetensors")
    dirs = {layer: (v := torch.randn(d, generator=gen)) / v.norm() for layer in range(n)}
    shiftdc = ShiftVectors(shifts, dirs, {"method": "shiftdc", "model": fp}).save(folder / "shiftdc.safetensors")
    return cmrm, shiftdc
