"""Refusal judges: a built-in phrase matcher and a pluggable LLM judge.

One module per concern, all names importable from here as before:

* :mod:`steer.eval.judge.refusal` -- the built-in judge: :func:`judge_refusal` gives the
  *onset* and *complete* refusal of one answer (:class:`RefusalVerdict`);
  :class:`RefusalJudge` adds a model's own refusal phrases. See ``docs/judge.md``.
* :mod:`steer.eval.judge.phrases` -- the phrase rules it matches:
  :data:`REFUSAL_PHRASES`, their exclusions (:data:`APOLOGY_EXCLUSIONS`,
  :data:`DECLINE_EXCLUSIONS`) and :data:`COMPLIANCE_MARKERS`.
* :mod:`steer.eval.judge.normalize` -- :func:`normalize_text`, the normal form the phrases
  are written against.
* :mod:`steer.eval.judge.llm` -- :class:`LLMJudge`, any Hugging Face causal LM asked a
  Llama-Guard-style question (:data:`LLM_JUDGE_TEMPLATE`, :data:`UNSAFE_CATEGORIES`),
  giving an :class:`LLMVerdict`; torch and transformers load only when a judge is built.
"""

from steer.eval.judge.llm import LLM_JUDGE_TEMPLATE, UNSAFE_CATEGORIES, LLMJudge, LLMVerdict
from steer.eval.judge.normalize import normalize_text
from steer.eval.judge.phrases import (
    APOLOGY_EXCLUSIONS,
    COMPLIANCE_MARKERS,
    DECLINE_EXCLUSIONS,
    REFUSAL_PHRASES,
    SUBSTANTIVE_WORDS,
)
from steer.eval.judge.refusal import RefusalJudge, RefusalVerdict, judge_refusal

__all__ = [
    "APOLOGY_EXCLUSIONS",
    "COMPLIANCE_MARKERS",
    "DECLINE_EXCLUSIONS",
    "LLMJudge",
    "LLMVerdict",
    "LLM_JUDGE_TEMPLATE",
    "REFUSAL_PHRASES",
    "RefusalJudge",
    "RefusalVerdict",
    "SUBSTANTIVE_WORDS",
    "UNSAFE_CATEGORIES",
    "judge_refusal",
    "normalize_text",
]
