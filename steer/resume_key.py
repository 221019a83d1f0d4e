"""What decides an eval answer, as a key a resumed run must match before reusing a row.

A results file is resumed row by row (:func:`steer.eval.runner.evaluate`). Paths and
option values alone cannot tell whether an old row still holds: a vector file
recalibrated in place keeps its path, another ``--model`` can share an ``--out``. So
every row carries

* ``run_key``: the content hash of every file the variant reads (vectors, probe,
  projector), the model's identity (architecture, dtype, the weights digest of
  :meth:`steer.adapters.base.ModelAdapter.weights_digest` plus a strided sample of every
  parameter, so a fine-tune of later layers differs too), and the generation settings;
* ``item_sha256``: the item itself (prompt, image bytes, label, reference answer).

A row whose key differs is never mixed with new ones: :func:`explain_mismatch` names what
changed and the runner refuses with that reason.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

#: settings keys that name a file whose *content* decides the answers
FILE_SETTINGS = ("vectors", "probe", "projector")
#: elements sampled per parameter tensor for the parameter digest
_SAMPLE = 1024


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (streamed)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def parameters_digest(model: Any) -> str:
    """sha256 over every parameter's name, shape, dtype and a strided sample of its values.

    Cheap (at most ``_SAMPLE`` values per tensor) and sensitive to a change anywhere in
    the network, unlike an embedding-only digest. Offloaded (meta) tensors add name and shape."""
    import torch

    h = hashlib.sha256()
    for name, param in model.named_parameters():
        h.update(f"{name}:{tuple(param.shape)}:{param.dtype}".encode())
        if param.device.type == "meta" or param.numel() == 0:
            continue
        flat = param.detach().reshape(-1)
        sample = flat[:: max(1, flat.numel() // _SAMPLE)][:_SAMPLE]
        h.update(sample.to(torch.float32).cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def model_identity(sm: Any) -> dict[str, Any] | None:
    """Architecture, dtype and weight digests of a SteeredModel (None for a plain callable)."""
    adapter = getattr(sm, "adapter", None)
    if adapter is None:
        return None
    fp = adapter.fingerprint()
    model = adapter.model
    dtype = next((str(p.dtype) for p in model.parameters()), None)
    keys = ("family", "model_type", "hidden_size", "num_layers", "weights_sha256")
    return dict({k: fp[k] for k in keys}, dtype=dtype, params_sha256=parameters_digest(model))


def run_key(settings: Mapping[str, Any], sm: Any, *, max_new_tokens: Any, llm_judge: Any = None) -> dict[str, Any]:
    """The key every row of one eval run carries (see the module docstring)."""
    files = {}
    for key in FILE_SETTINGS:
        value = settings.get(key)
        if isinstance(value, (str, os.PathLike)) and Path(value).is_file():
            files[key] = file_sha256(value)
    return {
        "files_sha256": files,
        "model": model_identity(sm),
        "generation": {"max_new_tokens": max_new_tokens, "decoding": "greedy"},
        "llm_judge": None if llm_judge is None else _judge_name(llm_judge),
    }


def _judge_name(judge: Any) -> str:
    return str(getattr(getattr(judge, "model", None), "name_or_path", None) or type(judge).__name__)


def item_sha256(item: Any) -> str:
    """Hash of what an item puts to the model and how it is scored (image bytes, not its path)."""
    h = hashlib.sha256()
    image = item.image
    if isinstance(image, (str, os.PathLike)) and Path(image).is_file():
        image_part = "file:" + file_sha256(image)
    elif hasattr(image, "tobytes"):  # a PIL image
        image_part = f"pil:{image.mode}:{image.size}:" + hashlib.sha256(image.tobytes()).hexdigest()
    else:
        image_part = repr(image)
    h.update(json.dumps([item.prompt, image_part, item.label, item.answer], default=str).encode("utf-8"))
    return h.hexdigest()[:16]


def explain_mismatch(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> str | None:
    """None when ``old`` == ``new``, else a short phrase naming what changed."""
    if old == new:
        return None
    if not isinstance(old, Mapping):
        return "the rows carry no resume key (written by an older steer)"
    reasons = []
    old_files, new_files = old.get("files_sha256") or {}, new.get("files_sha256") or {}
    for key in sorted(set(old_files) | set(new_files)):
        if old_files.get(key) != new_files.get(key):
            reasons.append(f"the {key} file's content changed" if key in old_files and key in new_files else f"{key} file")
    old_model, new_model = old.get("model") or {}, new.get("model") or {}
    diff = sorted(k for k in set(old_model) | set(new_model) if old_model.get(k) != new_model.get(k))
    if diff:
        reasons.append(
            "another model (" + ", ".join(f"{k} {old_model.get(k)!r} -> {new_model.get(k)!r}" for k in diff[:3]) + ")"
        )
    for key in ("generation", "llm_judge"):
        if old.get(key) != new.get(key):
            reasons.append(f"{key} {old.get(key)!r} -> {new.get(key)!r}")
    return "; ".join(reasons) or "the resume key differs"
