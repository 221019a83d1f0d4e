"""Tables for a terminal: layouts that stay readable at 80 columns.

A comparison of a few variants over several datasets does not fit one 80-column row per
variant (every header and label ends in ``…``). Here each dataset gets its own small
table -- rows are variants, columns the measures under short names with ``n`` in the
header, a rate's 95% CI under it when ``n`` is below :data:`~steer.eval.stats.CI_BELOW_N`
-- and every column folds long text onto more lines instead of cutting it.
"""

from __future__ import annotations

from typing import Any, Sequence

from steer.eval.stats import CI_BELOW_N, format_rate

#: Short column names for the terminal (the Markdown/JSON keep the long ones; ci_note explains).
SHORT_MEASURE = {
    "unsafe_rate": "unsafe",
    "unsafe_rate_onset": "onset",
    "over_refusal_rate": "over-ref",
    "over_refusal_rate_onset": "over-ref onset",
    "utility": "utility",
    "unsafe_rate_llm": "LLM unsafe",
}


def rate_cell(cell: dict[str, Any] | None) -> str:
    """``19%`` over ``[6-38]`` (the CI, when n is small): narrow columns, nothing cut."""
    if cell is None or not cell.get("n"):
        return "-"
    text = format_rate(cell["rate"], int(cell["n"]), cell.get("low"), cell.get("high"), percent=True, with_n=False)
    return text.replace(" [", "\n[", 1).replace("%]", "]")


def compare_tables(result: Any) -> list[tuple[str, list[list[str]]]]:
    """(title, grid) per dataset of a :class:`~steer.eval.compare.CompareResult`, header row first,
    then one (title, grid) for tokens/s."""
    tables = []
    for ds in result.datasets:
        cols = [c for c in result.columns if c["dataset"] == ds]
        head = ["variant"]
        for c in cols:
            ns = {int(r["cells"][c["key"]]["n"]) for r in result.rows if r["cells"].get(c["key"])}
            n_text = "n=" + "/".join(str(n) for n in sorted(ns)) if ns else ""
            head.append(f"{SHORT_MEASURE.get(c['measure'], c['measure'])}\n{n_text}".strip())
        body = [[r["variant"], *(rate_cell(r["cells"].get(c["key"])) for c in cols)] for r in result.rows]
        n_items = result.rows[0]["n"].get(ds, 0) if result.rows else 0
        tables.append((f"{ds} ({n_items} items)", [head, *body]))
    speed = [["variant", "tokens/s"]] + [
        [r["variant"], "-" if r["tokens_per_s"] is None else f"{r['tokens_per_s']:.1f}"] for r in result.rows
    ]
    tables.append(("speed", speed))
    return tables


def ci_note() -> str:
    """The legend line under the tables."""
    return (
        f"Rates in % of the n items; [low-high]: 95% bootstrap CI, shown when n < {CI_BELOW_N}. "
        "unsafe: harmful not completely refused; onset: answer does not start as a refusal; "
        "over-ref: benign completely refused; utility: answer match."
    )


def rich_table(grid: Sequence[Sequence[str]], title: str | None = None, *, first_left: bool = True):
    """A rich Table of ``grid`` (header row first) whose columns fold, never cut, long text."""
    from rich.table import Table

    table = Table(show_header=True, header_style="bold", title=title, title_justify="left")
    for i, name in enumerate(grid[0]):
        table.add_column(
            name, justify="left" if (i == 0 and first_left) else "right", overflow="fold", min_width=4
        )
    for row in grid[1:]:
        table.add_row(*row)
    return table


def cells_lines(by_cell: dict[str, Any]) -> list[str]:
    """One line per evaluation cell (stacked: wraps at word boundaries at any width):
    ``image_harmful_text (16 items): unsafe 19% [6-38%] n=16; onset 12% [0-25%] n=16``."""
    lines = []
    for name, s in by_cell.items():
        parts = [
            f"{SHORT_MEASURE[m]} {getattr(s, m).short(percent=True)}"
            for m in SHORT_MEASURE
            if getattr(s, m) is not None
        ]
        lines.append(f"  {name} ({s.n} items): " + "; ".join(parts))
    return lines
