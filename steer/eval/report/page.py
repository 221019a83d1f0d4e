"""The whole report page: the template filled in, and written to disk.

The page's markup, CSS and fixed prose live in ``templates/report.html`` (package data,
read with :mod:`importlib.resources`, so an installed wheel finds it as a checkout does)
and are filled in with :class:`string.Template`: a ``$name`` placeholder cannot clash with
the CSS braces, and no template engine is needed.  Sections that only some runs have (the
sweep, the vector norms) are templates of their own that render to '' when absent.
"""

from __future__ import annotations

import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from string import Template
from typing import Iterable, Sequence

from steer.atomic import atomic_write_text, check_output_path
from steer.eval.compare import WIDE_TABLE
from steer.eval.report.charts import compare_chart_png, shift_norms_png
from steer.eval.report.inputs import CompareRun, SweepView, find_vector_files, image_datasets, load_compare_dir, read_sweep_dir
from steer.eval.report.samples import DEFAULT_SAMPLES, SampleItem, choose_samples
from steer.eval.report.sections import comparison_fields, escape, plot_img, samples_html, sweep_body, verdict_fields
from steer.eval.verdict import compare_verdict

__all__ = ["load_template", "render_report", "write_report"]


@lru_cache(maxsize=None)
def load_template(name: str) -> Template:
    """A template of ``steer/eval/report/templates`` (``report.html``, ``sweep_section.html``,
    ``vectors_section.html``), read as package data."""
    text = resources.files("steer.eval.report").joinpath("templates", name).read_text(encoding="utf-8")
    return Template(text)


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
    fields = {
        "title": escape(title),
        "n_variants": len(run.variants),
        "variants": escape(", ".join(run.variants)),
        "n_datasets": len(run.datasets),
        "datasets": escape(", ".join(run.datasets)),
        "n_items": n_items,
        "command": f'<pre class="cmd">{escape(command)}</pre>\n' if command else "",
        **verdict_fields(compare_verdict(run.doc, image_datasets(run))),
        **comparison_fields(run),
        "chart": plot_img(compare_chart_png(run), "bar charts of every rate per variant, with 95% CI whiskers"),
        "onset_note": ("onset measures are in the table only." if len(run.doc["columns"]) > WIDE_TABLE
                       else "onset measures hatched."),
        # the answers come right after the numbers: they are what the rates count
        "n_samples": len(samples),
        "samples": samples_html(run, samples),
        "sweep": "" if sweep is None else load_template("sweep_section.html").substitute(body=sweep_body(sweep)),
        "vectors": "",
    }
    if vector_files:
        fields["vectors"] = load_template("vectors_section.html").substitute(
            plot=plot_img(shift_norms_png(vector_files), "per-layer shift norms of the vector files"),
            names=", ".join(f"<code>{escape(p)}</code>" for p in vector_files),
        )
    return load_template("report.html").substitute(fields)


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
