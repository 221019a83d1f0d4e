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

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from steer.adapters import ModelAdapter, get_adapter
from steer.errors import SteerInputError
from steer.images import load_image
from steer.sample_shift import query_shifts
from steer.schedule import apply_schedule
from steer.steering import Steering, check_alpha, normalize_layers
from steer.vectors import ShiftVectors, as_vectors

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
    device_map: str | None = None,
) -> tuple[torch.nn.Module, Any]:
    """Load exactly as a hub user would: ``AutoConfig`` decides image-text-to-text vs causal LM."""
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForImageTextToText,
        AutoProcessor,
        AutoTokenizer,
    )
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    source = str(model_id_or_path)
    if not Path(source).exists() and not _HUB_ID.fullmatch(source):
        raise SteerInputError(f"model path not found: {source} (give a local model folder or a hub id such as org/name)")
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SteerInputError(
            f"cannot load model {source!r}: {first}. Give a local model folder (save_pretrained format), "
            "or a hub id on a machine with hub access"
        ) from None
    kwargs: dict[str, Any] = {}
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
    try:
        if config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
            model = AutoModelForImageTextToText.from_pretrained(source, **kwargs)
            processor = AutoProcessor.from_pretrained(source)
        else:
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
            processor = AutoTokenizer.from_pretrained(source)
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
        device_map: str | None = None,
        projector: str | os.PathLike | None = None,
        backend: str = "native",
    ) -> "SteeredModel":
        """Load a hub id or local folder; ``projector`` swaps in a TGA-trained projector
        artifact (``steer train-tga``) after loading -- the base model files are never touched."""
        model, processor = load_model_and_processor(model_id_or_path, device=device, dtype=dtype, device_map=device_map)
        sm = cls(model, processor, backend=backend)
        if projector is not None:
            sm.load_projector(projector)
        return sm

    def load_projector(self, path: str | os.PathLike) -> dict:
        """Swap the multimodal projector's weights for a TGA artifact's (in memory only)."""
        from steer.projector import load_projector

        return load_projector(self, path)

    # ------------------------------------------------------------------ inputs
    def build_inputs(self, prompts: Sequence[str], images: Sequence[Any] | None = None) -> dict[str, torch.Tensor]:
        imgs = None if images is None else [None if im is None else load_image(im) for im in images]
        if imgs is not None and any(im is not None for im in imgs) and not self.adapter.supports_images:
            raise SteerInputError(
                f"{self.adapter.family} model {self.adapter.fingerprint()['name_or_path']!r} takes no images; "
                "drop the image or load a vision-language model"
            )
        return self.adapter.build_inputs(list(prompts), imgs)

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
            alpha=check_alpha(meta.get("default_alpha", 1.0) if alpha is None else alpha),
            op=op,
            positions=positions or meta.get("positions", "after_image"),
            gate=gate,
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
    ) -> Steering:
        """Sample-level CMRM, or sample-level ShiftDC, for one batch of prompts.

        Measures each query's own shift ``h_l(content-free image + q) - h_l(q)`` at the
        last prompt token (one extra forward over 2B rows: about 2x the batch's prefill
        compute, before generation) and steers each row with its own shift. With a
        ``vectors`` file, its layers, defaults and -- for ShiftDC files -- safety
        directions are used: only the shift's component along ``v_l`` is removed
        (arXiv 2502.13095). Without one: CMRM on every layer (or ``layers``).
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
        shifts = query_shifts(self.adapter, list(prompts), chosen, null_image=null_image or meta.get("null_image", "blank"))
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
            alpha=check_alpha(meta.get("default_alpha", 1.0) if alpha is None else alpha),
            op="subtract",
            positions=positions or "prompt",
            gate=gate,
        )

    def _layers(self, layers: Sequence[int] | None) -> list[int] | None:
        """Chosen layers as sorted 0-based indices (None = the vector file's own)."""
        return None if layers is None else normalize_layers(layers, self.adapter.num_layers)

    # ------------------------------------------------------------------ generation
    @torch.inference_mode()
    def generate(
        self,
        prompts: str | Sequence[str],
        image: Any = None,
        *,
        images: Sequence[Any] | None = None,
        steer: ShiftVectors | str | os.PathLike | dict | Steering | None = None,
        alpha: float | None = None,
        layers: Sequence[int] | None = None,
        positions: str | None = None,
        schedule: str | None = None,
        method: str | None = None,
        level: str = "dataset",
        max_new_tokens: int = 64,
        batch_size: int | None = None,
        use_cache: bool = True,
        allow_other_weights: bool = False,
        gate: Any = None,
        threshold: float | None = None,
        return_details: bool = False,
    ) -> str | list[str] | list[dict]:
        """Greedy generation; a string for one prompt, a list for a list.

        ``steer``: a vector file / :class:`ShiftVectors` (dataset-level), ``"sample"``
        (sample-level CMRM on the query itself), a ready :class:`Steering`, or None.
        ``level="sample"`` with a vector file measures each query's own shift on the file's
        layers (ShiftDC files: projected on their safety directions) instead of using the
        stored dataset-level shift.
        ``gate``: a probe file / ``ProbeGate`` (``steer probe``): steer only rows whose risk
        score exceeds ``threshold`` (default: the probe's), decided in the same prefill.
        ``return_details``: a dict per row with ``text``, ``gate_score``, ``steered``.
        """
        single = isinstance(prompts, str)
        prompt_list = [prompts] if single else list(prompts)
        if images is None:
            images = [image] * len(prompt_list) if image is not None else [None] * len(prompt_list)
        if len(images) != len(prompt_list):
            raise SteerInputError(f"got {len(prompt_list)} prompts but {len(images)} images")
        if level not in ("dataset", "sample"):
            raise SteerInputError(f"unknown level {level!r}; choose dataset or sample")
        if level == "sample" and isinstance(steer, str) and steer == "sample":
            level = "dataset"  # steer="sample" already means sample-level CMRM
        loaded = [None if im is None else load_image(im) for im in images]
        gate_obj = self._gate_for(gate, threshold)
        size = batch_size or len(prompt_list)
        answers: list[Any] = []
        for start in range(0, len(prompt_list), size):
            batch_p = prompt_list[start : start + size]
            batch_i = loaded[start : start + size]
            answers.extend(
                self._generate_batch(
                    batch_p, batch_i, steer, alpha, layers, positions, schedule, method, max_new_tokens, use_cache,
                    allow_other_weights, gate_obj, return_details, level,
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
        allow_other_weights, gate=None, return_details=False, level="dataset",
    ) -> list[Any]:
        inputs = self.build_inputs(prompts, images)
        steering = self._steering_for(
            steer, prompts, alpha, layers, positions, schedule, method, allow_other_weights, gate, level
        )
        if gate is not None and steering is None:
            raise SteerInputError("a gate decides where to steer: give --steer vectors too")
        gen_kwargs = dict(max_new_tokens=max_new_tokens, do_sample=False, use_cache=use_cache)
        if steering is None:
            out = self.model.generate(**inputs, **gen_kwargs)
        elif self.backend == "nnsight":
            from steer.nnsight_backend import run_generate

            out = run_generate(self, inputs, steering, max_new_tokens=max_new_tokens, use_cache=use_cache)
        else:
            with self._applied(steering), steering.prompt(inputs["input_ids"], inputs.get("attention_mask")):
                out = self.model.generate(**inputs, **gen_kwargs)
        new_tokens = out[:, inputs["input_ids"].shape[1] :]
        texts = [t.strip() for t in self.adapter.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
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
        self, steer, prompts, alpha, layers, positions, schedule, method, allow_other_weights, gate=None, level="dataset"
    ):
        if steer is None:
            return None
        if isinstance(steer, Steering):
            if gate is not None:
                raise SteerInputError("give the gate to the Steering itself, not to generate, when passing a Steering")
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
        from steer.self_caption import anchored_shifts, described_prompts, most_refusing_along, self_captions

        prompt_list = list(prompts)
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
        per_layer = apply_schedule(shifts, schedule or meta.get("sample_schedule", "incremental"))
        return Steering(
            self.adapter,
            per_layer,
            alpha=check_alpha(meta.get("default_alpha", 1.0) if alpha is None else alpha),
            op="subtract",
            positions=positions or "prompt",
        )

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
