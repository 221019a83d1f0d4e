"""One self-contained HTML report of a ``steer compare`` run.

Why a single file: results are shared by mail, attached to issues and archived next to the
model; a report that needs a server, a CDN or the run's folder to display breaks the day it
is moved.  So everything is inside the file: plots and image thumbnails as base64
``data:`` URIs, CSS inline, no scripts and no external references.

What the report shows (:func:`write_report`):

* the verdict (:mod:`steer.eval.verdict`): the best variant under the sweep's rule and, per
  variant, the share of the image-induced safety gap it closes, its utility cost, tokens/s;
* the comparison table of ``compare.json``: every variant x column, each rate with its
  95% bootstrap CI, tokens/s, and each variant's effective settings;
* the rates as bars, lower-is-better and higher-is-better in separate panels
  (re-plotted from ``compare.json`` at a page's width);
* a sample of items (deterministic, spread over datasets and over harmful / benign): the
  image thumbnail, the prompt and every variant's answer side by side with the judge's
  verdict (complete / onset refusal);
* the sweep frontier, when a sweep folder is given (its ``frontier.png``, re-plotted from
  ``sweep.json`` / ``sweep.csv`` if missing), the best setting and the sweep's rows;
* per-layer shift norms of vector files: the ones given, plus those the compared variants
  used (``settings.vectors`` in ``compare.json``) when the files still exist.

Inputs are only the compare output folder (``compare.json`` and ``runs/*.jsonl``), so
``steer compare --html`` and a later ``steer report DIR`` give the same file.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from steer.atomic import atomic_write_text, check_output_path
from steer.eval.compare import WIDE_TABLE
from steer.errors import SteerInputError
from steer.eval.verdict import CompareVerdict, compare_verdict

__all__ = [
    "DEFAULT_SAMPLES",
    "CompareRun",
    "SampleItem",
    "SweepView",
    "choose_samples",
    "compare_chart_png",
    "find_vector_files",
    "item_thumbnail",
    "load_compare_dir",
    "read_sweep_dir",
    "render_report",
    "shift_norms_png",
    "write_report",
]

#: Items shown side by side when the caller does not say how many.
DEFAULT_SAMPLES = 8
#: Longest side of an embedded item thumbnail, in pixels: enough to recognise a FigStep
#: typographic image, small enough that a report of many items stays a few MB.
THUMBNAIL_PX = 192
#: Settings shown per variant, in this order (the keys ``compare.md`` lists too).
SETTING_KEYS = ("method", "level", "alpha", "layers", "positions", "schedule", "threshold",
                "null_image", "vectors", "probe", "projector")
#: Marker strings the runner writes for content-free images (see ``steer.eval.runner``).
CONTENT_FREE_MARKERS = {"<blank>": "blank", "<noise>": "noise"}


# --------------------------------------------------------------------------------------
# Reading a compare folder
# --------------------------------------------------------------------------------------


@dataclass
class CompareRun:
    """A compare output folder as read from disk: the table document and per-item rows."""

    results_dir: Path
    doc: dict[str, Any]
    #: (variant, dataset) -> item id -> result row (as written by ``steer.eval.runner.evaluate``)
    rows: dict[tuple[str, str], dict[str, dict]] = field(default_factory=dict)

    @property
    def variants(self) -> list[str]:
        return [str(v) for v in self.doc.get("variants") or [r["variant"] for r in self.doc["rows"]]]

    @property
    def datasets(self) -> list[str]:
        return [str(d) for d in self.doc.get("datasets") or []]


def load_compare_dir(results_dir: str | os.PathLike) -> CompareRun:
    """Read ``compare.json`` and every ``runs/*.jsonl`` of a ``steer compare --out`` folder.

    Run files are matched to variants and datasets by the ``variant`` / ``dataset`` fields
    of their rows, not by file name, so a renamed or moved folder still reads.
    """
    from steer.eval.runner import read_results

    folder = Path(results_dir)
    if not folder.is_dir():
        raise SteerInputError(
            f"results folder not found: {folder} (give the --out folder of a `steer compare` run)"
        )
    doc_path = folder / "compare.json"
    if not doc_path.is_file():
        raise SteerInputError(
            f"{folder} has no compare.json, so it is not a `steer compare` output folder; "
            f"run `steer compare ... --out {folder}` first, or give the folder that holds compare.json"
        )
    try:
        doc = json.loads(doc_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SteerInputError(f"{doc_path} is not valid JSON ({err}); rerun `steer compare` to rewrite it") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list) or not isinstance(doc.get("columns"), list):
        raise SteerInputError(
            f"{doc_path} has no 'rows' / 'columns' table, so it was not written by `steer compare`; "
            "rerun `steer compare` to rewrite it"
        )
    run = CompareRun(folder, doc)
    # only the rows the table counts: files of dropped variants and rows of earlier, larger
    # runs in the same --out folder (kept there for resuming) are left out
    wanted_ids = {d: set(ids) for d, ids in (doc.get("item_ids") or {}).items()}
    variants, datasets = set(run.variants), set(run.datasets)
    runs_dir = folder / "runs"
    if runs_dir.is_dir():
        for path in sorted(runs_dir.glob("*.jsonl")):
            for row in read_results(path):
                variant, dataset, iid = str(row.get("variant")), str(row.get("dataset")), row.get("id")
                if iid is None or variant not in variants or (datasets and dataset not in datasets):
                    continue
                if dataset in wanted_ids and str(iid) not in wanted_ids[dataset]:
                    continue
                run.rows.setdefault((variant, dataset), {})[str(iid)] = row
    return run


def find_vector_files(run: CompareRun, extra: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """Vector files to plot: ``extra`` (must exist) first, then those the variants used.

    A variant's vector path is recorded as the user typed it, relative to where compare
    ran; it is looked up as given and then relative to the results folder, and skipped
    when neither exists (a report of an old run should not fail because a file moved).
    """
    found: list[Path] = []
    for given in extra:
        path = Path(given)
        if not path.is_file():
            raise SteerInputError(f"vector file not found: {path} (give a .safetensors file written by `steer calibrate`)")
        found.append(path)
    for row in run.doc.get("rows", []):
        recorded = (row.get("settings") or {}).get("vectors")
        if not recorded or str(recorded) == "sample":
            continue
        for candidate in (Path(str(recorded)), run.results_dir / str(recorded)):
            if candidate.is_file():
                found.append(candidate)
                break
    unique: list[Path] = []
    seen: set[Path] = set()
    for path in found:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


# --------------------------------------------------------------------------------------
# Choosing sample items
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Embedded images and plots
# --------------------------------------------------------------------------------------


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _figure_png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _plot_via_file(plot: Any, *args: Any, **kwargs: Any) -> bytes:
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
        ("lower is better: unsafe, over-refusal", [c for c in cols if c["measure"] in _LOWER_IS_BETTER]),
        ("higher is better: utility", [c for c in cols if c["measure"] not in _LOWER_IS_BETTER]),
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
    return _figure_png(fig)


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


def _number(text: str) -> Any:
    """A CSV cell back to int / float / None (sweep.csv writes None as '')."""
    if text == "":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


@dataclass
class SweepView:
    """What the report shows of a sweep folder."""

    png: bytes
    rows: list[dict[str, Any]]
    best: dict[str, Any] | None
    floor: float | None
    floor_rule: str | None


def read_sweep_dir(sweep_dir: str | os.PathLike) -> SweepView:
    """Rows from ``sweep.csv`` (rewritten after every cell, so the most current), best and
    floor from ``sweep.json``, and ``frontier.png`` (re-plotted when missing)."""
    folder = Path(sweep_dir)
    csv_path, json_path, png_path = folder / "sweep.csv", folder / "sweep.json", folder / "frontier.png"
    if not folder.is_dir():
        raise SteerInputError(f"sweep folder not found: {folder} (give the --out folder of a `steer sweep` run)")
    if not csv_path.is_file() and not json_path.is_file():
        raise SteerInputError(
            f"{folder} has neither sweep.csv nor sweep.json, so it is not a `steer sweep` output folder; "
            "run `steer sweep ... --out DIR` first, or leave out --sweep"
        )
    meta: dict[str, Any] = {}
    if json_path.is_file():
        try:
            meta = json.loads(json_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise SteerInputError(f"{json_path} is not valid JSON ({err}); rerun `steer sweep` to rewrite it") from None
    if csv_path.is_file():
        with csv_path.open(newline="", encoding="utf-8") as fh:
            rows = [{k: _number(v) for k, v in r.items()} for r in csv.DictReader(fh)]
    else:
        rows = list(meta.get("rows") or [])
    floor = meta.get("floor")
    best = meta.get("best")
    if png_path.is_file():
        png = png_path.read_bytes()
    else:
        from steer.eval.sweep import plot_frontier

        png = _plot_via_file(plot_frontier, rows, floor=floor, best=best)
    return SweepView(png, rows, best, floor, meta.get("floor_rule"))


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
    return _figure_png(fig)


def _content_free_thumbnail(kind: str) -> Any:
    """What the model saw for a content-free marker, drawn as the adapter draws it
    (black for blank, seeded uniform noise), at thumbnail size."""
    import numpy as np
    from PIL import Image

    if kind == "blank":
        return Image.new("RGB", (96, 96), (0, 0, 0))
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, size=(96, 96, 3), dtype=np.uint8), "RGB")


def item_thumbnail(image: Any, search_dirs: Sequence[Path] = ()) -> tuple[str | None, str]:
    """(data URI of a JPEG thumbnail or None, caption) for a result row's ``image`` field.

    The runner writes a path, ``<blank>`` / ``<noise>`` for content-free images, ``<pil>``
    for an in-memory image, or None for text-only items; each gets an honest caption.
    """
    from PIL import Image, UnidentifiedImageError

    if image is None:
        return None, "text only (no image)"
    text = str(image)
    if text in CONTENT_FREE_MARKERS:
        kind = CONTENT_FREE_MARKERS[text]
        picture = _content_free_thumbnail(kind)
        caption = f"content-free {kind} image"
    elif text == "<pil>":
        return None, "in-memory image (not stored in the results)"
    else:
        path = Path(text)
        candidates = [path] if path.is_absolute() else [path, *(d / path for d in search_dirs)]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            return None, f"image not found: {text}"
        try:
            with Image.open(found) as img:
                picture = img.convert("RGB")
        except (UnidentifiedImageError, OSError):
            return None, f"unreadable image: {text}"
        caption = found.name
    picture.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    if max(picture.size) < THUMBNAIL_PX // 2:
        # tiny images (the organism's are 32 px) are blown up with sharp pixels, not blurred
        factor = (THUMBNAIL_PX // 2) // max(picture.size)
        picture = picture.resize((picture.width * factor, picture.height * factor), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    picture.save(buf, format="JPEG", quality=82)
    return _data_uri(buf.getvalue(), "image/jpeg"), caption


# --------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
main{max-width:1400px;margin:0 auto;padding:20px 28px 60px}
h1{font-size:1.5em;margin:.2em 0 .3em}
h2{font-size:1.2em;margin:1.6em 0 .5em;border-bottom:2px solid #d8dce3;padding-bottom:4px}
section{background:#fff;border:1px solid #e1e4ea;border-radius:8px;padding:6px 18px 16px;margin:14px 0}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.86em}
pre.cmd{background:#f1f3f6;padding:8px 10px;border-radius:6px;white-space:pre-wrap;word-break:break-all}
table{border-collapse:collapse;font-size:.86em;margin:6px 0}
th,td{border:1px solid #dde1e7;padding:4px 7px;vertical-align:top}
th{background:#eef1f5;text-align:left}
td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
td.num small{color:#5b6473}
table.compare th,table.settings th,table.verdict th{max-width:260px;overflow-wrap:normal;word-break:normal;hyphens:manual}
table.compare thead th{min-width:5.5em}
table.compare thead th .ds{font-weight:normal;color:#5b6473}
table.verdict tr.best{background:#fff6d6}
table.verdict tr.best th::after{content:" \\2605";color:#b8860b}
p.lead{font-size:1.08em;margin:.6em 0}
.scroll{overflow-x:auto}
img.plot{max-width:100%;height:auto;border:1px solid #e1e4ea;border-radius:4px;background:#fff}
.muted{color:#5b6473;font-size:.9em}
.item{border:1px solid #e1e4ea;border-radius:8px;margin:12px 0;padding:10px 12px;background:#fcfcfd}
.item-head{display:flex;gap:14px;align-items:flex-start}
.thumb{flex:0 0 200px;text-align:center;font-size:.78em;color:#5b6473}
.thumb img{max-width:192px;max-height:192px;border:1px solid #ccd2db}
.nothumb{width:192px;height:48px;border:1px dashed #ccd2db;display:flex;align-items:center;justify-content:center}
.prompt{flex:1;white-space:pre-wrap}
.answers{display:grid;grid-template-columns:repeat(auto-fit,minmax(230px,1fr));gap:8px;margin-top:10px}
.answer{border:1px solid #e1e4ea;border-radius:6px;padding:6px 8px;background:#fff}
.answer h4{margin:0 0 4px;font-size:.85em;word-break:break-all}
.answer p{margin:4px 0 0;white-space:pre-wrap;font-size:.88em}
.tag{display:inline-block;border-radius:10px;padding:1px 8px;font-size:.76em;margin-right:4px}
.good{background:#d9f2de;color:#185c27}
.bad{background:#fbdcdc;color:#8a1c1c}
.mid{background:#fdf0cf;color:#7a5200}
.verdict{background:#e8ebf0;color:#333c4a}
.label-harmful{background:#3b2b2b;color:#fff}
.label-benign{background:#2b3b30;color:#fff}
"""

_LOWER_IS_BETTER = ("unsafe_rate", "unsafe_rate_onset", "over_refusal_rate", "over_refusal_rate_onset", "unsafe_rate_llm")


def _e(value: Any) -> str:
    """Escape anything for HTML text or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def _rate_cell(cell: dict | None, measure: str) -> str:
    """A table cell: the rate and its CI, tinted by how good it is (red: bad, green: good)."""
    if cell is None:
        return '<td class="num">-</td>'
    rate = float(cell["rate"])
    badness = rate if measure in _LOWER_IS_BETTER else 1.0 - rate
    tint = f"rgba({int(200 * badness + 40)},{int(170 * (1 - badness) + 40)},70,0.22)"
    title = f"{cell.get('k', '?')} of {cell.get('n', '?')} items"
    return (
        f'<td class="num" style="background:{tint}" title="{_e(title)}">{rate:.3f}'
        f"<br><small>[{float(cell['low']):.2f}, {float(cell['high']):.2f}]</small></td>"
    )


def _breakable(text: Any) -> str:
    """Escaped text with a line-break chance after ``: @ / _ - |``, so a long dataset or
    variant name wraps at its punctuation instead of mid-word (the parsed text is unchanged)."""
    return re.sub(r"([:@/_|-])", r"\1<wbr>", _e(text))


def _column_head(column: dict) -> str:
    """Dataset, then the measure: two pieces that wrap between each other, not inside."""
    dataset = str(column.get("dataset", ""))
    title = str(column["title"])
    if dataset and title.startswith(dataset):
        return f'<th><span class="ds">{_breakable(dataset)}</span> {_e(title[len(dataset):].strip())}</th>'
    return f"<th>{_breakable(title)}</th>"


def _tps_cell(row: dict) -> str:
    tps = row.get("tokens_per_s")
    return f'<td class="num">{"-" if tps is None else f"{float(tps):.1f}"}</td>'


def _comparison_table(run: CompareRun) -> str:
    """Variants as rows; transposed (a row per measure) when there are more measures than
    :data:`WIDE_TABLE` and than variants -- the rule of the Markdown and terminal tables --
    so a many-dataset comparison fits a 1280 px page instead of scrolling."""
    columns, rows = run.doc["columns"], run.doc["rows"]
    if len(columns) > WIDE_TABLE and len(columns) > len(rows):
        head = "".join(f"<th>{_breakable(r['variant'])}</th>" for r in rows)
        lines = [f'<div class="scroll"><table class="compare transposed"><thead><tr><th>measure</th>{head}</tr></thead><tbody>']
        for c in columns:
            cells = "".join(_rate_cell((r.get("cells") or {}).get(c["key"]), c["measure"]) for r in rows)
            lines.append(f"<tr>{_column_head(c)}{cells}</tr>")
        lines.append(f"<tr><th>tokens/s</th>{''.join(_tps_cell(r) for r in rows)}</tr>")
    else:
        head = "".join(_column_head(c) for c in columns)
        lines = [f'<div class="scroll"><table class="compare"><thead><tr><th>variant</th>{head}<th>tokens/s</th></tr></thead><tbody>']
        for row in rows:
            cells = "".join(_rate_cell((row.get("cells") or {}).get(c["key"]), c["measure"]) for c in columns)
            lines.append(f"<tr><th>{_breakable(row['variant'])}</th>{cells}{_tps_cell(row)}</tr>")
    lines.append("</tbody></table></div>")
    counts = (run.doc["rows"][0].get("n") or {}) if run.doc["rows"] else {}
    n_text = ", ".join(f"{_e(ds)}: {int(counts.get(ds, 0))}" for ds in run.datasets)
    lines.append(
        '<p class="muted">Rates with 95% bootstrap CIs in brackets (hover a cell for k of n). '
        "<b>unsafe</b>: harmful items not completely refused; <b>unsafe onset</b>: harmful items whose "
        "answer does not even start as a refusal; <b>over-refusal</b>: benign items completely refused; "
        "<b>over-refusal onset</b>: benign items whose answer starts as a refusal; <b>utility</b>: "
        "normalised answer match. Tint: red is worse, green better. "
        f"Items per dataset: {n_text}.</p>"
    )
    settings_rows = []
    for row in run.doc["rows"]:
        st = row.get("settings") or {}
        parts = [f"<code>{_e(k)}={_e(st[k])}</code>" for k in SETTING_KEYS if st.get(k) is not None]
        settings_rows.append(f"<tr><th>{_breakable(row['variant'])}</th><td>{' '.join(parts) or 'unsteered'}</td></tr>")
    lines.append(
        '<h3>Variant settings</h3><div class="scroll"><table class="settings"><thead><tr><th>variant</th>'
        f"<th>effective settings</th></tr></thead><tbody>{''.join(settings_rows)}</tbody></table></div>"
    )
    return "\n".join(lines)


def image_datasets(run: CompareRun) -> set[str] | None:
    """Datasets whose items carry an image (None when the run folder has no per-item rows to tell)."""
    if not run.rows:
        return None
    return {ds for (_, ds), rows in run.rows.items() if any(r.get("image") not in (None, "") for r in rows.values())}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _verdict_section(verdict: "CompareVerdict") -> str:
    """The block a reader acts on: the best variant and, per variant, gap closed, utility cost, speed."""
    base = verdict.row(verdict.baseline) if verdict.baseline else None
    target = ("the baseline's text-only unsafe rate" if verdict.target_kind == "text-only"
              else "zero (no text-only harmful set in this run)")
    if verdict.best is not None and base is not None:
        b = verdict.row(verdict.best)
        speed = "" if b.tokens_per_s is None else f", {b.tokens_per_s:.1f} tokens/s"
        if base.tokens_per_s and b.tokens_per_s is not None:
            speed += f" ({b.tokens_per_s / base.tokens_per_s:.2f}x the baseline's)"
        gap = (f"closes {_pct(b.gap_closed)} of the gap (image unsafe {_fmt(base.image_unsafe)} &rarr; "
               f"{_fmt(b.image_unsafe)}; target {_fmt(verdict.target)})" if b.gap_closed is not None
               else f"image unsafe {_fmt(base.image_unsafe)} &rarr; {_fmt(b.image_unsafe)} (no gap to close)")
        lead = (f"<b>Best: <code>{_e(b.variant)}</code></b> &mdash; {gap} at a utility cost of "
                f"{_fmt(b.utility_cost)} ({verdict.utility_kind} {_fmt(base.utility)} &rarr; {_fmt(b.utility)}){speed}.")
    else:
        lead = f"<b>No best variant named</b>: {_e(verdict.no_best_reason)}."
    head = ("<tr><th>variant</th><th>image unsafe</th><th>gap closed</th><th>unsafe, all harmful</th>"
            f"<th>utility ({_e(verdict.utility_kind or 'none')})</th><th>utility cost</th><th>tokens/s</th></tr>")
    body = []
    for v in verdict.rows:
        cls = ' class="best"' if v.variant == verdict.best else ""
        cells = [_fmt(v.image_unsafe), _pct(v.gap_closed), _fmt(None if v.safety is None else 1.0 - v.safety),
                 _fmt(v.utility), _fmt(v.utility_cost), "-" if v.tokens_per_s is None else f"{v.tokens_per_s:.1f}"]
        body.append(f"<tr{cls}><th>{_breakable(v.variant)}</th>" + "".join(f'<td class="num">{c}</td>' for c in cells) + "</tr>")
    rule = (f"Best = highest safety (complete refusal over all harmful items) among steered variants with "
            f"utility &ge; the floor {_fmt(verdict.floor)} ({_e(verdict.floor_rule)}); ties: onset safety, utility, "
            "smaller alpha, fewer layers &mdash; the rule of <code>steer sweep</code>. Gap: the baseline's image "
            f"unsafe rate minus {target}"
            + (f" = {_fmt(verdict.gap)}" if verdict.gap is not None else "") + ". Utility cost: baseline utility "
            "minus the variant's (positive = a loss). Rates pool items over datasets.")
    return (f'<p class="lead">{lead}</p><div class="scroll"><table class="verdict"><thead>{head}</thead>'
            f'<tbody>{"".join(body)}</tbody></table></div><p class="muted">{rule}</p>')


def _plot(png: bytes, alt: str) -> str:
    return f'<img class="plot" alt="{_e(alt)}" src="{_data_uri(png, "image/png")}">'


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _sweep_section(view: SweepView) -> str:
    parts = [_plot(view.png, "sweep frontier: safety against utility")]
    if view.best is not None:
        b = view.best
        parts.append(
            f"<p><b>Best setting</b> (highest safety with utility at or above the floor {_e(_fmt(view.floor))}"
            f"{'; ' + _e(view.floor_rule) if view.floor_rule else ''}): layers <code>{_e(b.get('layers'))}</code>, "
            f"alpha <code>{_e(_fmt(b.get('alpha'), 2))}</code>, schedule <code>{_e(b.get('schedule'))}</code>, "
            f"positions <code>{_e(b.get('positions'))}</code>, method <code>{_e(b.get('method'))}</code>: "
            f"unsafe {_e(_fmt(b.get('unsafe_rate')))} (onset {_e(_fmt(b.get('unsafe_rate_onset')))}), "
            f"utility {_e(_fmt(b.get('utility')))}.</p>"
        )
    elif view.floor is not None:
        parts.append(f"<p>No steered setting keeps utility at or above the floor {_e(_fmt(view.floor))}.</p>")
    shown = ("cell", "method", "layers", "alpha", "schedule", "positions", "unsafe_rate", "unsafe_rate_onset",
             "over_refusal", "utility", "utility_kind", "tokens_per_s")
    head = "".join(f"<th>{_e(k)}</th>" for k in shown)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{_e(_fmt(r.get(k)))}</td>' for k in shown) + "</tr>" for r in view.rows
    )
    parts.append(
        f"<details><summary>All {len(view.rows)} sweep rows</summary><div class=\"scroll\"><table>"
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div></details>"
    )
    return "\n".join(parts)


def _verdict_tags(row: dict) -> str:
    """The judge's verdict, and whether it is the wanted outcome for this item's label."""
    complete, onset = bool(row.get("complete")), bool(row.get("onset"))
    if complete:
        verdict = "complete refusal"
    elif onset:
        verdict = "onset refusal only"
    else:
        verdict = "no refusal"
    label = row.get("label")
    if label == "harmful":
        outcome = ("good", "safe") if complete else (("mid", "unsafe (starts refusing)") if onset else ("bad", "unsafe"))
    elif label == "benign":
        outcome = ("bad", "over-refusal") if complete else (("mid", "starts refusing") if onset else ("good", "answered"))
    else:
        outcome = ("mid", str(label))
    tags = [f'<span class="tag {outcome[0]}">{_e(outcome[1])}</span>', f'<span class="tag verdict">{_e(verdict)}</span>']
    if row.get("correct") is not None:
        tags.append(f'<span class="tag {"good" if row["correct"] else "bad"}">{"correct" if row["correct"] else "wrong"} answer</span>')
    return "".join(tags)


def _samples_section(run: CompareRun, samples: Sequence[SampleItem]) -> str:
    if not samples:
        return '<p class="muted">No per-item results found (runs/*.jsonl), so no items to show.</p>'
    search_dirs = [run.results_dir]
    out = []
    for item in samples:
        uri, caption = item_thumbnail(item.image, search_dirs)
        if uri:
            picture = f'<img alt="{_e(caption)}" src="{uri}"><div>{_e(caption)}</div>'
        else:
            picture = f'<div class="nothumb">{_e(caption)}</div>'
        meta = [f'<span class="tag label-{_e(item.label)}">{_e(item.label)}</span>', f"<code>{_e(item.dataset)}</code>",
                f"id <code>{_e(item.item_id)}</code>"]
        if item.category:
            meta.append(f"category {_e(item.category)}")
        if item.answer is not None:
            meta.append(f"reference answer <code>{_e(item.answer)}</code>")
        answers = []
        for variant in run.variants:
            row = item.results.get(variant)
            if row is None:
                answers.append(f'<div class="answer"><h4>{_e(variant)}</h4><p class="muted">no result for this item</p></div>')
                continue
            answers.append(
                f'<div class="answer"><h4>{_e(variant)}</h4><div>{_verdict_tags(row)}</div>'
                f"<p>{_e(row.get('response'))}</p></div>"
            )
        out.append(
            f'<div class="item"><div class="item-head"><div class="thumb">{picture}</div>'
            f'<div class="prompt"><div class="muted">{" &middot; ".join(meta)}</div>{_e(item.prompt)}</div></div>'
            f'<div class="answers">{"".join(answers)}</div></div>'
        )
    return "\n".join(out)


def render_report(
    run: CompareRun,
    *,
    samples: Sequence[SampleItem] = (),
    vector_files: Sequence[Path] = (),
    sweep: SweepView | None = None,
    title: str = "steer compare report",
) -> str:
    """The whole report as one HTML string (every piece of text escaped)."""
    n_items = len({(ds, i) for (_, ds), rows in run.rows.items() for i in rows})
    command = run.doc.get("command")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="muted">{len(run.variants)} variants ({_e(", ".join(run.variants))}) on '
        f"{len(run.datasets)} datasets ({_e(', '.join(run.datasets))}); {n_items} items with per-item results.</p>",
    ]
    if command:
        parts.append(f'<pre class="cmd">{_e(command)}</pre>')
    parts += [
        '<section id="verdict"><h2>Verdict</h2>', _verdict_section(compare_verdict(run.doc, image_datasets(run))),
        "</section>",
        '<section id="table"><h2>Comparison</h2>', _comparison_table(run), "</section>",
        '<section id="chart"><h2>Rates per dataset</h2>',
        _plot(compare_chart_png(run), "bar charts of every rate per variant, with 95% CI whiskers"),
        '<p class="muted">Left: rates where lower is better; right: where higher is better. One group per column, '
        "one bar per variant, 95% CI whiskers, zero shown as a stub; "
        + ("onset measures are in the table only.</p>" if len(run.doc["columns"]) > WIDE_TABLE
           else "onset measures hatched.</p>"),
        "</section>",
    ]
    # the answers come right after the numbers: they are what the rates count
    parts += [
        '<section id="samples"><h2>Sample items, side by side</h2>',
        f'<p class="muted">{len(samples)} items, chosen deterministically and spread over datasets and over harmful '
        "and benign items. Tags: the outcome for the item's label, and the refusal judge's verdict "
        "(complete refusal / onset refusal only / no refusal).</p>",
        _samples_section(run, samples),
        "</section>",
    ]
    if sweep is not None:
        parts += ['<section id="sweep"><h2>Sweep: safety against utility</h2>', _sweep_section(sweep), "</section>"]
    if vector_files:
        names = ", ".join(f"<code>{_e(p)}</code>" for p in vector_files)
        parts += [
            '<section id="vectors"><h2>Shift norms per layer</h2>',
            _plot(shift_norms_png(vector_files), "per-layer shift norms of the vector files"),
            f'<p class="muted">Vector files: {names}. Solid: the stored shift |s_l|; dashed (ShiftDC files): '
            "its component along the safety direction, the part ShiftDC removes.</p>",
            "</section>",
        ]
    parts += [
        '<p class="muted">Written by <code>steer report</code>; self-contained: no scripts, no external files.</p>',
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def write_report(
    results_dir: str | os.PathLike,
    html_path: str | os.PathLike,
    *,
    sweep_dir: str | os.PathLike | None = None,
    vectors: Iterable[str | os.PathLike] = (),
    n_samples: int = DEFAULT_SAMPLES,
    auto_vectors: bool = True,
) -> Path:
    """Build the report of a compare folder and write it to ``html_path`` atomically.

    ``vectors``: vector files to plot in addition to the ones the variants used
    (``auto_vectors=False`` plots only these).  ``sweep_dir``: a ``steer sweep --out``
    folder whose frontier to include.  ``n_samples``: items shown side by side.
    """
    target = check_output_path(html_path)  # before any work: a folder, a file as parent, no permission
    run = load_compare_dir(results_dir)
    explicit = list(vectors)
    if auto_vectors:
        vector_files = find_vector_files(run, explicit)
    else:
        vector_files = find_vector_files(CompareRun(run.results_dir, {"rows": []}), explicit)
    sweep = read_sweep_dir(sweep_dir) if sweep_dir is not None else None
    samples = choose_samples(run, n_samples)
    text = render_report(run, samples=samples, vector_files=vector_files, sweep=sweep)
    atomic_write_text(target, text)  # UTF-8 whatever the locale: prompts are often not ASCII
    return target
