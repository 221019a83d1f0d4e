"""The one file format of every `steer` artifact: safetensors tensors + a JSON header.

Vector files (:mod:`steer.vectors`), probe files (:mod:`steer.gate`) and TGA projector
artifacts (:mod:`steer.projector`) share it: tensors in a ``safetensors`` file whose
header metadata holds one key, ``steer``, a JSON object with at least ``kind``,
``format_version``, ``toolkit_version``, ``created`` and ``model`` (the fingerprint of
the model it was made on, :meth:`steer.adapters.base.ModelAdapter.fingerprint`).
Writes are atomic; reads and model checks fail with messages that name the file, both
models and the command that makes a fitting artifact.
"""

from __future__ import annotations

import json
import math
import os
import time
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


def write_artifact(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> dict[str, Any]:
    """Atomically write ``tensors`` + ``meta`` (plus toolkit version and creation time); returns the metadata."""
    full = dict(meta)
    full["toolkit_version"] = __version__
    full.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    with atomic_path(Path(path)) as tmp:
        save_file(
            {k: v.contiguous() for k, v in tensors.items()},
            str(tmp),
            metadata={"steer": json.dumps(full, sort_keys=True)},
        )
    return full


def read_artifact(path: str | os.PathLike, *, what: str, make_with: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, metadata) of an artifact file, or a :class:`SteerInputError` saying what is wrong.

    ``what`` names the artifact in messages ("vector file", "probe file", ...);
    ``make_with`` is the command that makes one (``steer calibrate``, ...).
    """
    target = Path(path)
    if not target.exists():
        raise SteerInputError(f"{what} not found: {target} (make one with `{make_with}`)")
    if target.is_dir():
        raise SteerInputError(f"{what} path is a folder, not a file: {target}")
    try:
        with safe_open(str(target), framework="pt") as fh:
            raw = (fh.metadata() or {}).get("steer")
            tensors = {key: fh.get_tensor(key) for key in fh.keys()}
    except Exception as err:  # safetensors raises its own error types
        raise SteerInputError(f"{target} is not a readable safetensors {what}: {err}") from None
    if raw is None:
        raise SteerInputError(f"{target} has no steer metadata: it is a safetensors file but not a steer {what}")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as err:
        raise SteerInputError(f"{target}: unreadable steer metadata ({err})") from None
    if not isinstance(meta, dict):
        raise SteerInputError(f"{target}: the steer metadata is a JSON {type(meta).__name__}, not an object; the file is damaged")
    for key, tensor in tensors.items():  # one NaN would silently turn every steered answer into noise
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise SteerInputError(
                f"{target}: tensor {key!r} holds NaN or infinite values; the {what} is damaged: make it again "
                f"with `{make_with}`"
            )
    return tensors, meta


def check_format_version(path: str | os.PathLike, meta: Mapping[str, Any], supported: int) -> None:
    """Refuse a format version that is not a whole number >= 1 or newer than ``supported``."""
    version = meta.get("format_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise SteerInputError(f"{path}: format_version {version!r} is not a version number; the file is damaged")
    if version > supported:
        raise SteerInputError(f"{path} has format version {version}; this steer reads <= {supported}: upgrade steer")


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
