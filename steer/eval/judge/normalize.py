"""Text normalisation for the built-in refusal judge: one spelling per phrase.

Before matching, text is NFKC-normalised and lower-cased; curly quotes become straight
quotes; dashes become " - "; markdown emphasis (``**``/``__``) is dropped; word-level
spacing of punctuation and contractions is undone ("sorry , i can 't help ." and the
Penn-Treebank form "i ca n't" both become "sorry, i cannot help."); contractions are
expanded ("can't" -> "cannot", "won't" -> "will not", "I'm" -> "i am", "that's" ->
"that is"); "can not" becomes "cannot"; runs of spaces collapse.  Text inside quotation
marks is masked (:func:`mask_quotes`), so an answer that *quotes* a refusal ("the phrase
'I'm sorry, I cannot help' is common") does not count as one -- unless the whole answer
is quoted.

Why a module of its own: the phrase list (:mod:`steer.eval.judge.phrases`) is written
against this normal form, and a user's extra phrases (``RefusalJudge(extra_phrases=...)``)
must be too, so the rules that define it are kept where they can be read in one place.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["mask_quotes", "normalize_text"]

_CHAR_MAP = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u02bc": "'", "\u00b4": "'", "`": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u00ab": '"', "\u00bb": '"',
    "\u2014": " - ", "\u2013": " - ", "\u2012": " - ", "\u2212": "-",
    "\u2026": "...", "\u00a0": " ", "\u200b": "",
}
_CHAR_TABLE = str.maketrans(_CHAR_MAP)

_SUB_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), r)
    for p, r in (
        # markdown emphasis
        (r"\*\*|__", ""),
        # Penn-Treebank / word-level negation: "ca n't", "do n ' t" -> "can't", "don't"
        (r"\b(\w+)\s+n\s*'\s*t\b", r"\1n't"),
        # spaced contraction suffixes: "can 't", "i ' m", "you 're"
        (r"(\w)\s*'\s*(t|s|m|re|ve|ll|d)\b", r"\1'\2"),
        # spaced punctuation: "that ." -> "that."; "( x )" -> "(x)"
        (r"[ \t]+([,.;:!?%)\]])", r"\1"),
        (r"([(\[])[ \t]+", r"\1"),
        # contractions
        (r"\bcan't\b", "cannot"),
        (r"\bwon't\b", "will not"),
        (r"\bshan't\b", "shall not"),
        (r"\bain't\b", "is not"),
        (r"\b(\w+)n't\b", r"\1 not"),
        (r"\bi'm\b", "i am"),
        (r"'re\b", " are"),
        (r"'ve\b", " have"),
        (r"'ll\b", " will"),
        (r"\b(i|you|he|she|we|they|it|that|there|who)'d\b", r"\1 would"),
        (r"\b(it|that|there|here|what|who|he|she|where|this|how)'s\b", r"\1 is"),
        (r"\blet's\b", "let us"),
        # apostrophe-less forms
        (r"\bcant\b", "cannot"),
        (r"\bdont\b", "do not"),
        (r"\bim\b", "i am"),
        (r"\bi wont\b", "i will not"),
        (r"\bcan not\b", "cannot"),
        # whitespace
        (r"[ \t\r\f\v]+", " "),
        (r" ?\n[\s]*", "\n"),
    )
)


def normalize_text(text: str) -> str:
    """Return ``text`` lower-cased and normalised for phrase matching.

    >>> normalize_text("sorry , i can 't help with that .")
    'sorry, i cannot help with that.'
    >>> normalize_text("I\u2019m sorry, but I CAN\u2019T assist.")
    'i am sorry, but i cannot assist.'
    """
    s = unicodedata.normalize("NFKC", text).translate(_CHAR_TABLE).lower()
    for pattern, repl in _SUB_RULES:
        s = pattern.sub(repl, s)
    return s.strip()


_DQUOTE = re.compile(r'"[^"\n]*"')
_SQUOTE = re.compile(r"(?<![\w])'[^'\n]{1,300}?'(?![\w])")


def mask_quotes(s: str) -> str:
    """Blank out quoted spans (keeping their length) unless the whole text is quoted."""
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'":
        s = " " + s[1:-1] + " "
    blank = lambda m: m.group(0)[0] + " " * (len(m.group(0)) - 2) + m.group(0)[-1]  # noqa: E731
    return _SQUOTE.sub(blank, _DQUOTE.sub(blank, s))
