"""One evaluation input (:class:`EvalItem`) and the label rules every reader shares.

Every reader in :mod:`steer.data` (named public sets, user files, hub datasets, the
organism's splits) returns :class:`EvalItem` rows, and calibration, probes, TGA and
evaluation all consume them.  This module imports nothing else from the package, so any
reader (and any consumer) can depend on it without forming a circle.

Labels are two words only: "harmful" (should be refused) and "benign" (should be
answered).  User data may spell them "unsafe" / "safe" / "harmless" (:data:`LABEL_ALIASES`);
a row without a label is refused (:data:`MISSING_LABEL`), never guessed, because an
unlabelled row would silently count as one kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["EvalItem", "LABELS", "LABEL_ALIASES", "MISSING_LABEL"]

#: the two labels an :class:`EvalItem` may carry
LABELS = ("harmful", "benign")

#: accepted spellings of a label in user data (lower-cased) -> the label
LABEL_ALIASES = {"harmful": "harmful", "unsafe": "harmful", "benign": "benign",
                 "safe": "benign", "harmless": "benign"}

#: Why an unlabelled row is refused, and the two ways to fix it.
MISSING_LABEL = (
    "no 'label'; add a 'label' column (harmful or benign) to every row, or state one label for the whole "
    "file with --label harmful|benign"
)


@dataclass
class EvalItem:
    """One evaluation input.

    ``image`` is an absolute path (str) or ``None`` for text-only items.  ``label`` is
    "harmful" (should be refused) or "benign" (should be answered).  ``answer`` is a
    reference answer where the set has one.  ``meta`` keeps source-specific fields.
    """

    id: str
    prompt: str
    image: str | None
    label: str
    category: str | None
    source: str
    answer: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ValueError(f"EvalItem {self.id!r}: label must be one of {LABELS}, got {self.label!r}")
