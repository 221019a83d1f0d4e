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

One module per concern, all public names importable from here:

* :mod:`~steer.eval.report.inputs` -- reading a compare folder (:func:`load_compare_dir`),
  a sweep folder (:func:`read_sweep_dir`) and the vector files to plot;
* :mod:`~steer.eval.report.samples` -- which items are shown (:func:`choose_samples`);
* :mod:`~steer.eval.report.images` and :mod:`~steer.eval.report.charts` -- thumbnails and
  plots, embedded as ``data:`` URIs;
* :mod:`~steer.eval.report.sections` -- the HTML fragments that depend on the data;
* :mod:`~steer.eval.report.page` -- the page: ``templates/report.html`` (package data)
  filled in with :class:`string.Template` (:func:`render_report`, :func:`write_report`).
"""

from steer.eval.report.charts import compare_chart_png, shift_norms_png
from steer.eval.report.images import item_thumbnail
from steer.eval.report.inputs import (
    CompareRun,
    SweepView,
    find_vector_files,
    image_datasets,
    load_compare_dir,
    read_sweep_dir,
)
from steer.eval.report.page import render_report, write_report
from steer.eval.report.samples import DEFAULT_SAMPLES, SampleItem, choose_samples

__all__ = [
    "DEFAULT_SAMPLES",
    "CompareRun",
    "SampleItem",
    "SweepView",
    "choose_samples",
    "compare_chart_png",
    "find_vector_files",
    "image_datasets",
    "item_thumbnail",
    "load_compare_dir",
    "read_sweep_dir",
    "render_report",
    "shift_norms_png",
    "write_report",
]
