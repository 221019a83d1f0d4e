"""What a report reads: a compare output folder, a sweep folder, the vector files used.

Inputs are only the compare output folder (``compare.json`` and ``runs/*.jsonl``), so
``steer compare --html`` and a later ``steer report DIR`` give the same file.  Each reader
checks that a folder is what it claims to be and says which command writes it when not.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from steer.errors import SteerInputError
from steer.eval.report.charts import plot_via_file

__all__ = ["CompareRun", "SweepView", "find_vector_files", "image_datasets", "load_compare_dir", "read_sweep_dir"]


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


def image_datasets(run: CompareRun) -> set[str] | None:
    """Datasets whose items carry an image (None when the run folder has no per-item rows to tell)."""
    if not run.rows:
        return None
    return {ds for (_, ds), rows in run.rows.items() if any(r.get("image") not in (None, "") for r in rows.values())}


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

        png = plot_via_file(plot_frontier, rows, floor=floor, best=best)
    return SweepView(png, rows, best, floor, meta.get("floor_rule"))
