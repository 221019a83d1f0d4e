"""The report's plots as PNG bytes: the rates per dataset and the per-layer shift norms.

Plots are drawn with matplotlib's Agg backend (no display needed) at a page's width, so
they are shown at their own size and their text stays readable.
"""

from __future__ import annotations

import io
import math
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from steer.eval.compare import WIDE_TABLE

if TYPE_CHECKING:
    from steer.eval.report.inputs import CompareRun

__all__ = ["LOWER_IS_BETTER", "compare_chart_png", "figure_png", "plot_via_file", "shift_norms_png"]

#: Measures where a lower rate is better (the chart's left panel; red tint in the table).
LOWER_IS_BETTER = ("unsafe_rate", "unsafe_rate_onset", "over_refusal_rate", "over_refusal_rate_onset", "unsafe_rate_llm")


def figure_png(fig: Any) -> bytes:
    """PNG bytes of a matplotlib figure, which is closed (a report draws several; open figures pile up)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def plot_via_file(plot: Any, *args: Any, **kwargs: Any) -> bytes:
    """PNG bytes of a plot function that writes to a path (``plot_compare``, ``plot_frontier``)."""
    with tempfile.TemporaryDirectory(prefix="steer-report-") as tmp:
        target = Path(tmp) / "plot.png"
        plot(*args, target, **kwargs)
        return target.read_bytes()


def compare_chart_png(run: CompareRun) -> bytes:
    """The report's chart, re-plotted from ``compare.json``: one panel for the rates where lower is
    better (unsafe, over-refusal) and one for those where higher is better (utility), so no
    axis mixes the two directions; one bar per variant with 95% CI whiskers, zero bars drawn as
    a visible stub labelled 0, the legend above the panels, tick labels at 10 pt.

    Sized for a page: at most 12.8 x 100 dpi = 1280 px wide, so it is shown at its own size
    and the text stays readable (``compare.png`` of the run may be far wider)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    cols = list(run.doc["columns"])
    if len(cols) > WIDE_TABLE:  # as compare.png: onset measures stay in the table when there are many columns
        cols = [c for c in cols if not c["measure"].endswith("_onset")] or cols
    panels = [
        ("lower is better: unsafe, over-refusal", [c for c in cols if c["measure"] in LOWER_IS_BETTER]),
        ("higher is better: utility", [c for c in cols if c["measure"] not in LOWER_IS_BETTER]),
    ]
    panels = [(title, pc) for title, pc in panels if pc]
    rows = run.doc["rows"]
    n_var = max(1, len(rows))
    n_bars = sum(len(pc) for _, pc in panels) * n_var
    width_in = min(12.8, max(7.0, 2.5 + 0.3 * n_bars))
    fig, axes = plt.subplots(
        1, max(1, len(panels)), figsize=(width_in, 5.2), dpi=100, squeeze=False,
        gridspec_kw={"width_ratios": [max(1, len(pc)) for _, pc in panels] or [1]},
    )
    cmap = plt.get_cmap("tab10")
    handles = []
    crowded = width_in / max(1, sum(len(pc) for _, pc in panels)) < 1.3  # inches per column group
    for ax, (title, pcols) in zip(axes[0], panels):
        handles = _draw_panel(ax, pcols, rows, cmap, label_values=n_bars <= 36, crowded=crowded)
        ax.set_title(title, fontsize=11)
    legend_rows = -(-n_var // 4)
    fig.legend(handles, [str(r["variant"]) for r in rows], loc="upper center", ncol=min(n_var, 4), fontsize=10,
               frameon=False, bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.07 * legend_rows))
    return figure_png(fig)


def _tick_label(column: dict, prefix: str, crowded: bool) -> str:
    """``dataset`` and ``measure`` (the datasets' shared prefix dropped): two lines, or one
    rotated line when the panel is crowded; long names break at their punctuation."""
    import textwrap

    dataset = str(column["dataset"])
    measure = str(column["title"])[len(dataset):].strip() or column["measure"]
    name = dataset[len(prefix):] or dataset
    if crowded:
        return f"{name} {measure}"
    spaced = re.sub(r"([:@/_-])", r"\1 ", name)
    wrapped = "\n".join(line.replace(" ", "") for line in textwrap.wrap(spaced, 18, break_long_words=False))
    return f"{wrapped}\n{measure}"


def _shared_prefix(names: Sequence[str]) -> str:
    """The ``source:`` prefix every dataset name shares (``organism:``), else ''."""
    heads = {n.rsplit(":", 1)[0] + ":" if ":" in n else "" for n in names}
    return heads.pop() if len(heads) == 1 else ""


def _draw_panel(ax: Any, cols: Sequence[dict], rows: Sequence[dict], cmap: Any, *, label_values: bool,
                crowded: bool) -> list:
    import numpy as np

    n_var = max(1, len(rows))
    width = 0.8 / n_var
    x = np.arange(len(cols))
    handles = []
    for i, row in enumerate(rows):
        color = cmap(i % 10)
        offsets = x + (i - (n_var - 1) / 2) * width
        vals, lo, hi = [], [], []
        for c in cols:
            cell = (row.get("cells") or {}).get(c["key"])
            rate = math.nan if cell is None else float(cell["rate"])
            vals.append(rate)
            lo.append(0.0 if cell is None else max(0.0, rate - float(cell["low"])))
            hi.append(0.0 if cell is None else max(0.0, float(cell["high"]) - rate))
        bars = ax.bar(offsets, vals, width, yerr=[lo, hi], capsize=2, color=color, edgecolor="black", linewidth=0.4,
                      error_kw={"elinewidth": 0.8, "ecolor": "#333"})
        handles.append(bars)
        for j, (bar, c, value, xpos) in enumerate(zip(bars, cols, vals, offsets)):
            if c["measure"].endswith("_onset"):
                bar.set_hatch("//")
            if math.isnan(value):
                ax.text(xpos, 0.01, "n/a", ha="center", va="bottom", fontsize=7, rotation=90, color="#666")
                continue
            if value == 0.0:  # a zero-height bar is invisible: a thick stub in the bar's colour marks it
                ax.plot([xpos - width * 0.45, xpos + width * 0.45], [0.0, 0.0], color=color, lw=4,
                        solid_capstyle="butt", zorder=4, clip_on=False)
            if label_values or value == 0.0:
                ax.text(xpos, value + (hi[j] if label_values else 0.0) + 0.015, "0" if value == 0.0 else f"{value:.2f}",
                        ha="center", va="bottom", fontsize=8, rotation=90 if label_values and n_var > 2 else 0)
    ax.set_xticks(x)
    prefix = _shared_prefix([str(c["dataset"]) for c in cols])
    ax.set_xticklabels([_tick_label(c, prefix, crowded) for c in cols], fontsize=10, rotation=35 if crowded else 0,
                       ha="right" if crowded else "center", rotation_mode="anchor" if crowded else "default")
    if prefix:
        ax.set_xlabel(f"datasets {prefix}...", fontsize=10)
    ax.tick_params(axis="y", labelsize=10)
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("rate", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    return handles


def shift_norms_png(vector_files: Sequence[Path]) -> bytes:
    """Per-layer ``|s_l|`` of each vector file (solid) and, for ShiftDC files, the part of
    the shift along the safety direction, ``|s_l . v_l|`` (dashed) -- the part ShiftDC removes."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from steer.vectors import ShiftVectors

    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=110)
    from matplotlib.ticker import MaxNLocator

    cmap = plt.get_cmap("tab10")
    markers = "os^Dvx"
    for i, path in enumerate(vector_files):
        vectors = ShiftVectors.load(path)
        layers = vectors.layers
        color = cmap(i % 10)
        norms = vectors.norms()
        # files often share their shifts (a ShiftDC file stores CMRM's s_l): distinct
        # markers and thinning lines keep overlapping curves visible
        ax.plot(layers, [norms[l] for l in layers], "-", marker=markers[i % len(markers)], ms=7 - min(i, 4),
                lw=max(0.8, 2.4 - 0.5 * i), color=color, label=f"{path.name} ({vectors.method}) |s_l|")
        if vectors.directions is not None:
            along = [abs(float(vectors.shifts[l] @ vectors.directions[l])) for l in layers]
            ax.plot(layers, along, "--", color=color, label=f"{path.name} |s_l . v_l| (safety part)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("decoder layer (0-based)")
    ax.set_ylabel("norm")
    ax.set_title("shift per layer: what steering subtracts (before alpha and schedule)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return figure_png(fig)
