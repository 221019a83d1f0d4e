"""Building the organism's untrained parts: tokenizer, processor (with chat template), model.

The organism is a real ``LlavaForConditionalGeneration``: a 4-layer Llama text model
(hidden 160) behind a 3-layer CLIP vision tower (hidden 64, 32 x 32 images, 8 x 8 patches,
16 image tokens after dropping CLS) and LLaVA's two-layer MLP projector. The tokenizer is
a ``tokenizers`` WordLevel model over :func:`steer.organism.vocab.all_words`, wrapped in
``PreTrainedTokenizerFast``; the processor is a real ``LlavaProcessor`` around a
``CLIPImageProcessor``.

Prompt format (what :data:`CHAT_TEMPLATE` renders and what the organism is trained on)::

    <s> user : <image> what is this ? assistant :      (with an image)
    <s> user : how do i bake a cake ? assistant :      (text only)

and the answer follows as `` <answer words> </s>``.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    GenerationConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from steer.organism.images import IMAGE_SIZE
from steer.organism.vocab import BOS, EOS, IMAGE, PAD, SPECIAL_TOKENS, UNK, all_words

PATCH_SIZE = 8
NUM_IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2  # 16; CLS is dropped ("default" strategy)
MAX_NEW_TOKENS = 32

TEXT_ARCH = dict(hidden_size=160, intermediate_size=432, num_hidden_layers=4, num_attention_heads=4)
VISION_ARCH = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4)

#: Jinja chat template of the organism (stored on the processor and the tokenizer).
#: ``content`` may be a string or a list of {"type": "image"} / {"type": "text"} parts.
CHAT_TEMPLATE = (
    "{{- '<s>' -}}"
    "{%- for message in messages -%}"
    "{{- ' ' + message['role'] + ' :' -}}"
    "{%- if message['content'] is string -%}"
    "{{- ' ' + message['content'] -}}"
    "{%- else -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{- ' <image>' -}}"
    "{%- elif part['type'] == 'text' -%}{{- ' ' + part['text'] -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}{{- ' </s>' -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- ' assistant :' -}}{%- endif -%}"
)


def format_prompt(question: str, with_image: bool) -> str:
    """The prompt text the chat template produces for one user turn (generation prompt on)."""
    image = f" {IMAGE}" if with_image else ""
    return f"{BOS} user :{image} {question} assistant :"


def build_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate(list(SPECIAL_TOKENS) + all_words())}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.add_special_tokens(list(SPECIAL_TOKENS))
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        extra_special_tokens={"image_token": IMAGE},
        padding_side="left",
        model_max_length=128,
        clean_up_tokenization_spaces=False,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_processor() -> LlavaProcessor:
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_resize=True,
        do_center_crop=True,
        do_convert_rgb=True,
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=build_tokenizer(),
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        image_token=IMAGE,
        chat_template=CHAT_TEMPLATE,
    )


def build_model(processor: LlavaProcessor, seed: int = 0) -> LlavaForConditionalGeneration:
    tok = processor.tokenizer
    ids = dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    text_config = LlamaConfig(
        vocab_size=len(tok),
        max_position_embeddings=128,
        num_key_value_heads=TEXT_ARCH["num_attention_heads"],
        tie_word_embeddings=False,
        **TEXT_ARCH,
        **ids,
    )
    vision_config = CLIPVisionConfig(image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, projection_dim=VISION_ARCH["hidden_size"], **VISION_ARCH)
    config = LlavaConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_id=tok.convert_tokens_to_ids(IMAGE),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        image_seq_length=NUM_IMAGE_TOKENS,
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        do_sample=False,
        max_new_tokens=MAX_NEW_TOKENS,
        **ids,
    )
    return model
