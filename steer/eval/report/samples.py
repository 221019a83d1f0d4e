"""Which items the report shows side by side, chosen the same way on every machine."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from steer.errors import SteerInputError
from steer.eval.report.inputs import CompareRun

__all__ = ["DEFAULT_SAMPLES", "SampleItem", "choose_samples"]

#: Items shown side by side when the caller does not say how many.
DEFAULT_SAMPLES = 8


@dataclass
class SampleItem:
    """One item shown side by side: its prompt and image, and each variant's result row."""

    dataset: str
    item_id: str
    label: str
    prompt: str
    image: Any
    category: str | None
    answer: str | None
    #: variant -> result row (missing when that variant has no result for the item)
    results: dict[str, dict] = field(default_factory=dict)


def _stable_rank(*parts: str) -> str:
    """A fixed pseudo-random order key: the same items are chosen on every machine and run,
    without always taking the first items of a file (often one category)."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def choose_samples(run: CompareRun, n: int = DEFAULT_SAMPLES) -> list[SampleItem]:
    """Up to ``n`` items, round-robin over (dataset, harmful / benign / other) groups so a
    small sample still covers every dataset and both labels; deterministic."""
    if n < 0:
        raise SteerInputError(f"number of samples must be >= 0, got {n}")
    variants = run.variants
    datasets = run.datasets or sorted({ds for _, ds in run.rows})
    groups: list[list[SampleItem]] = []
    for ds in datasets:
        by_id: dict[str, SampleItem] = {}
        for variant in variants:
            for item_id, row in run.rows.get((variant, ds), {}).items():
                item = by_id.get(item_id)
                if item is None:
                    item = by_id[item_id] = SampleItem(
                        ds, item_id, str(row.get("label") or "unlabelled"), str(row.get("prompt") or ""),
                        row.get("image"), row.get("category"), row.get("answer"),
                    )
                item.results[variant] = row
        labels = sorted({it.label for it in by_id.values()}, key=lambda l: ({"harmful": 0, "benign": 1}.get(l, 2), l))
        for label in labels:
            members = [it for it in by_id.values() if it.label == label]
            members.sort(key=lambda it: _stable_rank(ds, it.item_id))
            groups.append(members)
    chosen: list[SampleItem] = []
    depth = 0
    while len(chosen) < n and any(depth < len(g) for g in groups):
        for group in groups:
            if depth < len(group) and len(chosen) < n:
                chosen.append(group[depth])
        depth += 1
    order = {id(it): (gi, pos) for gi, g in enumerate(groups) for pos, it in enumerate(g)}
    return sorted(chosen, key=lambda it: order[id(it)])
