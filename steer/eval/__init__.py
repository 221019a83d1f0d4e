"""Evaluation tools: refusal judging, dataset readers and bootstrap statistics.

* :mod:`steer.eval.judge` -- the built-in phrase-matching refusal judge
  (:func:`judge_refusal`, :class:`RefusalJudge`) and a pluggable LLM judge
  (:class:`LLMJudge`).
* :mod:`steer.eval.datasets` -- readers for the offline copies in ``../shared/data``
  (:func:`load_dataset_by_name`) and for user files (:func:`load_user_dataset`), with
  SHA-256 checks against ``manifest.json`` (:func:`verify_manifest`).
* :mod:`steer.eval.stats` -- percentile-bootstrap confidence intervals.
* :func:`evaluate` and :func:`load_items` (:mod:`~steer.eval.runner`),
  :func:`build_variants` / :func:`parse_variants` (:mod:`~steer.eval.variants`) -- the
  harness behind ``steer eval / compare``, importable from here (loaded on first use).
  The comparison itself is ``steer.eval.compare.compare`` (the name ``compare`` here is
  that submodule).

The heavy part of :class:`LLMJudge` (transformers, torch) is imported lazily, so
``import steer.eval`` stays cheap.
"""

from steer.eval.datasets import (
    DATASET_NAMES,
    FIGSTEP_PROMPT,
    EvalItem,
    SharedDataError,
    SharedDataIntegrityError,
    SharedDataMissingError,
    UserDatasetError,
    load_dataset_by_name,
    load_user_dataset,
    shared_data_dir,
    verify_manifest,
)
from steer.eval.judge import (
    LLMJudge,
    LLMVerdict,
    RefusalJudge,
    RefusalVerdict,
    judge_refusal,
    normalize_text,
)
from steer.eval.stats import RateSummary, bootstrap_ci, bootstrap_diff_ci, rate_summary

#: harness entry points, imported on first access so ``import steer.eval`` stays cheap
_LAZY = {
    "evaluate": "steer.eval.runner",
    "load_items": "steer.eval.runner",
    "build_variants": "steer.eval.variants",
    "parse_variants": "steer.eval.variants",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'steer.eval' has no attribute {name!r}")


__all__ = [
    "DATASET_NAMES",
    "FIGSTEP_PROMPT",
    "EvalItem",
    "LLMJudge",
    "LLMVerdict",
    "RateSummary",
    "RefusalJudge",
    "RefusalVerdict",
    "SharedDataError",
    "SharedDataIntegrityError",
    "SharedDataMissingError",
    "UserDatasetError",
    "bootstrap_ci",
    "build_variants",
    "evaluate",
    "load_items",
    "parse_variants",
    "bootstrap_diff_ci",
    "judge_refusal",
    "load_dataset_by_name",
    "load_user_dataset",
    "normalize_text",
    "rate_summary",
    "shared_data_dir",
    "verify_manifest",
]
