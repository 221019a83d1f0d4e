"""Processor options (``--processor-kwargs`` / ``processor_kwargs=``) and their provenance.

Options such as Qwen2-VL's ``max_pixels`` / ``min_pixels``, LLaVA-NeXT's
``image_grid_pinpoints`` or InternVL's ``max_patches`` decide how many image tokens an
image becomes, and so the hidden states a shift is measured on and the positions it is
applied to. They are passed to ``AutoProcessor.from_pretrained`` exactly as given, kept on
the adapter, written into every artifact's model fingerprint (``processor_kwargs``), and
an artifact made with other options is refused unless the user says otherwise: a CMRM
shift measured on 256 image tokens is a different vector from one measured on 1024.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from steer.errors import ModelMismatchError, SteerInputError

EXAMPLE = '\'{"max_pixels": 200704}\''
#: options of ``from_pretrained`` itself (which class or snapshot to load), not attributes of the result
LOADING_OPTIONS = frozenset({"use_fast", "revision", "trust_remote_code", "token", "cache_dir", "local_files_only", "subfolder"})


def parse_processor_kwargs(value: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """A JSON object (CLI) or a mapping (API) as a plain dict; ``None`` is ``{}``."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise SteerInputError(f"--processor-kwargs is not valid JSON ({err.msg}); give an object such as {EXAMPLE}") from None
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise SteerInputError(f"processor kwargs must be a JSON object with string keys, such as {EXAMPLE}")
    return dict(value)


def check_known_options(processor: Any, options: Mapping[str, Any], source: str) -> None:
    """Refuse option names neither the processor nor its image processor or tokenizer has:
    transformers ignores unknown ones silently, which would leave the image tokens as they were."""
    owners = [processor, getattr(processor, "image_processor", None), getattr(processor, "tokenizer", None)]
    known: set[str] = set(LOADING_OPTIONS)
    for owner in owners:
        valid = getattr(owner, "valid_kwargs", None)  # the option TypedDict of an image processor
        known.update(getattr(valid, "__annotations__", {}) or {})
        for base in getattr(valid, "__mro__", ()):
            known.update(getattr(base, "__annotations__", {}) or {})
    unknown = [
        key for key in options if key not in known and not any(owner is not None and hasattr(owner, key) for owner in owners)
    ]
    if unknown:
        raise SteerInputError(
            f"processor option(s) {', '.join(sorted(unknown))} unknown to the processor of {source} "
            f"({type(processor).__name__}); check the names in its preprocessor_config.json"
        )


def check_recorded_options(recorded: Mapping[str, Any], adapter: Any, what: str) -> None:
    """Refuse an artifact whose recorded processor options differ from the loaded model's,
    unless the adapter was loaded with ``allow_other_processor_kwargs``."""
    if not adapter.supports_images or getattr(adapter, "allow_other_processor_kwargs", False):
        return
    made = dict(recorded.get("processor_kwargs") or {})
    now = dict(getattr(adapter, "processor_kwargs", {}) or {})
    if made != now:
        made_text = json.dumps(made, sort_keys=True) if made else "none"
        now_text = json.dumps(now, sort_keys=True) if now else "none"
        raise ModelMismatchError(
            f"the {what} was made with processor options {made_text} but the model is loaded with {now_text}; they "
            f"change the image tokens: load with --processor-kwargs '{json.dumps(made, sort_keys=True)}' "
            "(processor_kwargs=), or pass --allow-other-processor-kwargs (allow_other_processor_kwargs=True)"
        )
