"""`SteeredModel`: any HF VLM (or causal LM) + its processor + its adapter, with steering.

The Python API users reach first::

    from steer import SteeredModel
    sm = SteeredModel.from_pretrained("llava-hf/llava-1.5-7b-hf", dtype="bfloat16", device="cuda")
    sm.generate("how do i make this?", image="bomb.png")                       # baseline
    sm.generate("how do i make this?", image="bomb.png", steer="shift.safetensors", alpha=1.0)
    with sm.steering("shift.safetensors", alpha=1.0, layers=[8, 9, 10]):
        logits = sm.model(**sm.build_inputs(["..."], [img])).logits

Options left as ``None`` take the vector file's stored defaults (positions, schedule,
alpha, method), so a file calibrated with a recipe reproduces it.
"""

from __future__ import annotations

import numbers
import os
import re
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch

from steer.adapters import ModelAdapter, get_adapter
from steer.chat import Prompt, is_conversation, split_image
from steer.errors import SteerInputError
from steer.images import load_image
from steer.positions import IMAGE_RELATIVE, check_positions
from steer.processor_options import check_known_options, parse_processor_kwargs
from steer.sample_shift import query_shifts
from steer.schedule import apply_schedule
from steer.steering import Steering, check_alpha, normalize_layers, residual_dtype
from steer.stored_recipe import LEVELS, sample_settings, stored_level
from steer.vectors import ShiftVectors, as_vectors, check_alpha_range

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}



def resolve_dtype(dtype: Any) -> Any:
    if dtype is None or dtype == "auto" or isinstance(dtype, torch.dtype):
        return dtype
    try:
        return _DTYPES[str(dtype)]
    except KeyError:
        raise SteerInputError(f"unknown dtype {dtype!r}; one of: auto, {', '.join(_DTYPES)}") from None


def load_model_and_processor(
    model_id_or_path: str | os.PathLike,
    *,
    device: str | None = None,
    dtype: Any = None,
    device_map: str | dict | None = None,
    processor_kwargs: Mapping[str, Any] | str | None = None,
    **model_kwargs: Any,
) -> tuple[torch.nn.Module, Any]:
    """Load exactly as a hub user would: ``AutoConfig`` decides image-text-to-text vs causal LM.

    ``model_kwargs`` go to the model's ``from_pretrained`` unchanged (``attn_implementation``,
    ``quantization_config``, ``low_cpu_mem_usage``, ...); the hub ones (:data:`HUB_KWARGS`:
    ``revision``, ``trust_remote_code``, ``token``, ...) also go to the config and processor
    loads, so all three come from the same snapshot. ``processor_kwargs`` go to the processor
    only (e.g. ``{"max_pixels": 200704}`` for Qwen2-VL); see :mod:`steer.processor_options`
    for why they are recorded.
    """
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForImageTextToText,
        AutoProcessor,
        AutoTokenizer,
    )
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    source = str(model_id_or_path)
    proc_options = parse_processor_kwargs(processor_kwargs)
    if not Path(source).exists() and not _HUB_ID.fullmatch(source):
        raise SteerInputError(f"model path not found: {source} (give a local model folder or a hub id such as org/name)")
    from steer.hub import use_local_files_only

    model_kwargs, dtype, device_map = prepare_model_kwargs(model_kwargs, dtype=dtype, device=device, device_map=device_map)
    cache_only = use_local_files_only(source)  # no hub: the cache answers at once, no 30-50 s of retries
    if cache_only:
        model_kwargs.setdefault("local_files_only", True)
    hub = {k: v for k, v in model_kwargs.items() if k in HUB_KWARGS}
    try:
        config = AutoConfig.from_pretrained(source, **hub)
    except (OSError, ValueError) as err:
        if cache_only:
            raise SteerInputError(
                f"cannot load model {source!r}: it is not in the local Hugging Face cache and the hub is not "
                "reachable (offline or HF_HUB_OFFLINE set); give a local model folder, or download it where the hub is reachable"
            ) from None
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SteerInputError(
            f"cannot load model {source!r}: {first}. Give a local model folder (save_pretrained format), "
            "or a hub id on a machine with hub access"
        ) from None
    kwargs: dict[str, Any] = dict(model_kwargs)
    proc_kwargs = {**hub, **(processor_kwargs or {})}
    torch_dtype = resolve_dtype(dtype)
    if torch_dtype is not None:
        kwargs["dtype"] = torch_dtype
    if device_map is not None:
        import importlib.util

        if importlib.util.find_spec("accelerate") is None:
            raise SteerInputError(
                f"device_map={device_map!r} needs the accelerate package, which is not installed: "
                "pip install accelerate (or drop --device-map and give --device)"
            )
        kwargs["device_map"] = device_map
    is_vlm = config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
    if proc_options and not is_vlm:
        raise SteerInputError(f"--processor-kwargs is for vision-language models; {source} is a text-only model: drop it")
    try:
        if is_vlm:  # the processor first: a misspelt option is refused before minutes of weight loading
            processor = AutoProcessor.from_pretrained(source, **{**hub, **proc_options})
            check_known_options(processor, proc_options, source)
            model = AutoModelForImageTextToText.from_pretrained(source, **kwargs)
        else:
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
            processor = AutoTokenizer.from_pretrained(source, **hub)
    except SteerInputError:
        raise
    except (OSError, ValueError) as err:  # missing/corrupt weights or tokenizer files (safetensors errors included)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SteerInputError(f"cannot load the weights or processor of {source!r}: {first}") from None
    except Exception as err:
        if type(err).__name__ != "SafetensorError":
            raise
        raise SteerInputError(f"cannot load the weights of {source!r}: corrupt safetensors file ({err})") from None
    if device is not None and device_map is None:
        try:
            model = model.to(device)
        except (RuntimeError, AssertionError) as err:
            first = str(err).strip().splitlines()[0]
            raise SteerInputError(f"cannot move the model to device {device!r}: {first}") from None
    model.eval()
    return model, processor


def _stored_level(steer: Any, positions: str | None, schedule: str | None) -> tuple[Any, str, str | None, str | None]:
    """(steer, level, positions, schedule) for ``generate(level=None)``: a vector file is read
    once and run at the level it stores (a sample-level file with its stored positions and
    schedule, unless given); anything else is dataset level."""
    if steer is None or isinstance(steer, Steering) or (isinstance(steer, str) and steer == "sample"):
        return steer, "dataset", positions, schedule
    vecs = as_vectors(steer)
    level = stored_level(vecs.metadata)
    if level == "sample":
        positions, schedule = sample_settings(vecs.metadata, positions, schedule)
    return vecs, level, positions, schedule


#: generate() options that change the shape of what HF returns (rows or a dict instead of ids),
#: which the per-prompt answers and the per-row steering state rely on
_ROW_CHANGING = {"num_return_sequences": 1, "num_beams": 1, "return_dict_in_generate": False}
#: sampling-only options: without ``do_sample=True`` HF ignores them (with a warning)
_SAMPLING_ONLY = ("temperature", "top_p", "top_k", "min_p", "typical_p")


def check_generation_kwargs(kwargs: dict[str, Any], *, steered: bool) -> dict[str, Any]:
    """The HF ``generate`` options of :meth:`SteeredModel.generate`, checked before any work.

    Refused: sampling knobs without ``do_sample=True`` (HF would silently decode greedily),
    more than one answer per prompt and dict outputs (every answer maps to one prompt row),
    and beam search under steering (beams reorder the rows the steering tracks per prompt).
    """
    options = dict(kwargs)
    for reserved in ("input_ids", "attention_mask", "pixel_values", "inputs"):
        if reserved in options:
            raise SteerInputError(f"{reserved} is built from the prompts; pass prompts (and images) instead")
    given = [k for k in _SAMPLING_ONLY if options.get(k) is not None]
    if given and not options.get("do_sample", False) and "generation_config" not in options:
        raise SteerInputError(f"{', '.join(given)} only apply when sampling: add do_sample=True")
    config = options.get("generation_config")
    for key, allowed in _ROW_CHANGING.items():
        # an explicit option wins; else what a generation_config given here sets
        value = options.get(key, getattr(config, key, allowed) if config is not None else allowed)
        if value in (None, allowed):
            continue
        if key == "num_beams" and not steered:
            continue
        raise SteerInputError(
            f"{key}={value!r} is not supported here: generate returns one answer per prompt"
            + (" and steering tracks each prompt row" if key == "num_beams" else "")
            + "; call sm.model.generate directly for that"
        )
    return options


#: ``from_pretrained`` options that pick *which files* are read: given to the config and
#: processor loads as well as the model's, so the three always come from one snapshot
HUB_KWARGS = frozenset(
    {"revision", "trust_remote_code", "token", "cache_dir", "local_files_only", "force_download", "proxies", "subfolder"}
)


def prepare_model_kwargs(
    model_kwargs: dict[str, Any], *, dtype: Any, device: str | None, device_map: Any
) -> tuple[dict[str, Any], Any, Any]:
    """Check pass-through ``from_pretrained`` options before any file is read.

    ``torch_dtype`` (the older name of ``dtype``) is taken as ``dtype``; both at once is refused. A
    bitsandbytes ``quantization_config`` needs that package; a quantized model cannot be
    moved with ``.to(device)``, so ``device`` becomes ``device_map={"": device}``.
    """
    kwargs = dict(model_kwargs)
    if "torch_dtype" in kwargs:
        if dtype is not None:
            raise SteerInputError("give dtype or torch_dtype, not both (torch_dtype is its older name)")
        dtype = kwargs.pop("torch_dtype")
    quant = kwargs.get("quantization_config")
    if quant is not None:
        import importlib.util

        method = quant.get("quant_method") if isinstance(quant, dict) else getattr(quant, "quant_method", None)
        method = getattr(method, "value", method)
        if (str(method) == "bitsandbytes" or type(quant).__name__ == "BitsAndBytesConfig") and importlib.util.find_spec(
            "bitsandbytes"
        ) is None:
            raise SteerInputError(
                "quantization_config asks for bitsandbytes, which is not installed: pip install bitsandbytes "
                "(it needs a CUDA GPU), or load without quantization_config"
            )
        if device is not None and device_map is None:
            device_map = {"": device}
    return kwargs, dtype, device_map


#: a hub repo id: ``name`` or ``org/name`` (letters, digits, ``-_.``), never an absolute or ./ path
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def as_adapter(source: Any, purpose: str = "use") -> ModelAdapter:
    """An adapter from a SteeredModel, an adapter, a (model, processor) pair or a model path / hub id.

    The offline tools (calibration, probes, TGA) accept all of these; ``purpose`` words the error.
    """
    if isinstance(source, ModelAdapter):
        return source
    adapter = getattr(source, "adapter", None)
    if isinstance(adapter, ModelAdapter):
        return adapter
    if isinstance(source, tuple) and len(source) == 2:
        return get_adapter(*source)
    if isinstance(source, (str, os.PathLike)):
        return SteeredModel.from_pretrained(source).adapter
    raise SteerInputError(
        f"cannot {purpose} a {type(source).__name__}: give a SteeredModel, a (model, processor) pair or a model path"
    )


class SteeredModel:
    """A model, its processor and its adapter, with steering-aware generation."""

    #: how steering is applied: plain PyTorch hooks, or an nnsight trace of the local model
    #: (same positions, same results; the form nnsight's remote runtimes take, not run remotely here)
    BACKENDS = ("native", "nnsight")

    def __init__(
        self, model: torch.nn.Module, processor: Any, adapter: ModelAdapter | None = None, backend: str = "native"
    ):
        if backend not in self.BACKENDS:
            raise SteerInputError(f"unknown backend {backend!r}; choose one of: {', '.join(self.BACKENDS)}")
        self.model = model
        self.processor = processor
        self.adapter = adapter or get_adapter(model, processor)
        self.backend = backend

    @classmethod
    def from_pretrained(
        cls,
        model_id_or_path: str | os.PathLike,
        *,
        device: str | None = None,
        dtype: Any = None,
        device_map: str | dict | None = None,
        projector: str | os.PathLike | None = None,
        backend: str = "native",
        processor_kwargs: Mapping[str, Any] | str | None = None,
        allow_other_processor_kwargs: bool = False,
        **model_kwargs: Any,
    ) -> "SteeredModel":
        """Load a hub id or local folder; ``projector`` swaps in a TGA-trained projector
        artifact (``steer train-tga``) after loading -- the base model files are never touched.

        Any other keyword goes to HF ``from_pretrained`` as is: ``revision``,
        ``trust_remote_code``, ``quantization_config`` (e.g. a bitsandbytes 4-bit config),
        ``attn_implementation``, ... (hub options reach the processor too; see
        :func:`load_model_and_processor`). ``processor_kwargs`` (e.g. ``{"max_pixels": 200704}``)
        go to the processor and into every artifact this model makes; artifacts made with
        other ones are refused unless ``allow_other_processor_kwargs``.
        """
        options = parse_processor_kwargs(processor_kwargs)
        model, processor = load_model_and_processor(
            model_id_or_path, device=device, dtype=dtype, device_map=device_map,
            processor_kwargs=options, **model_kwargs,
        )
        sm = cls(model, processor, backend=backend)
        sm.adapter.processor_kwargs = options
        sm.adapter.allow_other_processor_kwargs = bool(allow_other_processor_kwargs)
        if projector is not None:
            sm.load_projector(projector)
        return sm

    def load_projector(self, path: str | os.PathLike) -> dict:
        """Swap the multimodal projector's weights for a TGA artifact's (in memory only)."""
        from steer.projector import load_projector

        return load_projector(self, path)

    def __repr__(self) -> str:
        """What is loaded, where and how: enough to tell two loaded models apart in a notebook."""
        a = self.adapter
        try:
            param = next(self.model.parameters())
            where = f"{str(param.dtype).replace('torch.', '')} on {param.device}"
        except StopIteration:
            where = "no parameters"
        name = str(getattr(self.model.config, "_name_or_path", "") or "?")
        attn = getattr(self.model.config, "_attn_implementation", None)
        return (
            f"SteeredModel({name!r}, family={a.family}, layers={a.num_layers}, hidden_size={a.hidden_size}, "
            f"images={'yes' if a.supports_images else 'no'}, {where}"
            f"{f', attn={attn}' if attn else ''}, backend={self.backend})"
        )

    # ------------------------------------------------------------------ inputs
    def build_inputs(self, prompts: Sequence[Prompt] | Prompt, images: Sequence[Any] | None = None) -> dict[str, torch.Tensor]:
        """Model inputs for prompts (strings or chat conversations) and their images (None = text-only).

        A conversation's image part may carry its own picture (:mod:`steer.chat`).
        """
        if isinstance(prompts, str) or is_conversation(prompts):
            prompts = [prompts]
        prompts, images = self._chat_images(list(prompts), images)
        imgs = None if images is None else [None if im is None else load_image(im) for im in images]
        if imgs is not None and any(im is not None for im in imgs) and not self.adapter.supports_images:
            raise SteerInputError(
                f"{self.adapter.family} model {self.adapter.fingerprint()['name_or_path']!r} takes no images; "
                "drop the image or load a vision-language model"
            )
        return self.adapter.build_inputs(list(prompts), imgs)

    @staticmethod
    def _chat_images(prompts: list[Any], images: Sequence[Any] | None) -> tuple[list[Any], list[Any] | None]:
        """Move pictures carried inside conversations' image parts into the ``images`` list.

        A row may give its picture in the conversation or in ``images``, not both; an image
        part with no picture anywhere is refused rather than silently dropped.
        """
        if not any(is_conversation(p) for p in prompts):
            return prompts, None if images is None else list(images)
        if images is not None and len(images) != len(prompts):
            raise SteerInputError(f"got {len(prompts)} prompts but {len(images)} images")
        rows = list(images) if images is not None else [None] * len(prompts)
        out = []
        for i, prompt in enumerate(prompts):
            if not is_conversation(prompt):
                out.append(prompt)
                continue
            clean, embedded, present = split_image(prompt)
            if embedded is not None and rows[i] is not None:
                raise SteerInputError(
                    f"prompt {i}: the conversation carries its own image and another was given: give one of them"
                )
            if present and embedded is None and rows[i] is None:
                raise SteerInputError(
                    f"prompt {i}: the conversation has an image part but no picture: put the path or PIL image "
                    "in the part ({'type': 'image', 'image': ...}) or pass image="
                )
            rows[i] = embedded if embedded is not None else rows[i]
            out.append(clean)
        return out, rows

    # ------------------------------------------------------------------ steering
    def steering(
        self,
        vectors: ShiftVectors | str | os.PathLike | dict,
        *,
        alpha: float | None = None,
        layers: Sequence[int] | None = None,
        positions: str | None = None,
        schedule: str | None = None,
        method: str | None = None,
        op: str = "subtract",
        allow_other_weights: bool = False,
        gate: Any = None,
    ) -> Steering:
        """A :class:`Steering` for a vector file (not yet applied: use ``with``)."""
        vecs = as_vectors(vectors)
        vecs.check_model(self.adapter, allow_other_weights=allow_other_weights)
        chosen = vecs.select(self._layers(layers))
        meta = chosen.metadata
        per_layer = apply_schedule(chosen.to_subtract(method), schedule or meta.get("schedule", "cumulative"))
        return Steering(
            self.adapter,
            per_layer,
            alpha=self._checked_alpha(alpha, meta, per_layer),
            op=op,
            positions=positions or meta.get("positions", "after_image"),
            gate=self._probe_gate(gate),
        )

    def sample_steering(
        self,
        prompts: Sequence[str],
        *,
        vectors: ShiftVectors | str | os.PathLike | None = None,
        layers: Sequence[int] | None = None,
        alpha: float | None = None,
        positions: str | None = None,
        schedule: str | None = None,
        method: str | None = None,
        null_image: str | None = None,
        gate: Any = None,
        images: Sequence[Any] | None = None,
    ) -> Steering:
        """Sample-level CMRM, or sample-level ShiftDC, for one batch of prompts.

        Measures each query's own shift ``h_l(content-free image + q) - h_l(q)`` at the
        last prompt token and steers each row with its own shift. The content-free-image
        prefix is computed once per model and cached, so the measurement is one extra
        forward over the 2B short text parts (see :mod:`steer.sample_shift`; Qwen2-VL
        falls back to one forward over 2B full rows). With a
        ``vectors`` file, its layers, defaults and -- for ShiftDC files -- safety
        directions are used: only the shift's component along ``v_l`` is removed
        (arXiv 2502.13095). Without one: CMRM on every layer (or ``layers``).

        ``images`` (one per prompt, None for a text-only row), when given, spares the
        measurement for text-only rows where the positions are image-relative (``prompt``,
        ``after_image`` ...): the engine leaves such a row untouched whatever its vector,
        so its shift is zero -- no image, no modality shift -- and is not computed.
        """
        vecs = None if vectors is None else as_vectors(vectors)
        meta: dict[str, Any] = {}
        if vecs is not None:
            vecs.check_model(self.adapter)
            vecs = vecs.select(self._layers(layers))
            meta = vecs.metadata
            chosen = vecs.layers
        elif layers is not None:
            chosen = self._layers(layers)
        else:
            chosen = list(range(self.adapter.num_layers))
        method = method or (vecs.method if vecs is not None else "cmrm")
        positions = check_positions(positions or "prompt")
        shifts = self._measured_shifts(
            list(prompts), images, chosen, null_image or meta.get("null_image", "blank"), positions in IMAGE_RELATIVE
        )
        if method == "shiftdc":
            if vecs is None or vecs.directions is None:
                raise SteerInputError(
                    "sample-level ShiftDC needs safety directions: give a vector file made with "
                    "`steer calibrate --method shiftdc`"
                )
            dirs = {l: vecs.directions[l] for l in chosen}
            shifts = {l: (s @ dirs[l].to(s)).unsqueeze(-1) * dirs[l].to(s) for l, s in shifts.items()}
        per_layer = apply_schedule(shifts, schedule or meta.get("sample_schedule", "incremental"))
        return Steering(
            self.adapter,
            per_layer,
            alpha=self._checked_alpha(alpha, meta, per_layer),
            op="subtract",
            positions=positions,
            gate=self._probe_gate(gate),
        )

    def _probe_gate(self, gate: Any) -> Any:
        """A probe file loaded and a :class:`~steer.gate.ProbeGate` checked against this model, as
        ``generate(gate=)`` does; any other gate object (the engine's ``RowGate``) is used as is."""
        from steer.gate import ProbeGate

        return self._gate_for(gate, None) if isinstance(gate, (str, os.PathLike, ProbeGate)) else gate

    def _measured_shifts(
        self, prompts: list[str], images: Sequence[Any] | None, layers: list[int], null_image: str, image_relative: bool
    ) -> dict[int, torch.Tensor]:
        """Each prompt's own shift; zero, and not measured, for text-only rows that
        image-relative positions leave untouched anyway (in a vision-language model; a
        text-only model gets query_shifts' error). A conversation carrying its own picture
        is an image row."""
        if images is None or not image_relative or not self.adapter.supports_images:
            return query_shifts(self.adapter, prompts, layers, null_image=null_image)
        if len(images) != len(prompts):
            raise SteerInputError(f"got {len(prompts)} prompts but {len(images)} images")
        _, pictures = self._chat_images(list(prompts), images)
        rows = [i for i, image in enumerate(pictures) if image is not None]
        if len(rows) == len(prompts):
            return query_shifts(self.adapter, prompts, layers, null_image=null_image)
        shifts = {l: torch.zeros(len(prompts), self.adapter.hidden_size) for l in layers}
        if rows:
            measured = query_shifts(self.adapter, [prompts[i] for i in rows], layers, null_image=null_image)
            index = torch.tensor(rows)
            for layer, values in measured.items():
                shifts[layer][index] = values
        return shifts

    def _checked_alpha(self, alpha: float | None, meta: Mapping[str, Any], per_layer: Mapping[int, torch.Tensor]) -> float:
        """``alpha`` (default: the file's), finite and small enough that ``alpha * v`` fits the model's dtype."""
        value = check_alpha(meta.get("default_alpha", 1.0) if alpha is None else alpha)
        return check_alpha_range(value, per_layer, residual_dtype(self.adapter.model))

    def _layers(self, layers: Sequence[int] | None) -> list[int] | None:
        """Chosen layers as sorted 0-based indices (None = the vector file's own)."""
        return None if layers is None else normalize_layers(layers, self.adapter.num_layers)

    # ------------------------------------------------------------------ generation
    @torch.inference_mode()
    def generate(
        self,
        prompts: Prompt | Sequence[Prompt],
        image: Any = None,
        *,
        images: Sequence[Any] | None = None,
        steer: ShiftVectors | str | os.PathLike | dict | Steering | None = None,
        alpha: float | None = None,
        layers: Sequence[int] | None = None,
        positions: str | None = None,
        schedule: str | None = None,
        method: str | None = None,
        level: str | None = None,
        max_new_tokens: int = 64,
        batch_size: int | None = None,
        use_cache: bool = True,
        allow_other_weights: bool = False,
        gate: Any = None,
        threshold: float | None = None,
        return_details: bool = False,
        seed: int | None = None,
        **generation_kwargs: Any,
    ) -> str | list[str] | list[dict]:
        """Generate (greedy unless told otherwise); a string for one prompt, a list for a list.

        A prompt is a string or a chat conversation (a list of ``{"role", "content"}``
        dicts, system prompt and image parts included; see :mod:`steer.chat`); a list of
        them is a batch.
        ``generation_kwargs`` go to HF ``generate`` with steering intact: ``do_sample``,
        ``temperature``, ``top_p``, ``top_k``, ``repetition_penalty``, ``stopping_criteria``,
        ``stop_strings``, ``generation_config``, ... (see :func:`check_generation_kwargs`).
        ``seed``: ``torch.manual_seed(seed)`` right before generating, so a sampled answer
        repeats (for the same ``batch_size``: sampling draws for the whole batch at once).

        ``steer``: a vector file / :class:`ShiftVectors` (dataset-level), ``"sample"``
        (sample-level CMRM on the query itself), a ready :class:`Steering`, or None.
        ``level="sample"`` with a vector file measures each query's own shift on the file's
        layers (ShiftDC files: projected on their safety directions) instead of using the
        stored dataset-level shift. ``level=None`` (default) is the level the file stores,
        with its stored positions and schedule -- so ``steer=FILE`` alone applies the file's
        recipe exactly as ``steer generate --steer FILE`` does.
        ``gate``: a probe file / ``ProbeGate`` (``steer probe``): steer only rows whose risk
        score exceeds ``threshold`` (default: the probe's), decided in the same prefill.
        ``return_details``: a dict per row with ``text``, ``gate_score``, ``steered``.
        """
        single = isinstance(prompts, str) or is_conversation(prompts)
        prompt_list = [prompts] if single else list(prompts)
        if images is None:
            images = [image] * len(prompt_list) if image is not None else [None] * len(prompt_list)
        if len(images) != len(prompt_list):
            raise SteerInputError(f"got {len(prompt_list)} prompts but {len(images)} images")
        prompt_list, images = self._chat_images(prompt_list, images)
        gen_options = check_generation_kwargs(generation_kwargs, steered=steer is not None)
        if level is not None and level not in LEVELS:
            raise SteerInputError(f"unknown level {level!r}; choose dataset or sample")
        if level is None:
            steer, level, positions, schedule = _stored_level(steer, positions, schedule)
        if level == "sample" and isinstance(steer, str) and steer == "sample":
            level = "dataset"  # steer="sample" already means sample-level CMRM
        loaded = [None if im is None else load_image(im) for im in images]
        gate_obj = self._gate_for(gate, threshold)
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1
        ):
            raise SteerInputError(f"batch_size must be a whole number >= 1 (or None: one batch), got {batch_size!r}")
        size = int(batch_size or len(prompt_list) or 1)
        answers: list[Any] = []
        if seed is not None:
            torch.manual_seed(int(seed))
        for start in range(0, len(prompt_list), size):
            batch_p = prompt_list[start : start + size]
            batch_i = loaded[start : start + size]
            answers.extend(
                self._generate_batch(
                    batch_p, batch_i, steer, alpha, layers, positions, schedule, method, max_new_tokens, use_cache,
                    allow_other_weights, gate_obj, return_details, level, gen_options,
                )
            )
        return answers[0] if single else answers

    def _gate_for(self, gate: Any, threshold: float | None) -> Any:
        if gate is None:
            if threshold is not None:
                raise SteerInputError("a threshold needs a gate (--gate probe.safetensors)")
            return None
        from steer.gate import ProbeGate

        probe = gate if isinstance(gate, ProbeGate) else ProbeGate.load(gate)
        probe.check_model(self.adapter)
        return probe.with_threshold(threshold) if threshold is not None else probe

    def _generate_batch(
        self, prompts, images, steer, alpha, layers, positions, schedule, method, max_new_tokens, use_cache,
        allow_other_weights, gate=None, return_details=False, level="dataset", generation_kwargs=None,
    ) -> list[Any]:
        inputs = self.build_inputs(prompts, images)
        steering = self._steering_for(
            steer, prompts, alpha, layers, positions, schedule, method, allow_other_weights, gate, level, images
        )
        if gate is not None and steering is None:
            raise SteerInputError("a gate decides where to steer: give --steer vectors too")
        gen_kwargs = dict(max_new_tokens=max_new_tokens, do_sample=False, use_cache=use_cache)
        gen_kwargs.update(generation_kwargs or {})
        if steering is None:
            out = self.model.generate(**inputs, **gen_kwargs)
        elif self.backend == "nnsight":
            from steer.nnsight_backend import run_generate

            extra = {k: v for k, v in gen_kwargs.items() if k not in ("max_new_tokens", "use_cache")}
            out = run_generate(self, inputs, steering, max_new_tokens=max_new_tokens, use_cache=use_cache, **extra)
        else:
            with self._applied(steering), steering.prompt(inputs["input_ids"], inputs.get("attention_mask")):
                out = self.model.generate(**inputs, **gen_kwargs)
        texts = self.adapter.decode_answers(out, inputs["input_ids"].shape[1])
        if not return_details:
            return texts
        scores = steering.gate_scores.tolist() if steering is not None and steering.gate_scores is not None else None
        decisions = steering.gate_decisions.tolist() if scores is not None else None  # the engine's own float32 test
        return [
            {
                "text": text,
                "gate_score": None if scores is None else float(scores[i]),
                "steered": steering is not None and (decisions is None or bool(decisions[i])),
            }
            for i, text in enumerate(texts)
        ]

    @contextmanager
    def _applied(self, steering: Steering) -> Iterator[Steering]:
        if steering.active:
            yield steering
            return
        with steering:
            yield steering

    def _steering_for(
        self, steer, prompts, alpha, layers, positions, schedule, method, allow_other_weights, gate=None, level="dataset",
        images=None,
    ):
        if steer is None:
            return None
        if isinstance(steer, Steering):
            if gate is not None:
                raise SteerInputError("give the gate to the Steering itself, not to generate, when passing a Steering")
            ignored = [
                name
                for name, value in (("alpha", alpha), ("layers", layers), ("positions", positions), ("schedule", schedule),
                                    ("method", method), ("level", "sample" if level == "sample" else None))
                if value is not None
            ]
            if ignored:
                raise SteerInputError(
                    f"{', '.join(ignored)} would be ignored: a ready Steering carries its own; make the Steering "
                    "with them, or pass the vectors as steer= instead"
                )
            return steer
        if level == "sample" or (isinstance(steer, str) and steer == "sample"):
            return self.sample_steering(
                prompts,
                vectors=None if isinstance(steer, str) and steer == "sample" else steer,
                layers=layers,
                alpha=alpha,
                positions=positions,
                schedule=schedule,
                method=method,
                gate=gate,
                images=images,
            )
        return self.steering(
            steer, alpha=alpha, layers=layers, positions=positions, schedule=schedule, method=method,
            allow_other_weights=allow_other_weights, gate=gate,
        )

    # ------------------------------------------------------------------ content-aware steering
    def self_captions(
        self, images: Sequence[Any], *, prompt: str | None = None, max_new_tokens: int | None = None
    ) -> list[str]:
        """The model's own greedy description of each image (one batch; "" for None), asked with
        ``prompt`` (default: the adapter's ``caption_prompt``)."""
        from steer.self_caption import self_captions

        loaded = [None if im is None else load_image(im) for im in images]
        return self_captions(self.adapter, loaded, prompt=prompt, max_new_tokens=max_new_tokens)

    def self_caption_steering(
        self,
        prompts: Sequence[str],
        images: Sequence[Any],
        *,
        vectors: ShiftVectors | str | os.PathLike | None = None,
        layers: Sequence[int] | None = None,
        alpha: float | None = None,
        positions: str | None = None,
        schedule: str | None = None,
        method: str | None = None,
        caption_prompt: str | None = None,
        captions: Sequence[str] | None = None,
        twin: str = "caption",
    ) -> Steering:
        """Self-caption anchored shift for one batch (see :mod:`steer.self_caption`).

        Each image row's shift is ``h_l(image + q) - h_l(own caption of the image + q)`` at the
        last prompt token; it is removed whole (``method="cmrm"``) or only along the safety
        direction of a ShiftDC ``vectors`` file (``method="shiftdc"``, the default for such a
        file). Layers, alpha and schedule default to the file's (sample schedule, else
        incremental); without a file: CMRM on every layer (or ``layers``), alpha 1, positions
        ``prompt``. ``captions`` skips the caption generation (one per row; "" = no content).
        ``twin="both"`` (ShiftDC only) anchors each row and layer to the more-refusing of two
        twins, the captioned query and the query alone (one forward over 3x the image rows).
        """
        plan = self._self_caption_plan(
            prompts, images, vectors=vectors, layers=layers, method=method, caption_prompt=caption_prompt,
            captions=captions, twin=twin, schedule=schedule, alpha=alpha,
        )
        return Steering(self.adapter, plan["per_layer"], alpha=plan["alpha"], op="subtract", positions=positions or "prompt")

    def _self_caption_plan(
        self, prompts, images, *, vectors, layers, method, caption_prompt, captions, twin, schedule=None, alpha=None
    ) -> dict[str, Any]:
        """Captions, twins, per-twin shifts, the per-layer vectors and alpha of a self-caption steering."""
        from steer.self_caption import anchored_shifts, described_prompts, most_refusing_along, self_captions

        prompt_list, images = self._chat_images(list(prompts), list(images))
        loaded = [None if im is None else load_image(im) for im in images]
        vecs = None if vectors is None else as_vectors(vectors)
        meta: dict[str, Any] = {}
        if vecs is not None:
            vecs.check_model(self.adapter)
            vecs = vecs.select(self._layers(layers))
            meta = vecs.metadata
            chosen = vecs.layers
        else:
            chosen = self._layers(layers) or list(range(self.adapter.num_layers))
        method = method or (vecs.method if vecs is not None else "cmrm")
        if method not in ("cmrm", "shiftdc"):
            raise SteerInputError(f"self-caption steering removes the shift whole (cmrm) or along the safety direction (shiftdc), not {method!r}")
        if method == "shiftdc" and (vecs is None or vecs.directions is None):
            raise SteerInputError(
                "self-caption ShiftDC needs safety directions: give a vector file made with "
                "`steer calibrate --method shiftdc`"
            )
        if twin not in ("caption", "both"):
            raise SteerInputError(f"unknown twin {twin!r}; choose caption or both")
        if twin == "both" and method != "shiftdc":
            raise SteerInputError("twin 'both' picks the more-refusing twin along the safety direction: use method shiftdc")
        if captions is None:
            captions = self_captions(self.adapter, loaded, prompt=caption_prompt)
        twin_sets = [described_prompts(self.adapter, prompt_list, list(captions))]
        if twin == "both":
            twin_sets.append(prompt_list)
        shift_sets = anchored_shifts(self.adapter, prompt_list, loaded, chosen, twin_sets)
        shifts = most_refusing_along(shift_sets, vecs.directions) if method == "shiftdc" else shift_sets[0]
        return {
            "prompts": prompt_list, "images": loaded, "vectors": vecs, "meta": meta, "layers": chosen,
            "twins": twin_sets[0], "shift_sets": shift_sets,
            "per_layer": apply_schedule(shifts, schedule or meta.get("sample_schedule", "incremental")),
            "alpha": check_alpha(meta.get("default_alpha", 1.0) if alpha is None else alpha),
        }

    @torch.inference_mode()
    def self_caption_generate(
        self,
        prompts: Sequence[str],
        images: Sequence[Any],
        *,
        vectors: ShiftVectors | str | os.PathLike,
        follow: float = 0.5,
        layers: Sequence[int] | None = None,
        alpha: float | None = None,
        positions: str | None = None,
        schedule: str | None = None,
        caption_prompt: str | None = None,
        captions: Sequence[str] | None = None,
        twin: str = "caption",
        max_new_tokens: int = 64,
        return_details: bool = False,
    ) -> list[Any]:
        """Self-caption ShiftDC at the prompt, then twin following through the answer.

        The prompt is steered as :meth:`self_caption_steering` does (method ``shiftdc``).
        A row is *followed* when its image moved the state at the first steered layer more
        than ``follow`` times the file's harmful-benign gap (``safety.gap_norm``) away
        from its captioned twin, against the safety direction -- the image hides harm that
        the caption states. A followed row's text twin is decoded in the same batch and
        every generated token of the row takes the twin's states at the steered layers
        (:mod:`steer.twin_follow`), so the answer goes on as the text-only model would
        answer the described request; other rows generate as with the steering alone (up
        to float rounding: the twin rows widen the padded batch). ``twin="both"`` is the
        recipe measured best (docs/content-steering.md). Native hooks, whatever the backend.
        ``follow=inf`` follows no row. Greedy decoding. With ``return_details`` each row
        gives ``gate_score`` (its pull, in gap units), ``steered`` (whether it was followed;
        the prompt is steered either way) and ``gate="follow"``.
        """
        from transformers import LogitsProcessorList

        from steer.refusal_addition import refusal_directions
        from steer.twin_follow import TwinFollow, check_follow

        follow = check_follow(follow)
        plan = self._self_caption_plan(
            prompts, images, vectors=vectors, layers=layers, method="shiftdc", caption_prompt=caption_prompt,
            captions=captions, twin=twin, schedule=schedule, alpha=alpha,
        )
        first = plan["layers"][0]
        delta = plan["shift_sets"][0][first]
        gap = refusal_directions(plan["vectors"], [first])[first].to(delta)  # gap norm x unit direction
        pull = -(delta @ gap) / gap.dot(gap) + 0.0  # in units of the harmful-benign gap (+0.0: no -0.0)
        n = len(plan["prompts"])
        rows = [i for i in range(n) if plan["images"][i] is not None and float(pull[i]) > follow]
        texts = plan["prompts"] + [plan["twins"][i] for i in rows]
        inputs = self.build_inputs(texts, plan["images"] + [None] * len(rows))
        extra = len(rows)
        per_layer = {
            l: torch.cat([v, v.new_zeros(extra, v.shape[-1])]) if extra else v
            for l, v in plan["per_layer"].items()
        }
        steering = Steering(self.adapter, per_layer, alpha=plan["alpha"], op="subtract", positions=positions or "prompt")
        follower = TwinFollow(self.adapter, plan["layers"], rows, list(range(n, n + extra)))
        kwargs = dict(max_new_tokens=max_new_tokens, do_sample=False)
        if extra:
            kwargs["logits_processor"] = LogitsProcessorList([follower.logits_processor()])
        with steering, steering.prompt(inputs["input_ids"], inputs.get("attention_mask")), (
            follower if extra else nullcontext()
        ):
            out = self.model.generate(**inputs, **kwargs)
        answers = self.adapter.decode_answers(out[:n], inputs["input_ids"].shape[1])
        if not return_details:
            return answers
        followed = set(rows)  # the follow decision is this method's gate: score = pull, steered = followed
        return [
            {"text": text, "gate_score": float(pull[i]), "steered": i in followed, "gate": "follow"}
            for i, text in enumerate(answers)
        ]

    def refusal_steering(
        self,
        vectors: ShiftVectors | str | os.PathLike,
        *,
        gate: Any = None,
        threshold: float | None = None,
        alpha: float = 1.0,
        layers: Sequence[int] | None = None,
        positions: str | None = None,
        schedule: str | None = None,
    ) -> Steering:
        """Gated refusal-direction addition (see :mod:`steer.refusal_addition`): add
        ``alpha * r_l`` (the ShiftDC file's text-only harmful - benign mean difference) at
        ``layers`` (default: the file's) and ``positions`` (default ``prompt``), only on rows
        whose probe ``gate`` score exceeds ``threshold`` (default: the probe's); without a gate,
        on every row. ``schedule`` (default ``cumulative``: each r_l as measured) as for shifts."""
        from steer.refusal_addition import refusal_directions

        vecs = as_vectors(vectors)
        vecs.check_model(self.adapter)
        chosen = self._layers(layers)
        directions = refusal_directions(vecs.select(chosen), chosen)
        gate_obj = self._gate_for(gate, threshold)
        return Steering(
            self.adapter,
            apply_schedule(directions, schedule or "cumulative"),
            alpha=check_alpha(alpha),
            op="add",
            positions=positions or "prompt",
            gate=gate_obj,
        )
