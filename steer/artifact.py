"""The one file format of every `steer` artifact: safetensors tensors + a JSON header.

Vector files (:mod:`steer.vectors`), probe files (:mod:`steer.gate`) and TGA projector
artifacts (:mod:`steer.projector`) share it: tensors in a ``safetensors`` file whose
header metadata holds one key, ``steer``, a JSON object with at least ``kind``,
``format_version``, ``toolkit_version``, ``created`` and ``model`` (the fingerprint of
the model it was made on, :meth:`steer.adapters.base.ModelAdapter.fingerprint`).
Every reader goes through :func:`read_artifact` and every writer through
:func:`write_artifact`, so all kinds (:data:`ARTIFACT_KINDS`) share one set of checks and
one wording: a wrong, missing, damaged or too-new file is refused in one line that names
the file, the kind found and the kind expected. Writes are atomic; model checks
(:func:`check_fingerprint`) name both models and the command that makes a fitting artifact.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from steer.adapters.base import ModelAdapter
from steer.atomic import atomic_path
from steer.errors import ModelMismatchError, SteerInputError
from steer.processor_options import check_recorded_options
from steer.version import __version__

#: fingerprint keys that must match for an artifact to fit a model at all
ARCH_KEYS = ("model_type", "hidden_size", "num_layers")


@dataclass(frozen=True)
class ArtifactKind:
    """What steer knows of one artifact kind, so every reader says the same things about it.

    ``noun`` names it in messages ("vector file"), ``make_with`` is the command that makes
    one, and ``format_version`` is the newest version of its format this steer reads (and
    the one it writes): a newer file comes from a newer steer and is refused, not misread.
    """

    kind: str
    noun: str
    make_with: str
    format_version: int


#: every artifact kind, by the ``kind`` its files record
ARTIFACT_KINDS: dict[str, ArtifactKind] = {
    spec.kind: spec
    for spec in (
        ArtifactKind("vectors", "vector file", "steer calibrate", 1),
        ArtifactKind("probe", "probe file", "steer probe", 1),
        ArtifactKind("tga_projector", "TGA projector artifact", "steer train-tga", 1),
    )
}
#: the kind of a file that records none: the first vector files were written before ``kind`` was
KIND_WHEN_UNRECORDED = "vectors"


def artifact_kind(kind: str) -> ArtifactKind:
    """The :class:`ArtifactKind` of ``kind``; a ``ValueError`` for a kind steer does not define (a bug, not bad input)."""
    try:
        return ARTIFACT_KINDS[kind]
    except (KeyError, TypeError):
        raise ValueError(f"unknown artifact kind {kind!r}; steer defines {', '.join(ARTIFACT_KINDS)}") from None


def write_artifact(
    path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any], kind: str
) -> dict[str, Any]:
    """Atomically write ``tensors`` + ``meta`` as a ``kind`` artifact; returns the metadata written.

    ``kind``, the kind's current ``format_version``, the toolkit version and (unless ``meta``
    has one) the creation time are added to ``meta``.
    """
    spec = artifact_kind(kind)
    full = dict(meta, kind=spec.kind, format_version=spec.format_version, toolkit_version=__version__)
    full.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    with atomic_path(Path(path)) as tmp:
        save_file(
            {k: v.contiguous() for k, v in tensors.items()},
            str(tmp),
            metadata={"steer": json.dumps(full, sort_keys=True)},
        )
    return full


def check_artifact_path(path: str | os.PathLike, kind: str) -> Path:
    """``path`` as a :class:`Path` if a file is there, else :func:`read_artifact`'s refusal.

    For callers that check a path early, before minutes of model loading, and want the
    same words the reader would use later.
    """
    spec = artifact_kind(kind)
    target = Path(path)
    if not target.exists():
        raise SteerInputError(f"{spec.noun} not found: {target} (make one with `{spec.make_with}`)")
    if target.is_dir():
        raise SteerInputError(f"{spec.noun} path is a folder, not a file: {target}")
    return target


def read_artifact(path: str | os.PathLike, expected_kind: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, metadata) of a ``expected_kind`` artifact file, or a one-line :class:`SteerInputError`.

    Refused, each with a message naming the file: a missing file or a folder, a file that
    is not safetensors (or is truncated), one without steer metadata or whose metadata is
    not a JSON object, a file of another kind (the message names the kind found and the
    kind expected), a format version newer than this steer reads, NaN/inf tensor values.
    What is inside (tensor names, metadata fields) is the caller's to check.
    """
    spec = artifact_kind(expected_kind)
    target = check_artifact_path(path, expected_kind)
    try:
        with safe_open(str(target), framework="pt") as fh:
            raw = (fh.metadata() or {}).get("steer")
            tensors = {key: fh.get_tensor(key) for key in fh.keys()}
    except Exception as err:  # safetensors raises its own error types
        raise SteerInputError(
            f"{target} is not a readable safetensors {spec.noun} (not safetensors, or truncated): {err}"
        ) from None
    if raw is None:
        raise SteerInputError(f"{target} has no steer metadata: it is a safetensors file but not a steer {spec.noun}")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as err:
        raise SteerInputError(f"{target}: the steer metadata is not JSON ({err}); the file is damaged") from None
    if not isinstance(meta, dict):
        raise SteerInputError(f"{target}: the steer metadata is a JSON {type(meta).__name__}, not an object; the file is damaged")
    _check_kind(target, meta, spec)
    _check_format_version(target, meta, spec)
    for key, tensor in tensors.items():  # one NaN would silently turn every steered answer into noise
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise SteerInputError(
                f"{target}: tensor {key!r} holds NaN or infinite values; the {spec.noun} is damaged: make it again "
                f"with `{spec.make_with}`"
            )
    return tensors, meta


def _check_kind(path: Path, meta: Mapping[str, Any], spec: ArtifactKind) -> None:
    """Refuse a file of another kind, naming the file, the kind it is and the kind wanted."""
    found = meta["kind"] if "kind" in meta else KIND_WHEN_UNRECORDED
    if found == spec.kind:
        return
    known = ARTIFACT_KINDS.get(found) if isinstance(found, str) else None
    what = f"a {known.noun}" if known is not None else "a steer file of an unknown kind"
    how = f"kind {found!r}" if "kind" in meta else f"no kind recorded, so read as {found!r}"
    raise SteerInputError(
        f"{path} is {what} ({how}), not a {spec.noun} (kind {spec.kind!r}); give a {spec.noun} made with "
        f"`{spec.make_with}`"
    )


def _check_format_version(path: Path, meta: Mapping[str, Any], spec: ArtifactKind) -> None:
    """Refuse a format version that is not a whole number >= 1, or that is newer than this steer reads."""
    version = meta.get("format_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise SteerInputError(f"{path}: format_version {version!r} is not a version number; the file is damaged")
    if version > spec.format_version:
        raise SteerInputError(
            f"{path} is a {spec.noun} of format version {version}, newer than this steer ({__version__}) reads "
            f"(up to {spec.format_version}): upgrade steer"
        )


def check_meta_types(path: str | os.PathLike, meta: Mapping[str, Any], expected: Mapping[str, tuple[type, ...]]) -> None:
    """Refuse metadata fields of the wrong JSON type (a tampered file), naming the field."""
    names = {str: "a string", int: "a whole number", float: "a number", dict: "an object", list: "a list", type(None): "null"}
    for key, types in expected.items():
        if key not in meta:
            continue
        value = meta[key]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            want = " or ".join(names.get(t, t.__name__) for t in types)
            raise SteerInputError(f"{path}: metadata field {key!r} is {value!r}, expected {want}; the file is damaged")
        if isinstance(value, float) and not math.isfinite(value):
            raise SteerInputError(f"{path}: metadata field {key!r} is {value!r}, expected a finite number")


#: JSON types of the fingerprint fields (:meth:`ModelAdapter.fingerprint`)
FINGERPRINT_TYPES: dict[str, tuple[type, ...]] = {
    "family": (str,), "model_type": (str,), "hidden_size": (int,), "num_layers": (int,),
    "name_or_path": (str,), "weights_sha256": (str,),
}


def check_fingerprint(
    recorded: Mapping[str, Any] | None,
    adapter: ModelAdapter,
    *,
    what: str,
    remedy: str,
    hidden_size: int | None = None,
    allow_other_weights: bool = False,
    require_fingerprint: bool = True,
) -> None:
    """Refuse ``adapter``'s model when it is not the one ``recorded`` describes; the error names both.

    A record without ``weights_sha256`` is refused too (unless ``allow_other_weights`` or
    not ``require_fingerprint``, for objects built in memory rather than read from a file).

    Architecture (hidden size, model type, layer count) must match. Other weights of the
    same architecture are refused too unless ``allow_other_weights`` (a fine-tune of the
    same base, where a user may know better).
    """
    if recorded is not None and not isinstance(recorded, Mapping):
        raise SteerInputError(f"the {what}'s model fingerprint is {recorded!r}, not an object; the file is damaged")
    mine = dict(recorded or {})
    theirs = adapter.fingerprint()
    made_on = mine.get("name_or_path") or "an unknown model"

    if hidden_size is not None and hidden_size != adapter.hidden_size:
        raise ModelMismatchError(
            f"hidden-size mismatch: the {what} has d={hidden_size} (made on {made_on!r}), the model "
            f"{theirs['name_or_path']!r} has d={adapter.hidden_size}; {remedy}"
        )
    for key in ARCH_KEYS:
        if key in mine and mine[key] != theirs[key]:
            raise ModelMismatchError(
                f"the {what} was made for {made_on!r} ({key}={mine[key]!r}), but the model is "
                f"{theirs['name_or_path']!r} ({key}={theirs[key]!r}); {remedy}"
            )
    check_recorded_options(mine, adapter, what)
    want = mine.get("weights_sha256")
    if not want and require_fingerprint and not allow_other_weights:  # nothing tells which model it was made on
        raise ModelMismatchError(
            f"the {what} records no model fingerprint (weights_sha256), so steer cannot tell which model it was "
            f"made on; {remedy}, or pass allow_other_weights=True / --allow-other-weights if you know it fits"
        )
    if want and want != theirs["weights_sha256"] and not allow_other_weights:
        raise ModelMismatchError(
            f"the {what} was made on other weights ({made_on!r}, weights {want}) than the model "
            f"({theirs['name_or_path']!r}, weights {theirs['weights_sha256']}); {remedy}, or pass "
            "allow_other_weights=True / --allow-other-weights for a fine-tune of the same base"
        )
