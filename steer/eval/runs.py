"""``steer eval``, ``steer sweep`` and ``steer compare`` in one call each, from a model path.

The engines (:func:`~steer.eval.runner.evaluate`, :func:`~steer.eval.sweep.sweep`,
:func:`~steer.eval.compare.compare`) take a loaded model and ready items. These
functions add what a command does around them, so a Python user gets exactly the CLI's
behaviour: every option and data set is checked before the model loads, named data sets
are resolved, the judge model and the variants are built, and the result carries the
lines or tables the CLI prints. Notes for a person while the work runs go to ``note``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from steer.atomic import check_output_dir, check_output_path, existing_paths
from steer.artifact import check_artifact_path
from steer.errors import SteerInputError
from steer.layer_spec import refuse_empty_layers
from steer.textfiles import check_text_inputs

# the data layer, imported in this one place
from steer.data.items import LABELS, EvalItem
from steer.data.specs import load_items, parse_data_spec

Note = Optional[Callable[[str], None]]


def split_list(text: str) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c'] (the comma-separated options)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def check_label(label: Optional[str]) -> Optional[str]:
    """The --label of unlabelled user-file rows: harmful, benign or None (such rows refused)."""
    if label is not None and label not in LABELS:
        raise SteerInputError(f"unknown --label {label!r}; choose harmful or benign")
    return label


def load_datasets(
    specs: Sequence[str], limit: Optional[int] = None, image_mode: Optional[str] = None, *,
    prefix_ids: bool = False, label: Optional[str] = None,
) -> dict[str, list[EvalItem]]:
    """Dataset label -> items for each spec ('figstep', 'advbench@blank', 'organism:CELL', a file, hf:...).

    Shared sets are checked against the manifest; ``label``: the label of user-file rows
    without one (None: such rows are refused); ``prefix_ids``: item ids become
    ``LABEL/ID`` so items of several sets can share one results file."""
    out: dict[str, list[EvalItem]] = {}
    for spec in specs:
        ds = parse_data_spec(spec, image_mode)
        if ds.label in out:
            raise SteerInputError(f"dataset {ds.label!r} given twice")
        items = load_items(ds, limit, default_label=check_label(label))
        if not items:
            raise SteerInputError(f"dataset {ds.label!r} has no items")
        if prefix_ids:
            items = [
                EvalItem(f"{ds.label}/{it.id}", it.prompt, it.image, it.label, it.category, it.source, it.answer, it.meta)
                for it in items
            ]
        out[ds.label] = items
    return out


def load_llm_judge(judge: Optional[str], device: Optional[str] = None):
    """The --judge model (None: no LLM judge), a one-line error when it cannot load."""
    if judge is None:
        return None
    from steer.eval.judge import LLMJudge

    try:
        return LLMJudge(judge, device=device)
    except OSError as err:
        raise SteerInputError(f"cannot load judge model {judge!r}: {err}") from None


def _load_model(model: str, **options: Any):
    from steer.model import SteeredModel

    return SteeredModel.from_pretrained(model, **options)


def _say(note: Note, line: str) -> None:
    if note is not None:
        note(line)


# ------------------------------------------------------------------------------- eval


def eval_variant_spec(
    steer: Optional[str] = None, *, alpha: Optional[str | float] = None, layers: Optional[str] = None,
    positions: Optional[str] = None, schedule: Optional[str] = None, method: Optional[str] = None,
    projector: Optional[str | os.PathLike] = None, gate: Optional[str | os.PathLike] = None,
    threshold: Optional[float] = None, variant: Optional[str] = None,
):
    """The :class:`~steer.eval.variants.VariantSpec` that ``steer eval``'s steering options describe.

    ``variant``: a spec string instead of the other options (giving both is refused).
    A vector file's stored level decides between ``shiftdc`` and ``shiftdc-sample``."""
    from steer.eval.variants import VariantSpec, parse_layer_spec, parse_variant
    from steer.positions import check_positions
    from steer.schedule import check_schedule
    from steer.steering import check_alpha

    steering_opts = {"--steer": steer, "--alpha": alpha, "--layers": layers, "--positions": positions,
                     "--schedule": schedule, "--method": method, "--projector": projector, "--gate": gate,
                     "--threshold": threshold}
    if variant is not None:
        given = [k for k, v in steering_opts.items() if v is not None]
        if given:
            raise SteerInputError(f"--variant replaces {', '.join(given)}: put them in the spec (e.g. @alpha=0.5)")
        return parse_variant(variant)
    if projector is not None and (steer is not None or gate is not None):
        raise SteerInputError("--projector evaluates the TGA model unsteered; compare it with steering via `steer compare`")
    if gate is not None and steer is None:
        raise SteerInputError("a gate decides where to steer: give --steer vectors too")
    if steer is None and any(v is not None for v in (alpha, layers, positions, schedule, method, threshold)):
        raise SteerInputError("--alpha/--layers/--positions/--schedule/--method need --steer")
    if steer is not None and steer != "sample":
        check_artifact_path(steer, "vectors")
    refuse_empty_layers(layers)
    layer_list = parse_layer_spec(layers)
    positions is None or check_positions(positions)  # checked before the model loads
    schedule is None or check_schedule(schedule)
    opts = dict(
        alpha=None if alpha is None else check_alpha(alpha),
        layers=None if layer_list is None else tuple(layer_list),
        positions=positions,
        schedule=schedule,
    )
    if projector is not None:
        return VariantSpec("tga", path=str(projector), text=f"tga:{projector}")
    if gate is not None:
        return VariantSpec("gated", path=steer, probe=str(gate), threshold=threshold, method=method,
                           text=f"gated:{steer}:{gate}", **opts)
    if steer == "sample":
        if method == "shiftdc":
            raise SteerInputError("sample-level ShiftDC needs safety directions: --variant shiftdc-sample:VECTORS")
        return VariantSpec("cmrm-sample", text="cmrm-sample", **opts)
    if steer is not None:
        from steer.stored_recipe import load_metadata, stored_level

        meta = load_metadata(steer)
        kind = method or ("shiftdc" if meta.get("method") == "shiftdc" else "cmrm")
        if kind == "shiftdc" and stored_level(meta) == "sample":
            kind = "shiftdc-sample"  # the file's recipe is sample level (ShiftDC's measured one)
        return VariantSpec(kind, path=steer, text=f"{kind}:{steer}", **opts)
    return VariantSpec("baseline", text="baseline")


@dataclass
class EvalRun:
    """A finished ``steer eval``: the summary, one summary per evaluation cell, the files written."""

    summary: Any  # steer.eval.runner.EvalSummary
    by_cell: dict[str, Any]
    out: Path
    summary_path: Path

    def lines(self) -> list[str]:
        """The printed summary; with several cells (e.g. --data organism) one line per cell, never one blended rate."""
        lines = self.summary.lines()
        if self.by_cell:
            from steer.eval.terminal import ci_note, cells_lines

            kept = [line for line in lines[2:] if line.lstrip().startswith(("throughput", "gate"))]
            lines = [*lines[:2], f"per cell ({len(self.by_cell)} cells):", *cells_lines(self.by_cell), *kept, ci_note()]
        return [*lines, f"results: {self.out}  summary: {self.summary_path}"]


def evaluate_model(
    model: str,
    data: str,
    out: str | os.PathLike,
    *,
    steer: Optional[str] = None,
    alpha: Optional[str | float] = None,
    layers: Optional[str] = None,
    positions: Optional[str] = None,
    schedule: Optional[str] = None,
    method: Optional[str] = None,
    projector: Optional[str | os.PathLike] = None,
    gate: Optional[str | os.PathLike] = None,
    threshold: Optional[float] = None,
    variant: Optional[str] = None,
    image_mode: Optional[str] = None,
    label: Optional[str] = None,
    limit: Optional[int] = None,
    batch_size: int = 8,
    max_new_tokens: int = 64,
    resume: bool = True,
    judge: Optional[str] = None,
    include_advice: bool = False,
    progress: bool = True,
    device: Optional[str] = None,
    dtype: Optional[str] = None,
    processor_kwargs: Optional[str | dict] = None,
    device_map: Optional[str] = None,
    allow_other_weights: bool = False,
    allow_other_processor_kwargs: bool = False,
    force: bool = False,
    announce: Optional[Callable[[str, str], None]] = None,
) -> EvalRun:
    """``steer eval``: one model or steering setting on one dataset -> per-item JSONL ``out``
    (appended per batch; ``resume`` continues it) and ``OUT.summary.json``.

    The steering options are those of :func:`eval_variant_spec`. ``announce`` is called
    once before generating with (the variant's description, ' on DATA (N items) -> OUT')."""
    out = Path(out)
    check_output_path(out, inputs=existing_paths(data, steer, gate, projector), force=force)  # fails now, not later
    check_text_inputs(data)
    from steer.eval.runner import evaluate, summaries_by_cell, write_summary
    from steer.eval.variants import build_variant

    spec = eval_variant_spec(steer, alpha=alpha, layers=layers, positions=positions, schedule=schedule, method=method,
                             projector=projector, gate=gate, threshold=threshold, variant=variant)
    (name, items), = load_datasets([data], limit, image_mode, label=label).items()
    llm = load_llm_judge(judge, device)
    sm = _load_model(model, device=device, dtype=dtype, device_map=device_map, processor_kwargs=processor_kwargs,
                     allow_other_processor_kwargs=allow_other_processor_kwargs)
    v = build_variant(spec, sm, model=model, device=device, dtype=dtype, device_map=device_map,
                      max_new_tokens=max_new_tokens, allow_other_weights=allow_other_weights)
    if announce is not None:
        announce(v.describe(), f" on {name} ({len(items)} items) -> {out}")
    summary = evaluate(v, items, batch_size=batch_size, out=out, resume=resume, progress=progress,
                       max_new_tokens=max_new_tokens, llm_judge=llm, dataset=name, include_advice=include_advice)
    by_cell = summaries_by_cell(summary, items, include_advice=include_advice)
    summary_path = write_summary(summary, out.with_name(out.stem + ".summary.json"), by_cell)
    return EvalRun(summary, by_cell, out, summary_path)


# ---------------------------------------------------------------------------- compare


@dataclass
class CompareRun:
    """A finished ``steer compare`` (``result``: :class:`~steer.eval.compare.CompareResult`)."""

    result: Any
    html_path: Optional[Path] = None

    def tables(self) -> list[tuple[str, list[list[str]]]]:
        """(title, grid) per dataset and one for tokens/s: small tables that fit 80 columns."""
        from steer.eval.terminal import compare_tables

        return compare_tables(self.result)

    def lines(self) -> list[str]:
        """The files written."""
        r = self.result
        lines = [f"table: {r.markdown_path}  json: {r.json_path}  chart: {r.png_path}"]
        return lines + ([f"report: {self.html_path}"] if self.html_path is not None else [])


def compare_model(
    model: str,
    variants: str | Sequence[str],
    data: str,
    out: str | os.PathLike = "compare",
    *,
    image_mode: Optional[str] = None,
    label: Optional[str] = None,
    limit: Optional[int] = None,
    batch_size: int = 8,
    max_new_tokens: int = 64,
    resume: bool = True,
    judge: Optional[str] = None,
    include_advice: bool = False,
    progress: bool = True,
    device: Optional[str] = None,
    dtype: Optional[str] = None,
    processor_kwargs: Optional[str | dict] = None,
    device_map: Optional[str] = None,
    allow_other_weights: bool = False,
    allow_other_processor_kwargs: bool = False,
    html: Optional[str | os.PathLike] = None,
    command: Optional[str] = None,
    note: Note = None,
) -> CompareRun:
    """``steer compare``: several variant specs ('baseline,cmrm:V,...') on comma-separated datasets.

    Writes compare.md / compare.json / compare.png and runs/ under ``out`` and, with
    ``html``, a self-contained report. ``command``: the command line recorded in the
    results. ``note`` gets each built variant's description."""
    out = Path(out)
    check_output_dir(out)  # a bad output path fails now, not after the work
    html is None or check_output_path(html)
    check_text_inputs(data)
    from steer.eval.compare import compare
    from steer.eval.variants import build_variants, parse_variants

    specs = parse_variants(variants)
    datasets = load_datasets(split_list(data), limit, image_mode, label=label)
    llm = load_llm_judge(judge, device)
    sm = _load_model(model, device=device, dtype=dtype, device_map=device_map, processor_kwargs=processor_kwargs,
                     allow_other_processor_kwargs=allow_other_processor_kwargs)
    built = build_variants(specs, sm, device=device, dtype=dtype, device_map=device_map,
                           max_new_tokens=max_new_tokens, allow_other_weights=allow_other_weights, model_path=model)
    for v in built:
        _say(note, v.describe())
    result = compare(
        built, datasets, out_dir=out, batch_size=batch_size, max_new_tokens=max_new_tokens, llm_judge=llm,
        resume=resume, progress=progress, include_advice=include_advice, command=command,
    )
    html_path = None
    if html is not None:
        from steer.eval.report import write_report

        html_path = write_report(out, html)
    return CompareRun(result, html_path)


# ------------------------------------------------------------------------------ sweep


def sweep_row_line(row: dict) -> str:
    """One finished sweep cell as a line: its settings, unsafe rate (and onset) and utility."""
    from steer.eval.stats import format_rate

    un = format_rate(row.get("unsafe_rate"), row.get("n_unsafe") or 0, row.get("unsafe_rate_low"), row.get("unsafe_rate_high"))
    onset = "-" if row.get("unsafe_rate_onset") is None else f"{row['unsafe_rate_onset']:.2f}"
    u = format_rate(row.get("utility"), row.get("n_utility_rate") or 0, row.get("utility_low"), row.get("utility_high"))
    return (
        f"cell {row['cell']}: {row['method']} layers={row['layers']} alpha={row['alpha']:g} "
        f"schedule={row['schedule']} positions={row['positions']}: unsafe {un} (onset {onset}), utility {u}"
    )


def sweep_model(
    model: str,
    steer: str,
    safety_data: str,
    *,
    utility_data: Optional[str] = None,
    out: str | os.PathLike = "sweep",
    layers: Optional[str] = None,
    alpha: str = "0:2:0.25",
    schedule: Optional[str] = None,
    positions: Optional[str] = None,
    method: Optional[str] = None,
    level: Optional[str] = None,
    utility_floor: Optional[float] = None,
    image_mode: Optional[str] = None,
    limit: Optional[int] = None,
    batch_size: int = 8,
    max_new_tokens: int = 64,
    resume: bool = True,
    progress: bool = True,
    allow_other_weights: bool = False,
    device: Optional[str] = None,
    dtype: Optional[str] = None,
    processor_kwargs: Optional[str | dict] = None,
    device_map: Optional[str] = None,
    note: Note = None,
    on_row: Optional[Callable[[dict], None]] = None,
):
    """``steer sweep``: layer sets x alphas (x schedules x positions) of vector file ``steer``
    (or 'sample') -> :class:`~steer.eval.sweep.SweepResult` with sweep.csv, frontier.png,
    sweep.json and runs/ under ``out``.

    Grids use the CLI syntax: ``layers`` '4-12;8-12' or 'each:4-12', ``alpha`` '0:2:0.25'
    or '0.5,1', comma-separated ``schedule`` / ``positions``. Unlabelled rows of
    ``safety_data`` are harmful, of ``utility_data`` benign. ``level``: the file's stored
    level by default. ``note`` gets the grid size, ``on_row`` each finished cell's row
    (:func:`sweep_row_line` prints one)."""
    from steer.eval.sweep import parse_alpha_grid, parse_layer_grid, sweep
    from steer.positions import check_positions
    from steer.schedule import SCHEDULES

    out = Path(out)
    check_output_dir(out)  # a bad output path fails now, not after the work
    check_text_inputs(safety_data, utility_data)
    refuse_empty_layers(layers)
    alphas = parse_alpha_grid(alpha)
    schedules = split_list(schedule) if schedule else [None]
    for s in schedules:
        if s is not None and s not in SCHEDULES:
            raise SteerInputError(f"unknown schedule {s!r}; choose from {', '.join(SCHEDULES)}")
    pos_list = [check_positions(p) for p in split_list(positions)] if positions else [None]
    parse_layer_grid(layers)  # syntax errors fail before the model loads (layer numbers are checked after)
    if method is not None and method not in ("cmrm", "shiftdc"):
        raise SteerInputError(f"unknown method {method!r}; choose cmrm or shiftdc")
    if level is not None and level not in ("dataset", "sample"):
        raise SteerInputError(f"unknown level {level!r}; choose dataset or sample")
    if steer != "sample":
        check_artifact_path(steer, "vectors")
        from steer.stored_recipe import load_metadata, stored_level

        if method != "cmrm":  # the file's recipe unless told otherwise (sample level is ShiftDC's)
            level = level or stored_level(load_metadata(steer))
    level = level or "dataset"
    # the option states the role: unlabelled rows of --safety-data are harmful, of --utility-data benign
    safety_sets = load_datasets(split_list(safety_data), limit, image_mode, prefix_ids=True, label="harmful")
    utility_sets = (
        load_datasets(split_list(utility_data), limit, None, prefix_ids=True, label="benign") if utility_data else {}
    )
    safety_items = [it for items in safety_sets.values() for it in items]
    utility_items = [it for items in utility_sets.values() for it in items]
    sm = _load_model(model, device=device, dtype=dtype, device_map=device_map, processor_kwargs=processor_kwargs)
    layer_sets = parse_layer_grid(layers, sm.adapter.num_layers)
    n_cells = len(layer_sets) * len(schedules) * len(pos_list) * len(alphas)
    _say(note, f"sweep: {n_cells} cells + baseline; safety {len(safety_items)} items, utility {len(utility_items)} items -> {out}")
    return sweep(
        sm, steer, safety_items=safety_items, utility_items=utility_items, layer_sets=layer_sets, alphas=alphas,
        schedules=schedules, positions=pos_list, method=method, level=level, out_dir=out, utility_floor=utility_floor,
        batch_size=batch_size, max_new_tokens=max_new_tokens, resume=resume, progress=progress, on_row=on_row,
        allow_other_weights=allow_other_weights,
    )
