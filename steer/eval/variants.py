"""Variant specs: the steering settings `steer eval` / `sweep` / `compare` run side by side.

A *variant* is one way of generating with a model.  Specs (``parse_variant``)::

    baseline                      no steering
    cmrm:PATH                     dataset-level CMRM with the shifts of vector file PATH
    shiftdc:PATH                  ShiftDC: only the shift's component along the file's safety
                                  direction (method shiftdc; the file needs directions)
    cmrm-sample                   sample-level CMRM: each query's own shift, measured with two
                                  extra forward passes (content-free image + text, text only)
    shiftdc-sample:PATH           sample-level ShiftDC: the query's own shift projected on the
                                  safety directions of PATH
    tga:PROJECTOR                 the model with a TGA-trained projector swapped in (own copy)
    gated:VECTORS:PROBE[:T]       steer with VECTORS (a file, or ``sample``) only on rows whose
                                  probe score exceeds T (default: the probe's threshold)
    caption-cmrm                  self-caption anchored CMRM: each image query's shift against
                                  its text twin *with the model's own caption of the image*,
                                  removed whole (steer.self_caption)
    caption-shiftdc:PATH          the same shift, removed only along PATH's safety directions;
                                  ``twin=both`` anchors to the more-refusing of the captioned
                                  query and the query alone; ``follow=F`` also makes rows whose
                                  image hides more than F x the harmful-benign gap generate as
                                  their captioned twin (steer.twin_follow)
    refusal-add:PATH[:PROBE[:T]]  add alpha x the text-only refusal direction of ShiftDC file
                                  PATH (steer.refusal_addition), only on rows whose probe
                                  score exceeds T when a PROBE is given

Each may end with ``@key=value,...`` options: ``alpha``, ``layers`` (``1-3``, ``0,2``,
``-1``), ``positions``, ``schedule``, ``method``, ``threshold``, ``null_image`` (sample
variants) and ``name`` (the label used in tables).  Options left out take the vector
file's stored defaults (for ``shiftdc-sample``: its layers and alpha, positions ``prompt``,
its sample schedule or ``incremental``); ``cmrm-sample`` defaults to alpha 1, positions
``prompt``, schedule ``incremental``, every layer; ``caption-*`` variants take the same
defaults plus ``caption_prompt`` (default: the adapter's); ``refusal-add`` defaults to alpha
1, the file's layers, positions ``prompt``, schedule ``cumulative``.  Example::

    cmrm:shift.safetensors@alpha=0.5,positions=prompt,schedule=incremental,layers=1-3

In a comma-separated *list* of variants (``parse_variants``) a piece that does not start
with a variant kind continues the previous one's ``@`` options, so options may contain
commas; ``;`` also separates variants.

:func:`build_variants` turns specs into :class:`Variant` callables on one shared loaded
model (loaded once); a ``tga`` variant gets its own model copy with the projector swapped,
so the shared one is never mutated.  A variant is called as
``variant(prompts, images) -> [{"text", "gate_score", "steered"}, ...]``; use
:func:`text_fn` for APIs that want plain strings (``steer.organism.cells.evaluate_organism``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from steer.errors import SteerInputError
from steer.stored_recipe import sample_settings

__all__ = [
    "KINDS",
    "Variant",
    "VariantSpec",
    "build_variant",
    "build_variants",
    "parse_layer_spec",
    "parse_variant",
    "parse_variants",
    "text_fn",
]

#: Variant kinds; ``cmrm-sample`` / ``shiftdc-sample`` must be tested before ``cmrm`` / ``shiftdc``.
KINDS = (
    "baseline", "cmrm-sample", "shiftdc-sample", "cmrm", "shiftdc", "tga", "gated",
    "caption-cmrm", "caption-shiftdc", "refusal-add",
)
_NEEDS_PATH = {"cmrm", "shiftdc", "shiftdc-sample", "tga", "gated", "caption-shiftdc", "refusal-add"}
#: content-aware kinds (self-caption anchoring, gated refusal addition)
CONTENT_KINDS = ("caption-cmrm", "caption-shiftdc", "refusal-add")
OPTION_KEYS = (
    "alpha", "layers", "positions", "schedule", "method", "threshold", "null_image", "caption_prompt", "twin", "follow",
    "name",
)
_KIND_RE = re.compile(
    r"^\s*(baseline|cmrm-sample|shiftdc-sample|cmrm|shiftdc|tga|gated|caption-cmrm|caption-shiftdc|refusal-add)"
    r"\s*(?=$|[:@])",
    re.I,
)


def parse_layer_spec(spec: str | None) -> list[int] | None:
    """``'1-3'``, ``'0,2'``, ``'1-3,7'``, ``'-1'`` -> layer list (``None``/``''``/``'file'`` = default).

    Negative indices count from the end and are resolved against the model later.
    """
    if spec is None:
        return None
    text = str(spec).strip()
    if text in ("", "file", "all"):
        return None
    out: list[int] = []
    for part in re.split(r"[,+\s]+", text):
        if not part:
            continue
        try:
            if "-" in part[1:]:
                cut = part.index("-", 1)
                lo, hi = int(part[:cut]), int(part[cut + 1 :])
                if hi < lo:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise SteerInputError(f"cannot read layers {spec!r}: use e.g. '1-3', '0,2', '-1'") from None
    seen: list[int] = []
    for layer in out:
        if layer not in seen:
            seen.append(layer)
    return sorted(seen) if all(l >= 0 for l in seen) else seen


def _format_layers(layers: Sequence[int] | None) -> str:
    """Compact text for a layer list: [1,2,3,7] -> '1-3,7'."""
    if layers is None:
        return "file"
    items = list(layers)
    if not items or any(l < 0 for l in items) or items != sorted(items):
        return ",".join(str(l) for l in items)
    runs: list[str] = []
    start = prev = items[0]
    for layer in items[1:] + [None]:  # type: ignore[list-item]
        if layer is not None and layer == prev + 1:
            prev = layer
            continue
        runs.append(str(start) if start == prev else f"{start}-{prev}")
        if layer is not None:
            start = prev = layer
    return ",".join(runs)


@dataclass(frozen=True)
class VariantSpec:
    """A parsed variant spec (see the module docstring)."""

    kind: str
    path: str | None = None
    probe: str | None = None
    alpha: float | None = None
    layers: tuple[int, ...] | None = None
    positions: str | None = None
    schedule: str | None = None
    method: str | None = None
    threshold: float | None = None
    null_image: str | None = None
    caption_prompt: str | None = None
    twin: str | None = None
    follow: float | None = None
    name: str | None = None
    text: str = ""

    @property
    def label(self) -> str:
        """Short display name: the ``name`` option, else kind + file stem + options."""
        if self.name:
            return self.name
        base = self.kind
        if self.kind == "gated" or (self.kind == "refusal-add" and self.probe is not None):
            vec = "sample" if self.path == "sample" else Path(str(self.path)).stem
            base += f":{vec}:{Path(str(self.probe)).stem}"
            if self.threshold is not None:
                base += f":{self.threshold:g}"
        elif self.path is not None:
            base += f":{Path(self.path).stem}"
        opts = []
        if self.alpha is not None:
            opts.append(f"alpha={self.alpha:g}")
        if self.layers is not None:
            opts.append(f"layers={_format_layers(self.layers)}")
        for key in ("positions", "schedule", "method", "null_image", "caption_prompt", "twin"):
            value = getattr(self, key)
            if value is not None:
                opts.append(f"{key}={value}")
        if self.kind not in ("gated", "refusal-add") and self.threshold is not None:
            opts.append(f"threshold={self.threshold:g}")
        if self.follow is not None:
            opts.append(f"follow={self.follow:g}")
        return base + ("@" + ",".join(opts) if opts else "")

    def with_options(self, **changes: Any) -> "VariantSpec":
        """A copy with some options replaced (used by the sweep)."""
        if "layers" in changes and changes["layers"] is not None:
            changes["layers"] = tuple(int(l) for l in changes["layers"])
        return replace(self, **changes)


def _parse_options(text: str, spec: str) -> dict[str, Any]:
    opts: dict[str, str] = {}
    last: str | None = None
    for piece in text.split(","):
        if "=" in piece:
            key, value = piece.split("=", 1)
            key = key.strip().lower().replace("-", "_")
            if key not in OPTION_KEYS:
                raise SteerInputError(
                    f"variant {spec!r}: unknown option {key!r}; options: {', '.join(OPTION_KEYS)}"
                )
            opts[key] = value.strip()
            last = key
        elif piece.strip():
            if last is None:
                raise SteerInputError(f"variant {spec!r}: option {piece!r} is not key=value")
            opts[last] += "," + piece.strip()  # e.g. layers=1,3
    out: dict[str, Any] = {}
    for key, value in opts.items():
        if key == "alpha":
            from steer.steering import check_alpha

            out[key] = check_alpha(value)
        elif key == "threshold":
            from steer.gate import check_threshold

            out[key] = check_threshold(value)
        elif key == "layers":
            layers = parse_layer_spec(value)
            out[key] = None if layers is None else tuple(layers)
        elif key == "positions":
            from steer.positions import check_positions

            out[key] = check_positions(value)
        elif key == "schedule":
            from steer.schedule import SCHEDULES

            if value not in SCHEDULES:
                raise SteerInputError(f"variant {spec!r}: unknown schedule {value!r}; one of {', '.join(SCHEDULES)}")
            out[key] = value
        elif key == "follow":
            from steer.twin_follow import check_follow

            out[key] = check_follow(value)
        elif key == "twin":
            if value not in ("caption", "both"):
                raise SteerInputError(f"variant {spec!r}: twin must be caption or both, got {value!r}")
            out[key] = value
        elif key == "method":
            if value not in ("cmrm", "shiftdc"):
                raise SteerInputError(f"variant {spec!r}: method must be cmrm or shiftdc, got {value!r}")
            out[key] = value
        else:
            out[key] = value
    return out


def parse_variant(spec: str) -> VariantSpec:
    """Parse one variant spec (see the module docstring); errors name the spec and the fix."""
    text = str(spec).strip()
    match = _KIND_RE.match(text)
    if match is None:
        raise SteerInputError(
            f"unknown variant {spec!r}; use baseline, cmrm:VECTORS, shiftdc:VECTORS, cmrm-sample, "
            "shiftdc-sample:VECTORS, tga:PROJECTOR, gated:VECTORS:PROBE[:THRESHOLD], caption-cmrm, "
            "caption-shiftdc:VECTORS or refusal-add:VECTORS[:PROBE[:THRESHOLD]], optionally with "
            "@alpha=..,layers=..,positions=..,schedule=.."
        )
    kind = match.group(1).lower()
    rest = text[match.end() :]
    body, opts_text = (rest.split("@", 1) + [""])[:2] if "@" in rest else (rest, "")
    path_part = body[1:].strip() if body.startswith(":") else body.strip()
    opts = _parse_options(opts_text, text) if opts_text.strip() else {}
    fields: dict[str, Any] = {"kind": kind, "text": text}
    if kind in _NEEDS_PATH and not path_part:
        need = {"tga": "PROJECTOR", "gated": "VECTORS:PROBE[:THRESHOLD]"}.get(kind, "VECTORS")
        raise SteerInputError(f"variant {text!r} needs a file: {kind}:{need}")
    if kind in ("baseline", "cmrm-sample", "caption-cmrm") and path_part:
        raise SteerInputError(f"variant {text!r}: {kind} takes no file (got {path_part!r})")
    if kind == "gated" or (kind == "refusal-add" and ":" in path_part):
        parts = path_part.split(":")
        threshold = None
        if len(parts) >= 3:
            try:
                threshold = float(parts[-1])
            except ValueError:
                threshold = None
            else:
                parts = parts[:-1]
        if len(parts) != 2 or not all(p.strip() for p in parts):
            if kind == "refusal-add":
                raise SteerInputError(f"variant {text!r}: use refusal-add:VECTORS[:PROBE[:THRESHOLD]]")
            raise SteerInputError(f"variant {text!r}: use gated:VECTORS:PROBE[:THRESHOLD] (VECTORS may be 'sample')")
        fields["path"], fields["probe"] = parts[0].strip(), parts[1].strip()
        if threshold is not None:
            from steer.gate import check_threshold

            fields["threshold"] = check_threshold(threshold)
    elif path_part:
        fields["path"] = path_part
    if kind == "baseline" and any(k != "name" for k in opts):
        raise SteerInputError(f"variant {text!r}: baseline takes no steering options (only name=)")
    if kind in ("cmrm", "shiftdc") and "method" in opts and opts["method"] != kind:
        raise SteerInputError(f"variant {text!r}: kind {kind} conflicts with method={opts['method']}")
    if "threshold" in opts and kind != "gated" and not (kind == "refusal-add" and "probe" in fields):
        raise SteerInputError(f"variant {text!r}: threshold= is for gated variants (gated:..., refusal-add:V:PROBE)")
    if "caption_prompt" in opts and kind not in ("caption-cmrm", "caption-shiftdc"):
        raise SteerInputError(f"variant {text!r}: caption_prompt= is for caption-cmrm / caption-shiftdc")
    if "twin" in opts and kind != "caption-shiftdc":
        raise SteerInputError(f"variant {text!r}: twin= is for caption-shiftdc")
    if "follow" in opts and kind != "caption-shiftdc":
        raise SteerInputError(f"variant {text!r}: follow= is for caption-shiftdc")
    if "method" in opts and kind in CONTENT_KINDS:
        raise SteerInputError(f"variant {text!r}: {kind} fixes its method; drop method=")
    if "threshold" in opts and "threshold" in fields:
        raise SteerInputError(f"variant {text!r}: threshold given twice")
    fields.update(opts)
    return VariantSpec(**fields)


def parse_variants(text: str | Sequence[str]) -> list[VariantSpec]:
    """Parse a comma- (or ``;``-) separated list of variant specs; pieces that do not start with
    a variant kind continue the previous spec (options with commas)."""
    pieces: list[str] = []
    raw = [text] if isinstance(text, str) else list(text)
    for chunk in raw:
        for group in str(chunk).split(";"):
            for piece in group.split(","):
                if not piece.strip():
                    continue
                # a piece continues the previous spec only inside its @options (alpha=1,layers=1-3);
                # anything else is a spec of its own, so a mistyped kind is reported by name
                if _KIND_RE.match(piece) or not pieces or "@" not in pieces[-1]:
                    pieces.append(piece.strip())
                else:
                    pieces[-1] += "," + piece.strip()
    if not pieces:
        raise SteerInputError("no variants given: e.g. --variants baseline,cmrm:shift.safetensors")
    return [parse_variant(p) for p in pieces]


# --------------------------------------------------------------------------------------
# Callables
# --------------------------------------------------------------------------------------


@dataclass
class Variant:
    """A spec bound to a loaded :class:`~steer.model.SteeredModel`; call it on a batch."""

    spec: VariantSpec
    sm: Any
    max_new_tokens: int = 64
    allow_other_weights: bool = False
    label: str = ""
    _settings: dict[str, Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.label = self.label or self.spec.label

    # ---------------------------------------------------------------- generation
    def __call__(self, prompts: Sequence[str], images: Sequence[Any] | None = None) -> list[dict]:
        prompts = list(prompts)
        images = [None] * len(prompts) if images is None else list(images)
        s = self.spec
        common = dict(images=images, max_new_tokens=self.max_new_tokens, return_details=True)
        if s.kind in ("baseline", "tga"):
            return self.sm.generate(prompts, **common)
        layers = None if s.layers is None else list(s.layers)
        if s.kind == "caption-shiftdc" and s.follow is not None:
            return self.sm.self_caption_generate(
                prompts, images, vectors=s.path, follow=s.follow, layers=layers, alpha=s.alpha, positions=s.positions,
                schedule=s.schedule, caption_prompt=s.caption_prompt, twin=s.twin or "caption",
                max_new_tokens=self.max_new_tokens, return_details=True,
            )
        if s.kind in CONTENT_KINDS:
            return self.sm.generate(prompts, steer=self._content_steering(prompts, images, layers), **common)
        sample_file = s.kind == "shiftdc-sample"
        positions, schedule = s.positions, s.schedule
        if sample_file:  # a file stored at sample level brings its own positions and schedule
            positions, schedule = sample_settings(self._file_meta(), positions, schedule)
        if s.null_image is not None and s.kind in ("cmrm-sample", "shiftdc-sample"):
            steering = self.sm.sample_steering(
                prompts,
                vectors=s.path if sample_file else None,
                layers=layers,
                alpha=s.alpha,
                positions=positions,
                schedule=schedule,
                method="shiftdc" if sample_file else None,
                null_image=s.null_image,
                images=images,
            )
            return self.sm.generate(prompts, steer=steering, **common)
        if s.kind == "cmrm-sample" or (s.kind == "gated" and s.path == "sample"):
            steer: Any = "sample"
            method = None
        else:
            steer = s.path
            method = s.method or {"cmrm": "cmrm", "shiftdc": "shiftdc", "shiftdc-sample": "shiftdc"}.get(s.kind)
        extra: dict[str, Any] = {"level": "sample"} if sample_file else {}
        if s.kind == "gated":
            extra.update(gate=s.probe, threshold=s.threshold)
        return self.sm.generate(
            prompts,
            steer=steer,
            alpha=s.alpha,
            layers=layers,
            positions=positions,
            schedule=schedule,
            method=method,
            allow_other_weights=self.allow_other_weights,
            **extra,
            **common,
        )

    def _content_steering(self, prompts: list[str], images: list[Any], layers: list[int] | None) -> Any:
        """The per-batch Steering of a self-caption or refusal-addition variant."""
        s = self.spec
        if s.kind == "refusal-add":
            return self.sm.refusal_steering(
                s.path, gate=s.probe, threshold=s.threshold, alpha=1.0 if s.alpha is None else s.alpha,
                layers=layers, positions=s.positions, schedule=s.schedule,
            )
        return self.sm.self_caption_steering(
            prompts, images, vectors=s.path, layers=layers, alpha=s.alpha, positions=s.positions, schedule=s.schedule,
            method="shiftdc" if s.kind == "caption-shiftdc" else "cmrm", caption_prompt=s.caption_prompt,
            twin=s.twin or "caption",
        )

    # ---------------------------------------------------------------- description
    def settings(self) -> dict[str, Any]:
        """The effective settings (explicit options, else the vector file's / sample defaults):
        kind, method, alpha, layers, positions, schedule, and the files used."""
        if self._settings is not None:
            return dict(self._settings)
        s = self.spec
        out: dict[str, Any] = {"variant": self.label, "kind": s.kind}
        if s.kind in ("baseline", "tga"):
            out.update(method="none", alpha=None, layers=None, positions=None, schedule=None)
            if s.kind == "tga":
                out["projector"] = s.path
        elif s.kind == "cmrm-sample" or (s.kind == "gated" and s.path == "sample"):
            out.update(
                method="cmrm",
                level="sample",
                alpha=1.0 if s.alpha is None else s.alpha,
                layers=_format_layers(s.layers) if s.layers is not None else "all",
                positions=s.positions or "prompt",
                schedule=s.schedule or "incremental",
                null_image=s.null_image or "blank",
            )
        elif s.kind in CONTENT_KINDS:
            out.update(self._content_settings())
        elif s.kind == "shiftdc-sample":
            meta = self._file_meta()
            positions, schedule = sample_settings(meta, s.positions, s.schedule)
            out.update(
                method="shiftdc",
                level="sample",
                alpha=s.alpha if s.alpha is not None else meta.get("default_alpha", 1.0),
                layers=_format_layers(s.layers if s.layers is not None else meta.get("layers")),
                positions=positions or "prompt",
                schedule=schedule or meta.get("sample_schedule", "incremental"),
                null_image=s.null_image or meta.get("null_image", "blank"),
                vectors=s.path,
            )
        else:
            meta = self._file_meta()
            out.update(
                method=s.method or (s.kind if s.kind in ("cmrm", "shiftdc") else meta.get("method")),
                level="dataset",
                alpha=s.alpha if s.alpha is not None else meta.get("default_alpha"),
                layers=_format_layers(s.layers if s.layers is not None else meta.get("layers")),
                positions=s.positions or meta.get("positions"),
                schedule=s.schedule or meta.get("schedule"),
                vectors=s.path,
            )
        if s.kind == "gated":
            out["probe"] = s.probe
            out["threshold"] = s.threshold if s.threshold is not None else "probe default"
            out["vectors"] = s.path
        if out.get("vectors") and s.kind != "gated":  # the file's named recipe, unless this variant departs from it
            meta = self._file_meta()
            stored = {"alpha": meta.get("default_alpha"), "positions": meta.get("positions"),
                      "schedule": meta.get("schedule"), "level": meta.get("level", "dataset")}
            same = all(out.get(k) == v for k, v in stored.items()) and s.layers is None and s.method is None
            out["recipe"] = meta.get("recipe", "custom") if same else "custom"
        self._settings = out
        return dict(out)

    def _content_settings(self) -> dict[str, Any]:
        s = self.spec
        meta = self._file_meta() if s.path is not None else {}
        layers = s.layers if s.layers is not None else meta.get("layers")
        if s.kind == "refusal-add":
            return dict(
                method="refusal-add", level="dataset", alpha=1.0 if s.alpha is None else s.alpha,
                layers=_format_layers(layers), positions=s.positions or "prompt", schedule=s.schedule or "cumulative",
                vectors=s.path, probe=s.probe,
                threshold=None if s.probe is None else (s.threshold if s.threshold is not None else "probe default"),
            )
        caption_prompt = s.caption_prompt
        if caption_prompt is None:
            caption_prompt = getattr(getattr(self.sm, "adapter", None), "caption_prompt", None)
        return dict(
            method="shiftdc" if s.kind == "caption-shiftdc" else "cmrm", level="self-caption",
            alpha=s.alpha if s.alpha is not None else meta.get("default_alpha", 1.0),
            layers=_format_layers(layers) if layers is not None else "all", positions=s.positions or "prompt",
            schedule=s.schedule or meta.get("sample_schedule", "incremental"), caption_prompt=caption_prompt,
            twin=s.twin or "caption", vectors=s.path, **({} if s.follow is None else {"follow": s.follow}),
        )

    def _file_meta(self) -> dict[str, Any]:
        try:
            from steer.vectors import ShiftVectors

            return ShiftVectors.load(self.spec.path).metadata
        except Exception:  # noqa: BLE001 - settings are descriptive; generation reports errors
            return {}

    def describe(self) -> str:
        """One line: label and effective settings (printed in every run summary)."""
        st = self.settings()
        keys = ("recipe", "method", "level", "alpha", "layers", "positions", "schedule", "threshold")
        parts = [f"{k}={st[k]}" for k in keys if st.get(k) is not None]
        return f"{self.label}: " + (" ".join(parts) if parts else "unsteered")

    def check(self) -> None:
        """Fail early, before any generation, on a missing file or a model mismatch."""
        s = self.spec
        for p, what in ((s.path if s.path != "sample" else None, "vector file"), (s.probe, "probe file")):
            if p is not None and s.kind != "tga" and not Path(p).exists():
                raise SteerInputError(f"variant {self.label!r}: {what} not found: {p}")
        if s.kind in ("cmrm", "shiftdc", "shiftdc-sample", "caption-shiftdc", "refusal-add") or (
            s.kind == "gated" and s.path != "sample"
        ):
            from steer.vectors import ShiftVectors

            vecs = ShiftVectors.load(s.path)
            vecs.check_model(self.sm.adapter, allow_other_weights=self.allow_other_weights)
            wants_dirs = (s.method or s.kind) in ("shiftdc", "shiftdc-sample", "caption-shiftdc", "refusal-add")
            if wants_dirs and vecs.directions is None:
                raise SteerInputError(
                    f"variant {self.label!r}: {s.path} has no safety directions; ShiftDC needs a file from "
                    "`steer calibrate --method shiftdc`"
                )


def text_fn(variant: Callable[..., list]) -> Callable[[Sequence[str], Sequence[Any]], list[str]]:
    """Wrap a variant (dict rows) as ``generate_fn(prompts, images) -> list[str]``."""

    def generate(prompts: Sequence[str], images: Sequence[Any]) -> list[str]:
        return [r["text"] if isinstance(r, dict) else str(r) for r in variant(prompts, images)]

    return generate


def build_variant(
    spec: VariantSpec | str,
    sm: Any,
    *,
    model: str | os.PathLike | None = None,
    device: str | None = None,
    dtype: Any = None,
    device_map: str | None = None,
    max_new_tokens: int = 64,
    allow_other_weights: bool = False,
    cache: dict | None = None,
    check: bool = True,
) -> Variant:
    """Bind a spec to the shared model ``sm``; a ``tga`` spec loads its own copy from ``model``
    (default: ``sm``'s ``name_or_path``) with the projector swapped in."""
    spec = parse_variant(spec) if isinstance(spec, str) else spec
    target = sm
    if spec.kind == "tga":
        key = ("tga", str(Path(spec.path).resolve()) if Path(spec.path).exists() else spec.path)
        if cache is not None and key in cache:
            target = cache[key]
        else:
            if not Path(spec.path).exists():
                raise SteerInputError(f"variant {spec.label!r}: projector file not found: {spec.path}")
            source = model if model is not None else getattr(getattr(sm, "model", None), "name_or_path", None)
            if not source:
                raise SteerInputError("a tga variant needs the model path to load its own copy (model=...)")
            from steer.model import SteeredModel

            try:
                target = SteeredModel.from_pretrained(
                    source, device=device, dtype=dtype, device_map=device_map, projector=spec.path,
                    processor_kwargs=getattr(getattr(sm, "adapter", None), "processor_kwargs", None),
                    allow_other_processor_kwargs=getattr(getattr(sm, "adapter", None), "allow_other_processor_kwargs", False),
                )
            except ModuleNotFoundError as err:
                raise SteerInputError(f"TGA projectors are not supported by this install ({err})") from None
            if cache is not None:
                cache[key] = target
    variant = Variant(spec, target, max_new_tokens=max_new_tokens, allow_other_weights=allow_other_weights)
    if check:
        variant.check()
    return variant


def build_variants(
    specs: str | Sequence[str | VariantSpec],
    model: Any,
    *,
    device: str | None = None,
    dtype: Any = None,
    device_map: str | None = None,
    max_new_tokens: int = 64,
    allow_other_weights: bool = False,
    model_path: str | os.PathLike | None = None,
) -> list[Variant]:
    """Specs -> variants on one base model, loaded once.

    ``model`` is a loaded :class:`~steer.model.SteeredModel` or a hub id / local folder;
    ``model_path`` is where ``tga`` variants load their own copy from (default: ``model``
    when it is a path, else the loaded model's ``name_or_path``).
    Labels are made unique (``#2``, ``#3`` appended) so tables have one row per variant.
    """
    if isinstance(specs, str):
        parsed = parse_variants(specs)
    else:
        parsed = [parse_variant(s) if isinstance(s, str) else s for s in specs]
    if isinstance(model, (str, os.PathLike)):
        from steer.model import SteeredModel

        path = model
        sm = SteeredModel.from_pretrained(model, device=device, dtype=dtype, device_map=device_map)
    else:
        sm = model
        path = model_path or getattr(getattr(sm, "model", None), "name_or_path", None)
    cache: dict = {}
    out: list[Variant] = []
    seen: dict[str, int] = {}
    for spec in parsed:
        v = build_variant(
            spec, sm, model=path, device=device, dtype=dtype, device_map=device_map, max_new_tokens=max_new_tokens,
            allow_other_weights=allow_other_weights, cache=cache,
        )
        n = seen.get(v.label, 0) + 1
        seen[v.label] = n
        if n > 1:
            v.label = f"{v.label}#{n}"
        out.append(v)
    return out
