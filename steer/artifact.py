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
    return tensors, meta


def check_format_version(path: str | os.PathLike, meta: Mapping[str, Any], supported: int) -> None:
    if int(meta.get("format_version", 0)) > supported:
        raise SteerInputError(
            f"{path} has format version {meta['format_version']}; this steer reads <= {supported}: upgrade steer"
        )


def check_fingerprint(
    recorded: Mapping[str, Any] | None,
    adapter: ModelAdapter,
    *,
    what: str,
    remedy: str,
    hidden_size: int | None = None,
    allow_other_weights: bool = False,
) -> None:
    """Refuse ``adapter``'s model when it is not the one ``recorded`` describes; the error names both.

    Architecture (hidden size, model type, layer count) must match. Other weights of the
    same architecture are refused too unless ``allow_other_weights`` (a fine-tune of the
    same base, where a user may know better).
    """
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
    if want and want != theirs["weights_sha256"] and not allow_other_weights:
        raise ModelMismatchError(
            f"the {what} was made on other weights ({made_on!r}, weights {want}) than the model "
            f"({theirs['name_or_path']!r}, weights {theirs['weights_sha256']}); {remedy}, or pass "
            "allow_other_weights=True / --allow-other-weights for a fine-tune of the same base"
        )
