"""Evaluation tools: refusal judging, running, sweeping, comparing, reporting and bootstrap statistics.

* :mod:`steer.eval.judge` -- the built-in phrase-matching refusal judge
  (:func:`judge_refusal`, :class:`RefusalJudge`) and a pluggable LLM judge
  (:class:`LLMJudge`).
* The data it evaluates on (named public sets, user files, hub datasets, the organism's
  splits, :class:`~steer.data.items.EvalItem`) is read by :mod:`steer.data`, which
  calibration uses too; ``steer.eval`` imports it, never the other way round.
* :mod:`steer.eval.stats` -- percentile-bootstrap confidence intervals.
* :func:`evaluate` (:mod:`~steer.eval.runner`), :func:`build_variants` /
  :func:`parse_variants` (:mod:`~steer.eval.variants`) -- the harness behind
  ``steer eval / compare``, importable from here (loaded on first use); its items come from
  :func:`steer.data.specs.load_items`.
  The comparison itself is ``steer.eval.compare.compare`` (the name ``compare`` here is
  that submodule).

The heavy part of :class:`LLMJudge` (transformers, torch) is imported lazily, so
``import steer.eval`` stays cheap.
"""

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
    "build_variants": "steer.eval.variants",
    "parse_variants": "steer.eval.variants",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'steer.eval' has no attribute {name!r}")


__all__ = [
    "LLMJudge",
    "LLMVerdict",
    "RateSummary",
    "RefusalJudge",
    "RefusalVerdict",
    "bootstrap_ci",
    "build_variants",
    "evaluate",
    "parse_variants",
    "bootstrap_diff_ci",
    "judge_refusal",
    "normalize_text",
    "rate_summary",
]
