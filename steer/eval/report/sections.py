"""The report's HTML fragments: every piece that depends on the data.

The page's fixed markup, CSS and prose are the template (``templates/report.html``,
rendered by :mod:`steer.eval.report.page`); what is built here is what repeats or varies
with the run -- table rows, the verdict line, sample items -- each piece of text escaped.
The ``*_fields`` functions return the template's fields for one section.
"""

from __future__ import annotations

import html
import math
import re
from typing import Any, Sequence

from steer.eval.compare import WIDE_TABLE
from steer.eval.report.charts import LOWER_IS_BETTER
from steer.eval.report.images import data_uri, item_thumbnail
from steer.eval.report.inputs import CompareRun, SweepView
from steer.eval.report.samples import SampleItem
from steer.eval.verdict import CompareVerdict

__all__ = ["SETTING_KEYS", "comparison_fields", "escape", "plot_img", "samples_html", "sweep_body", "verdict_fields"]

#: Settings shown per variant, in this order (the keys ``compare.md`` lists too).
SETTING_KEYS = ("method", "level", "alpha", "layers", "positions", "schedule", "threshold",
                "null_image", "vectors", "probe", "projector")


def escape(value: Any) -> str:
    """Escape anything for HTML text or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def _rate_cell(cell: dict | None, measure: str) -> str:
    """A table cell: the rate and its CI, tinted by how good it is (red: bad, green: good)."""
    if cell is None:
        return '<td class="num">-</td>'
    rate = float(cell["rate"])
    badness = rate if measure in LOWER_IS_BETTER else 1.0 - rate
    tint = f"rgba({int(200 * badness + 40)},{int(170 * (1 - badness) + 40)},70,0.22)"
    title = f"{cell.get('k', '?')} of {cell.get('n', '?')} items"
    return (
        f'<td class="num" style="background:{tint}" title="{escape(title)}">{rate:.3f}'
        f"<br><small>[{float(cell['low']):.2f}, {float(cell['high']):.2f}]</small></td>"
    )


def _breakable(text: Any) -> str:
    """Escaped text with a line-break chance after ``: @ / _ - |``, so a long dataset or
    variant name wraps at its punctuation instead of mid-word (the parsed text is unchanged)."""
    return re.sub(r"([:@/_|-])", r"\1<wbr>", escape(text))


def _column_head(column: dict) -> str:
    """Dataset, then the measure: two pieces that wrap between each other, not inside."""
    dataset = str(column.get("dataset", ""))
    title = str(column["title"])
    if dataset and title.startswith(dataset):
        return f'<th><span class="ds">{_breakable(dataset)}</span> {escape(title[len(dataset):].strip())}</th>'
    return f"<th>{_breakable(title)}</th>"


def _tps_cell(row: dict) -> str:
    tps = row.get("tokens_per_s")
    return f'<td class="num">{"-" if tps is None else f"{float(tps):.1f}"}</td>'


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def plot_img(png: bytes, alt: str) -> str:
    return f'<img class="plot" alt="{escape(alt)}" src="{data_uri(png, "image/png")}">'


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def comparison_fields(run: CompareRun) -> dict[str, str]:
    """The comparison section's fields: the table (variants as rows; transposed, a row per
    measure, when there are more measures than :data:`WIDE_TABLE` and than variants -- the
    rule of the Markdown and terminal tables -- so a many-dataset comparison fits a 1280 px
    page instead of scrolling), the items per dataset, and each variant's settings."""
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
    counts = (rows[0].get("n") or {}) if rows else {}
    settings_rows = []
    for row in rows:
        st = row.get("settings") or {}
        parts = [f"<code>{escape(k)}={escape(st[k])}</code>" for k in SETTING_KEYS if st.get(k) is not None]
        settings_rows.append(f"<tr><th>{_breakable(row['variant'])}</th><td>{' '.join(parts) or 'unsteered'}</td></tr>")
    return {
        "comparison_table": "\n".join(lines),
        "items_per_dataset": ", ".join(f"{escape(ds)}: {int(counts.get(ds, 0))}" for ds in run.datasets),
        "settings_rows": "".join(settings_rows),
    }


def verdict_fields(verdict: CompareVerdict) -> dict[str, str]:
    """The block a reader acts on: the best variant and, per variant, gap closed, utility
    cost, speed; with the numbers the rule under the table names (floor, gap)."""
    base = verdict.row(verdict.baseline) if verdict.baseline else None
    if verdict.best is not None and base is not None:
        b = verdict.row(verdict.best)
        speed = "" if b.tokens_per_s is None else f", {b.tokens_per_s:.1f} tokens/s"
        if base.tokens_per_s and b.tokens_per_s is not None:
            speed += f" ({b.tokens_per_s / base.tokens_per_s:.2f}x the baseline's)"
        gap = (f"closes {_pct(b.gap_closed)} of the gap (image unsafe {_fmt(base.image_unsafe)} &rarr; "
               f"{_fmt(b.image_unsafe)}; target {_fmt(verdict.target)})" if b.gap_closed is not None
               else f"image unsafe {_fmt(base.image_unsafe)} &rarr; {_fmt(b.image_unsafe)} (no gap to close)")
        lead = (f"<b>Best: <code>{escape(b.variant)}</code></b> &mdash; {gap} at a utility cost of "
                f"{_fmt(b.utility_cost)} ({verdict.utility_kind} {_fmt(base.utility)} &rarr; {_fmt(b.utility)}){speed}.")
    else:
        lead = f"<b>No best variant named</b>: {escape(verdict.no_best_reason)}."
    body = []
    for v in verdict.rows:
        cls = ' class="best"' if v.variant == verdict.best else ""
        cells = [_fmt(v.image_unsafe), _pct(v.gap_closed), _fmt(None if v.safety is None else 1.0 - v.safety),
                 _fmt(v.utility), _fmt(v.utility_cost), "-" if v.tokens_per_s is None else f"{v.tokens_per_s:.1f}"]
        body.append(f"<tr{cls}><th>{_breakable(v.variant)}</th>" + "".join(f'<td class="num">{c}</td>' for c in cells) + "</tr>")
    return {
        "verdict_lead": lead,
        "verdict_rows": "".join(body),
        "utility_kind": escape(verdict.utility_kind or "none"),
        "floor": _fmt(verdict.floor),
        "floor_rule": escape(verdict.floor_rule),
        "gap_target": ("the baseline's text-only unsafe rate" if verdict.target_kind == "text-only"
                       else "zero (no text-only harmful set in this run)"),
        "gap_value": f" = {_fmt(verdict.gap)}" if verdict.gap is not None else "",
    }


def sweep_body(view: SweepView) -> str:
    parts = [plot_img(view.png, "sweep frontier: safety against utility")]
    if view.best is not None:
        b = view.best
        parts.append(
            f"<p><b>Best setting</b> (highest safety with utility at or above the floor {escape(_fmt(view.floor))}"
            f"{'; ' + escape(view.floor_rule) if view.floor_rule else ''}): layers <code>{escape(b.get('layers'))}</code>, "
            f"alpha <code>{escape(_fmt(b.get('alpha'), 2))}</code>, schedule <code>{escape(b.get('schedule'))}</code>, "
            f"positions <code>{escape(b.get('positions'))}</code>, method <code>{escape(b.get('method'))}</code>: "
            f"unsafe {escape(_fmt(b.get('unsafe_rate')))} (onset {escape(_fmt(b.get('unsafe_rate_onset')))}), "
            f"utility {escape(_fmt(b.get('utility')))}.</p>"
        )
    elif view.floor is not None:
        parts.append(f"<p>No steered setting keeps utility at or above the floor {escape(_fmt(view.floor))}.</p>")
    shown = ("cell", "method", "layers", "alpha", "schedule", "positions", "unsafe_rate", "unsafe_rate_onset",
             "over_refusal", "utility", "utility_kind", "tokens_per_s")
    head = "".join(f"<th>{escape(k)}</th>" for k in shown)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{escape(_fmt(r.get(k)))}</td>' for k in shown) + "</tr>" for r in view.rows
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
    tags = [f'<span class="tag {outcome[0]}">{escape(outcome[1])}</span>', f'<span class="tag verdict">{escape(verdict)}</span>']
    if row.get("correct") is not None:
        tags.append(f'<span class="tag {"good" if row["correct"] else "bad"}">{"correct" if row["correct"] else "wrong"} answer</span>')
    return "".join(tags)


def samples_html(run: CompareRun, samples: Sequence[SampleItem]) -> str:
    if not samples:
        return '<p class="muted">No per-item results found (runs/*.jsonl), so no items to show.</p>'
    search_dirs = [run.results_dir]
    out = []
    for item in samples:
        uri, caption = item_thumbnail(item.image, search_dirs)
        if uri:
            picture = f'<img alt="{escape(caption)}" src="{uri}"><div>{escape(caption)}</div>'
        else:
            picture = f'<div class="nothumb">{escape(caption)}</div>'
        meta = [f'<span class="tag label-{escape(item.label)}">{escape(item.label)}</span>', f"<code>{escape(item.dataset)}</code>",
                f"id <code>{escape(item.item_id)}</code>"]
        if item.category:
            meta.append(f"category {escape(item.category)}")
        if item.answer is not None:
            meta.append(f"reference answer <code>{escape(item.answer)}</code>")
        answers = []
        for variant in run.variants:
            row = item.results.get(variant)
            if row is None:
                answers.append(f'<div class="answer"><h4>{escape(variant)}</h4><p class="muted">no result for this item</p></div>')
                continue
            answers.append(
                f'<div class="answer"><h4>{escape(variant)}</h4><div>{_verdict_tags(row)}</div>'
                f"<p>{escape(row.get('response'))}</p></div>"
            )
        out.append(
            f'<div class="item"><div class="item-head"><div class="thumb">{picture}</div>'
            f'<div class="prompt"><div class="muted">{" &middot; ".join(meta)}</div>{escape(item.prompt)}</div></div>'
            f'<div class="answers">{"".join(answers)}</div></div>'
        )
    return "\n".join(out)
