"""Compare variants on several datasets: one table (Markdown + JSON) and a bar chart.

Rows are variants (:mod:`steer.eval.variants`); per dataset the columns are

* ``unsafe`` / ``unsafe onset`` -- datasets with harmful items: share not *completely*
  refused / share whose answer does not even *start* as a refusal;
* ``over-refusal`` / ``over-refusal onset`` -- datasets with benign items: share
  completely refused / share starting as a refusal;
* ``utility`` -- datasets whose items have reference answers: normalised answer match;

and, per variant, ``tokens/s`` over all its runs.  Every rate has a 95% bootstrap CI
(in the JSON; in Markdown as ``rate [low, high]``).  Each variant's effective settings
(method, alpha, layers, positions, schedule) are listed under the table.

Outputs in ``out_dir``: ``compare.md``, ``compare.json`` (written atomically),
``compare.png`` (grouped bars with CI whiskers: one group per column, one bar per
variant), and ``runs/<variant>__<dataset>.jsonl`` (per-item results, so reruns resume).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from steer.atomic import atomic_path, atomic_write_text
from steer.data.items import EvalItem
from steer.errors import SteerInputError
from steer.eval.judge import judge_refusal
from steer.eval.runner import EvalSummary, evaluate

__all__ = ["CompareResult", "compare", "plot_compare", "table_grid", "to_markdown"]

#: (summary attribute, column suffix) per measure, in table order
MEASURES = (
    ("unsafe_rate", "unsafe"),
    ("unsafe_rate_onset", "unsafe onset"),
    ("over_refusal_rate", "over-refusal"),
    ("over_refusal_rate_onset", "over-refusal onset"),
    ("utility", "utility"),
    ("unsafe_rate_llm", "unsafe (LLM judge)"),
)


@dataclass
class CompareResult:
    variants: list[str]
    datasets: list[str]
    columns: list[dict[str, str]]  # {"key", "dataset", "measure", "title"}
    rows: list[dict[str, Any]]  # {"variant", "settings", "cells": {key: RateSummary dict}, "tokens_per_s"}
    summaries: dict[str, dict[str, EvalSummary]] = field(default_factory=dict, repr=False)
    markdown_path: Path | None = None
    json_path: Path | None = None
    png_path: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "variants": self.variants,
            "datasets": self.datasets,
            "columns": self.columns,
            "rows": self.rows,
            "runs": {
                v: {d: s.as_dict() for d, s in per.items()} for v, per in self.summaries.items()
            },
            # the items this table counts: a resumed --out folder may hold rows of earlier, larger runs
            "item_ids": {
                d: [str(r["id"]) for r in s.records]
                for d, s in next(iter(self.summaries.values()), {}).items()
            },
        }

    def value(self, variant: str, dataset: str, measure: str) -> float | None:
        """The rate of ``measure`` (e.g. ``"unsafe_rate_onset"``) for one variant and dataset."""
        row = next((r for r in self.rows if r["variant"] == variant), None)
        if row is None:
            raise SteerInputError(f"no variant {variant!r} in this comparison; variants: {', '.join(self.variants)}")
        cell = row["cells"].get(f"{dataset}|{measure}")
        return None if cell is None else cell["rate"]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:80] or "x"


def _columns(datasets: Sequence[str], summaries: dict[str, dict[str, EvalSummary]]) -> list[dict[str, str]]:
    cols = []
    for ds in datasets:
        for attr, title in MEASURES:
            if any(getattr(per[ds], attr) is not None for per in summaries.values()):
                cols.append({"key": f"{ds}|{attr}", "dataset": ds, "measure": attr, "title": f"{ds} {title}"})
    return cols


def compare(
    variants: Sequence[Any],
    datasets: dict[str, Sequence[EvalItem]],
    *,
    out_dir: str | os.PathLike | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 64,
    judge: Callable[[str], Any] = judge_refusal,
    llm_judge: Any = None,
    resume: bool = True,
    progress: bool = True,
    include_advice: bool = False,
    n_boot: int = 2000,
    command: str | None = None,
) -> CompareResult:
    """Evaluate every variant on every dataset and build the table.

    ``variants``: :class:`~steer.eval.variants.Variant` objects (or SteeredModels / callables,
    as :func:`~steer.eval.runner.evaluate` accepts).  ``datasets``: label -> items.
    ``command``: the command line, recorded in the Markdown and JSON.
    """
    if not variants:
        raise SteerInputError("no variants to compare")
    if not datasets:
        raise SteerInputError("no datasets to compare on")
    out = Path(out_dir) if out_dir is not None else None
    summaries: dict[str, dict[str, EvalSummary]] = {}
    labels: list[str] = []
    for v in variants:
        label = getattr(v, "label", None) or getattr(v, "__name__", f"variant{len(labels)}")
        if label in summaries:
            raise SteerInputError(f"two variants are both labelled {label!r}; give one @name=...")
        labels.append(label)
        summaries[label] = {}
    # dataset by dataset, every variant in turn: the variants of one cell run minutes apart
    # at most, so a machine that gets busier or quieter during a long run shifts every
    # variant's tokens/s alike instead of favouring the ones that ran first
    warmed: set[str] = set()  # variants that have generated in this run (a resumed cell warms nothing)
    for ds, items in datasets.items():
        for label, v in zip(labels, variants):
            path = None if out is None else out / "runs" / f"{_slug(label)}__{_slug(ds)}.jsonl"
            summaries[label][ds] = evaluate(
                v, items, judge=judge, batch_size=batch_size, out=path, resume=resume, progress=progress,
                max_new_tokens=max_new_tokens, llm_judge=llm_judge, dataset=ds,
                include_advice=include_advice, n_boot=n_boot, warmup=label not in warmed,
            )
            if summaries[label][ds].n_new:
                warmed.add(label)
    ds_names = list(datasets)
    cols = _columns(ds_names, summaries)
    rows = []
    for label in labels:
        per = summaries[label]
        cells = {}
        for c in cols:
            value = getattr(per[c["dataset"]], c["measure"])
            cells[c["key"]] = None if value is None else value.as_dict()
        tokens = sum(s.generated_tokens for s in per.values())
        secs = sum(s.generation_s for s in per.values())
        first = next(iter(per.values()))
        rows.append({
            "variant": label,
            "settings": first.settings,
            "cells": cells,
            "tokens_per_s": tokens / secs if secs > 0 else None,
            "n": {ds: s.n for ds, s in per.items()},
        })
    result = CompareResult(labels, ds_names, cols, rows, summaries)
    if out is not None:
        result.markdown_path = out / "compare.md"
        atomic_write_text(result.markdown_path, to_markdown(result, command=command))
        result.json_path = out / "compare.json"
        doc = result.as_dict()
        doc["command"] = command
        atomic_write_text(result.json_path, json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
        result.png_path = plot_compare(result, out / "compare.png")
    return result


def _cell_text(cell: dict | None, ci: bool = True) -> str:
    if cell is None:
        return "-"
    if not ci:
        return f"{cell['rate']:.3f}"
    return f"{cell['rate']:.3f} [{cell['low']:.2f}, {cell['high']:.2f}]"


#: above this many measure columns the Markdown table is transposed (a row per measure)
WIDE_TABLE = 8


def table_grid(result: CompareResult, *, ci: bool = True, transpose: bool | None = None) -> list[list[str]]:
    """The comparison as a grid of strings, header row first.

    Rows are variants and columns the per-dataset measures plus tokens/s; with
    ``transpose`` (default: when there are more than :data:`WIDE_TABLE` measures and more
    measures than variants) rows are the measures and columns the variants, which keeps
    a many-dataset comparison readable on a page or a terminal.
    """
    head = ["variant"] + [c["title"] for c in result.columns] + ["tokens/s"]
    body = []
    for row in result.rows:
        tps = row["tokens_per_s"]
        cells = [_cell_text(row["cells"].get(c["key"]), ci) for c in result.columns]
        body.append([row["variant"], *cells, "-" if tps is None else f"{tps:.1f}"])
    if transpose is None:
        transpose = len(result.columns) > WIDE_TABLE and len(result.columns) > len(result.rows)
    if not transpose:
        return [head, *body]
    return [["measure"] + [r[0] for r in body]] + [[head[i]] + [r[i] for r in body] for i in range(1, len(head))]


def to_markdown(
    result: CompareResult, *, command: str | None = None, ci: bool = True, transpose: bool | None = None
) -> str:
    """The table as Markdown (layout as in :func:`table_grid`), the legend and each variant's settings."""
    grid = table_grid(result, ci=ci, transpose=transpose)
    lines = [
        "| " + " | ".join(grid[0]) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(grid[0]) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in grid[1:]]
    out = []
    if command:
        out += ["Command:", "", "```", command, "```", ""]
    out += lines
    out += [
        "",
        "Rates with 95% bootstrap CIs. *unsafe*: harmful items not completely refused; *unsafe onset*: "
        "harmful items whose answer does not start as a refusal; *over-refusal*: benign items completely "
        "refused; *over-refusal onset*: benign items whose answer starts as a refusal; *utility*: normalised "
        "answer match. Items per dataset: "
        + ", ".join(f"{ds} {result.rows[0]['n'].get(ds, 0)}" for ds in result.datasets) + ".",
        "",
        "Settings:",
        "",
    ]
    keys = ("recipe", "method", "level", "alpha", "layers", "positions", "schedule", "threshold", "vectors", "probe", "projector")
    for row in result.rows:
        st = row["settings"] or {}
        parts = [f"{k}={st[k]}" for k in keys if st.get(k) is not None]
        out.append(f"- `{row['variant']}`: " + (" ".join(parts) if parts else "unsteered"))
    return "\n".join(out) + "\n"


def plot_compare(result: CompareResult, path: str | os.PathLike) -> Path:
    """Grouped bar chart: one group per column, one bar per variant, CI whiskers (at most 22 inches
    wide; above :data:`WIDE_TABLE` columns the onset measures are left to the table)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    cols = result.columns
    if len(cols) > WIDE_TABLE:  # a wide comparison: the onset measures stay in the table, the chart keeps one per kind
        cols = [c for c in cols if not c["measure"].endswith("_onset")] or cols
    n_var = max(1, len(result.rows))
    width = 0.8 / n_var
    fig, ax = plt.subplots(figsize=(min(22.0, max(6.0, 1.1 * len(cols) * n_var * 0.45 + 2)), 4.8), dpi=120)
    x = np.arange(len(cols))
    cmap = plt.get_cmap("tab10")
    for i, row in enumerate(result.rows):
        vals, lo, hi = [], [], []
        for c in cols:
            cell = row["cells"].get(c["key"])
            if cell is None:
                vals.append(math.nan)
                lo.append(0.0)
                hi.append(0.0)
            else:
                vals.append(cell["rate"])
                lo.append(max(0.0, cell["rate"] - cell["low"]))
                hi.append(max(0.0, cell["high"] - cell["rate"]))
        hatches = ["//" if c["measure"].endswith("_onset") else None for c in cols]
        bars = ax.bar(x + (i - (n_var - 1) / 2) * width, vals, width, yerr=[lo, hi], capsize=2,
                      label=row["variant"], color=cmap(i % 10), edgecolor="black", linewidth=0.4)
        for bar, hatch in zip(bars, hatches):
            if hatch:
                bar.set_hatch(hatch)
    ax.set_xticks(x)
    ax.set_xticklabels([c["title"] for c in cols], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("rate (hatched: onset refusal measure)" if any(c["measure"].endswith("_onset") for c in cols) else "rate")
    ax.set_title("steer compare: unsafe rate (lower is safer), over-refusal (lower), utility (higher)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    target = Path(path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return target
