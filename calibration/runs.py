"""Each offline command in one call: from a model path and data to a written artifact.

``steer calibrate``, ``steer probe``, ``steer train-tga`` and ``steer inspect-layers``
are thin parsers over these functions. Each checks every option and the data before
the model loads (a typo fails in a second, not after the model loaded), loads the model,
does the work with the functions of this package, writes the artifact atomically and
returns a result whose ``rows()`` / ``lines()`` are the table and lines the CLI prints.

Notes meant for a person while the work runs (a stale checkpoint, a resumed one) go to
``echo`` / ``note`` callables; by default they are dropped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from steer.atomic import check_output_path, existing_paths
from steer.errors import SteerInputError
from steer.layer_spec import band_spec, parse_layers
from steer.text_table import Grid, cell_text
from steer.textfiles import check_text_inputs
from steer.vectors import ShiftVectors

Echo = Optional[Callable[[str], None]]


def _say(echo: Echo, line: str) -> None:
    if echo is not None:
        echo(line)


def _load_model(model: str, **options: Any):
    from steer.model import SteeredModel

    return SteeredModel.from_pretrained(model, **options)


# ------------------------------------------------------------------------- calibrate


@dataclass
class CalibrationRun:
    """A written vector file and what the CLI prints about it.

    ``rank`` / ``world``: this process's place under torchrun (only rank 0 writes and prints).
    """

    vectors: ShiftVectors
    out: Path
    method: str
    seconds: float
    rank: int = 0
    world: int = 1
    recipe_text: str = ""

    @property
    def title(self) -> str:
        if self.method == "contrast":
            return f"contrast vectors ({self.vectors.metadata['contrast']['method']})"
        return f"{self.method} shift vectors"

    def rows(self) -> Grid:
        """Per layer: the shift norm and the statistics calibration recorded (header row first)."""
        stats = self.vectors.metadata.get("stats", {})
        if self.method == "contrast":
            grid = [["layer", "|v_l|", "agreement", "pc1 share"]]
            for layer, norm in self.vectors.norms().items():
                st = stats[str(layer)]
                grid.append([str(layer), f"{norm:.4g}", f"{st['agreement']:.2f}", f"{st['pc1_share']:.2f}"])
            return grid
        shiftdc = self.method == "shiftdc"
        grid = [["layer", "|s_l|", "consistency", "separability"] + (["cos(s_l, v_l)"] if shiftdc else [])]
        for layer, norm in self.vectors.norms().items():
            st = stats.get(str(layer), {})
            row = [str(layer), cell_text(norm), cell_text(st.get("consistency")), cell_text(st.get("separability"))]
            grid.append(row + ([cell_text(st.get("cos_dir"))] if shiftdc else []))
        return grid

    def lines(self) -> list[str]:
        """The summary under the table: what was written, from how much data, in how long."""
        vecs, meta = self.vectors, self.vectors.metadata
        if self.method == "contrast":
            return [
                f"wrote {self.out}: {len(vecs.layers)} layers, d={vecs.hidden_size}, {meta['n_samples']} pairs; "
                f"positions={meta['positions']} schedule={meta['schedule']} alpha={meta['default_alpha']:g}; "
                "alpha > 0 steers toward the positive prompts"
            ]
        norms = list(vecs.norms().values())
        extra = ""
        if self.method == "shiftdc":
            safety = meta.get("safety", {})
            extra = f", safety direction from {safety.get('n_harmful')} harmful / {safety.get('n_benign')} benign prompts"
        return [
            f"wrote {self.out}: {len(vecs.layers)} layers ({vecs.layers[0]}-{vecs.layers[-1]}), d={vecs.hidden_size}, "
            f"{meta.get('n_samples')} anchors{extra}; |s_l| {min(norms):.4g}..{max(norms):.4g}; "
            f"pool={meta.get('pooling')} reduce={meta.get('reduce')} null_image={meta.get('null_image')}; "
            f"{self.seconds:.1f} s ({meta.get('calibration', {}).get('elapsed_s', 0):.1f} s calibrating"
            f"{f', {self.world} processes' if self.world > 1 else ''})",
            f"stored {self.recipe_text}",
        ]


def calibrate_file(
    model: str,
    data: str,
    out: str | Path,
    *,
    method: str = "cmrm",
    safety_data: Optional[str] = None,
    layers: str = "all",
    reduce: str = "mean",
    pool: str = "last",
    null_image: str = "blank",
    batch_size: int = 8,
    max_samples: Optional[int] = None,
    seed: int = 0,
    checkpoint_every: Optional[int] = None,
    recipe: Optional[str] = None,
    positions: Optional[str] = None,
    schedule: Optional[str] = None,
    alpha: Optional[str | float] = None,
    level: Optional[str] = None,
    device: Optional[str] = None,
    dtype: Optional[str] = None,
    device_map: Optional[str] = None,
    processor_kwargs: Optional[str | dict] = None,
    force: bool = False,
    echo: Echo = None,
    note: Echo = None,
) -> CalibrationRun:
    """``steer calibrate``: CMRM / ShiftDC / contrast vectors of ``model`` on ``data``, written to ``out``.

    ``recipe``: the stored steering defaults (None: ``measured``; refused for ``contrast``,
    which has its own). ``layers`` uses the CLI syntax ('all', '8-20', '3,5,7').
    ``checkpoint_every``: resumable ``<out>.ckpt`` every N samples. Under torchrun every
    rank calls this; only rank 0 writes the file. ``echo`` gets the checkpoint line,
    ``note`` the warning about an unused checkpoint.
    """
    out = Path(out)
    check_output_path(out, inputs=existing_paths(data, safety_data), force=force)  # a bad output path fails now
    check_text_inputs(data, safety_data)  # a non-UTF-8 data file fails now, naming the byte
    started = time.perf_counter()
    if method == "contrast":  # its own data format and defaults: a separate short path
        return _calibrate_contrast(model, data, out, layers, reduce, pool, batch_size, device, dtype, device_map,
                                   positions, schedule, alpha, safety_data, max_samples, checkpoint_every, recipe, level,
                                   started)
    from calibration import calibrate_cmrm, calibrate_shiftdc, checkpoint_path_for, load_anchors, load_safety_sets
    from calibration.cmrm import check_recipe
    from calibration.distributed import barrier, init_from_env, rank_and_world

    if method not in ("cmrm", "shiftdc"):
        raise SteerInputError(f"unknown method {method!r}; choose cmrm, shiftdc or contrast")
    if method == "shiftdc" and not safety_data:
        raise SteerInputError("--method shiftdc needs --safety-data harmful.jsonl,benign.jsonl (or e.g. advbench,harmless-alpaca)")
    if method == "cmrm" and safety_data:
        raise SteerInputError("--safety-data is for --method shiftdc; drop it or add --method shiftdc")
    device = init_from_env(device, device_map)  # under torchrun: join the group, one GPU per rank
    chosen_recipe = check_recipe(method, recipe or "measured", positions, schedule, alpha, level)  # before the model loads
    parse_layers(layers)  # a bad --layers fails before the model loads too
    load_anchors(data)  # bad data fails here, before the model loads (calibration reads it again)
    if safety_data:
        load_safety_sets(safety_data)
    rank, world = rank_and_world()
    ckpt = checkpoint_path_for(out) if checkpoint_every else None
    if ckpt is None and rank == 0 and checkpoint_path_for(out).exists():
        _say(note, f"note: {checkpoint_path_for(out)} exists but --checkpoint-every is not set, so it is neither used nor removed")
    sm = _load_model(model, device=device, dtype=dtype, device_map=device_map, processor_kwargs=processor_kwargs)
    common = dict(
        layers=parse_layers(layers, sm.adapter.num_layers), pool=pool, reduce=reduce, null_image=null_image,
        batch_size=batch_size, max_samples=max_samples, seed=seed, checkpoint=ckpt, checkpoint_every=checkpoint_every,
        progress=True, keep_checkpoint=True, recipe=chosen_recipe,
    )
    if ckpt is not None and rank == 0 and (ckpt.exists() or world > 1):
        _say(echo, f"checkpoint: {ckpt}{' (resuming)' if ckpt.exists() else ''}")
    if method == "shiftdc":
        vecs = calibrate_shiftdc(sm, data, safety_data=safety_data, **common)
    else:
        vecs = calibrate_cmrm(sm, data, **common)
    if rank == 0:
        vecs.save(out)
    barrier()
    if ckpt is not None:
        ckpt_rank = ckpt if world == 1 else ckpt.with_name(f"{ckpt.name}.rank{rank}-of-{world}")
        ckpt_rank.unlink(missing_ok=True)
    return CalibrationRun(vecs, out, method, time.perf_counter() - started, rank, world, chosen_recipe.describe())


def _calibrate_contrast(model, data, out, layers, reduce, pool, batch_size, device, dtype, device_map,
                        positions, schedule, alpha, safety_data, max_samples, checkpoint_every, recipe, level,
                        started) -> CalibrationRun:
    """``method='contrast'``: :func:`calibration.train_vector` on a pairs file.

    positions/schedule not given take the contrast defaults (text, incremental); given
    explicitly they are stored as given. recipe/level name CMRM/ShiftDC presets and are
    refused here.
    """
    from calibration.contrast import load_pairs, train_vector
    from calibration.recipes import check_settings

    for given, flag in ((safety_data, "--safety-data"), (max_samples, "--max-samples"), (checkpoint_every, "--checkpoint-every"),
                        (recipe, "--recipe"), (level, "--level")):
        if given:
            raise SteerInputError(f"{flag} is not used by --method contrast; drop it")
    contrast_method = {"mean": "mean_diff", "pc1": "pca"}.get(reduce, reduce)
    settings: dict[str, Any] = {"default_alpha": 1.0 if alpha is None else alpha}
    if positions is not None:
        settings["positions"] = positions
    if schedule is not None:
        settings["schedule"] = schedule
    settings["default_alpha"] = check_settings(settings.get("positions", "text"), settings.get("schedule", "incremental"),
                                               settings["default_alpha"])
    pairs = load_pairs(data)  # bad pairs fail before the model loads
    sm = _load_model(model, device=device, dtype=dtype, device_map=device_map)
    vecs = train_vector(sm, pairs, parse_layers(layers, sm.adapter.num_layers), contrast_method,
                        pool=pool, batch_size=batch_size, **settings)
    vecs.metadata["contrast"]["data"] = str(data)
    vecs.save(out)
    return CalibrationRun(vecs, out, "contrast", time.perf_counter() - started)


# ------------------------------------------------------------------------- train-tga


@dataclass
class TgaRun:
    """A written TGA projector artifact (``result``: :class:`calibration.tga.TGAResult`)."""

    result: Any
    out: Path

    def lines(self) -> list[str]:
        """What was trained, on which band, and the final losses."""
        meta = self.result.metadata
        final = meta.get("final", {})
        source = meta.get("layer_band", {}).get("source", "given")
        lines = [
            f"wrote {self.out}: {meta['steps']} steps on {meta['n_samples']} rows, layers {band_spec(self.result.layers)} "
            f"({source}), guide weight {meta['guide_weight']:g}"
            + (f"; resumed at step {self.result.resumed_from}" if self.result.resumed_from else "")
        ]
        if final:
            lines.append(
                f"final (mean of last steps): lm={final['lm']:.4f} guide={final['guide']:.4f} cos(I,C)={final['cos_ic']:.4f}"
            )
        return lines


def train_tga_file(
    model: str,
    data: str | Path,
    out: str | Path,
    *,
    layers: Optional[str] = None,
    harmful: Optional[str | Path] = None,
    steps: Optional[int] = None,
    epochs: int = 1,
    lr: float = 1e-3,
    guide_weight: float = 0.3,
    batch_size: int = 8,
    train_llm: bool = False,
    retriever: str = "auto",
    corpus: Optional[str | Path] = None,
    exclude_same_caption: bool = False,
    prompt_format: str = "Retrieved Text: {R}. <image>\n{question}",
    question: str = "Describe the image briefly.",
    checkpoint: Optional[str | Path] = None,
    checkpoint_every: int = 50,
    resume: bool = True,
    plot: Optional[str | Path] = None,
    seed: int = 0,
    device: Optional[str] = None,
    dtype: Optional[str] = None,
    processor_kwargs: Optional[str | dict] = None,
    force: bool = False,
) -> TgaRun:
    """``steer train-tga``: train a TGA projector on a caption JSONL and write it to ``out``.

    ``layers``: the guide band (None: the logit-lens suggestion, from ``harmful`` prompts
    when given). ``retriever``: auto | column | nearest (``corpus``: the nearest-caption
    corpus, default the training data). ``checkpoint`` (default ``OUT.ckpt`` when
    ``checkpoint_every``) is resumed from and removed once the artifact is written.
    """
    from calibration.logit_lens import read_prompts
    from calibration.retrieval import NearestCaptionRetriever, read_corpus
    from calibration.tga import load_tga_data, train_tga_projector

    out = Path(out)
    check_output_path(out, inputs=existing_paths(data, corpus, harmful), force=force)  # a bad output path fails now
    check_text_inputs(data, corpus, harmful)
    plot is None or check_output_path(plot)
    if retriever not in ("auto", "column", "nearest"):
        raise SteerInputError(f"unknown --retriever {retriever!r}; choose auto, column or nearest")
    parse_layers(layers)  # a bad --layers fails before the model loads
    examples = load_tga_data(data, question=question)
    harmful_prompts = read_prompts(harmful) if harmful is not None else None
    sm = _load_model(model, device=device, dtype=dtype, processor_kwargs=processor_kwargs)
    chosen_retriever = None if retriever == "auto" else retriever
    if retriever == "nearest" or (retriever == "auto" and corpus is not None):
        source = read_corpus(corpus) if corpus is not None else examples
        chosen_retriever = NearestCaptionRetriever(source, adapter=sm.adapter, exclude_same_caption=exclude_same_caption)
    ckpt = Path(checkpoint) if checkpoint is not None else (out.with_name(out.name + ".ckpt") if checkpoint_every else None)
    result = train_tga_projector(
        sm, examples, layers=parse_layers(layers, sm.adapter.num_layers), retriever=chosen_retriever, epochs=epochs,
        steps=steps, lr=lr, guide_weight=guide_weight, batch_size=batch_size, train_llm=train_llm,
        prompt_format=prompt_format, checkpoint=ckpt, checkpoint_every=checkpoint_every, resume=resume,
        progress=True, seed=seed, question=question, harmful_prompts=harmful_prompts,
    )
    result.save(out)
    if ckpt is not None:  # done: a kept checkpoint would block the next run with other settings
        ckpt.unlink(missing_ok=True)
    if plot is not None:
        result.plot_losses(plot, title=f"TGA on {model}")
    return TgaRun(result, out)


# ----------------------------------------------------------------------------- probe


@dataclass
class ProbeRun:
    """A written probe gate file and what the CLI prints about it.

    ``report``: :class:`calibration.probe.ProbeReport`; ``model``: the loaded model, kept
    for :meth:`transfer_report`."""

    report: Any
    items: list
    view: str
    gate_file: Path
    threshold: float
    model: Any
    batch_size: int = 8
    test_fraction: float = 0.25
    seed: int = 0
    plot_path: Optional[Path] = None

    def rows(self) -> Grid:
        """Held-out accuracy / ROC-AUC per layer, the chosen layer marked (header row first)."""
        rows = self.report.rows()
        grid = [[*rows[0], ""]]
        for row in rows:
            cells = [cell_text(v, ".3f") for v in row.values()]
            grid.append([*cells, "chosen" if row["layer"] == self.report.best_layer else ""])
        return grid

    def data_line(self) -> str:
        """How many items of which kind, and the split."""
        items, report = self.items, self.report
        n_h = sum(it.label == "harmful" for it in items)
        return (
            f"{len(items)} items ({n_h} harmful, {len(items) - n_h} benign, {sum(it.image is not None for it in items)} "
            f"with images), view={self.view}; train {len(report.train_index)} / held-out {len(report.test_index)}"
        )

    def lines(self) -> list[str]:
        """The chosen layer and the files written."""
        report, best = self.report, self.report.best
        lines = [
            f"chosen layer: {report.best_layer} (held-out accuracy {best.accuracy:.3f}, ROC-AUC "
            f"{'-' if best.auc is None else f'{best.auc:.3f}'}); steer only layers > {report.best_layer} with this gate",
            f"wrote {self.gate_file} (threshold {self.threshold:g})",
        ]
        return lines + ([f"wrote {self.plot_path}"] if self.plot_path is not None else [])

    def transfer_report(self):
        """The text-only <-> image+text transfer report on the same layers and split (needs items with images);
        computed on demand, after the gate file is written, so a refusal here keeps the file."""
        from calibration.probe import transfer_report

        return transfer_report(self.model, self.items, layers=self.report.layers, batch_size=self.batch_size,
                               test_fraction=self.test_fraction, seed=self.seed)


def fit_probe_file(
    model: str,
    data: str | Path,
    out: str | Path,
    *,
    layers: Optional[str] = None,
    view: str = "as_given",
    plot: Optional[str | Path] = None,
    risk_types: Optional[str] = None,
    threshold: float = 0.5,
    batch_size: int = 8,
    test_fraction: float = 0.25,
    seed: int = 0,
    device: Optional[str] = None,
    dtype: Optional[str] = None,
    processor_kwargs: Optional[str | dict] = None,
    force: bool = False,
) -> ProbeRun:
    """``steer probe``: fit a safety probe per layer on labelled data, write the best layer's as a gate file.

    ``data``: a labelled file or shared set (every row harmful or benign); ``layers``:
    candidates in the CLI syntax (default all but the last); ``risk_types``: a column for
    an extra risk-type head. :meth:`ProbeRun.transfer_report` measures text-only <->
    image+text transfer afterwards.
    """
    from calibration.probe import VIEWS, fit_probe
    from steer.data.specs import load_items
    from steer.gate import check_threshold

    out = Path(out)
    check_output_path(out, inputs=existing_paths(data), force=force)  # a bad output path fails now
    check_text_inputs(data)
    plot is None or check_output_path(plot)
    check_threshold(threshold)
    if view not in VIEWS:  # options are checked before the model loads
        raise SteerInputError(f"unknown view {view!r}; choose one of: {', '.join(VIEWS)}")
    parse_layers(layers)
    items = load_items(data, default_label="harmful")  # a file, or a labelled shared set such as organism:probe
    unlabelled = [
        i + 1 for i, (a, b) in enumerate(zip(items, load_items(data, default_label="benign"))) if a.label != b.label
    ]
    if unlabelled:
        raise SteerInputError(
            f"{data}: rows {unlabelled[:5]}{' ...' if len(unlabelled) > 5 else ''} have no label; "
            "a probe needs 'harmful' or 'benign' on every row"
        )
    sm = _load_model(model, device=device, dtype=dtype, processor_kwargs=processor_kwargs)
    report = fit_probe(sm, items, layers=parse_layers(layers, sm.adapter.num_layers), view=view, batch_size=batch_size,
                       test_fraction=test_fraction, seed=seed, multiclass_column=risk_types)
    run = ProbeRun(report, items, view, report.save(out, threshold=threshold), threshold, sm, batch_size,
                   test_fraction, seed)
    if plot is not None:
        run.plot_path = report.plot(plot)
    return run


# ------------------------------------------------------------------------ inspect-layers


@dataclass
class LensRun:
    """The logit lens over a model's layers (``result``: :class:`calibration.logit_lens.LensResult`)."""

    result: Any
    plot_path: Optional[Path] = None

    def rows(self) -> Grid:
        """Per layer: refusal-token hit rates; '*' marks the suggested band (header row first)."""
        rows = self.result.rows()
        marks = {True: "*", False: ""}
        return [list(rows[0]), *([marks[v] if isinstance(v, bool) else cell_text(v, ".3f") for v in row.values()]
                                 for row in rows)]

    def lines(self) -> list[str]:
        """The suggested TGA band (train-tga's default) and the plot written."""
        lines = [f"suggested band: --layers {band_spec(self.result.band)} ({self.result.band_source})"]
        return lines + ([f"plot: {self.plot_path}"] if self.plot_path is not None else [])

    def heading(self) -> str:
        """What was decoded: how many prompts, which refusal tokens, which top-k."""
        r = self.result
        return f"{r.n_prompts} harmful prompts; refusal tokens {', '.join(r.tokens)} in the top-{r.top_k}"


def find_refusal_layers(
    model: str,
    data: str | Path,
    *,
    benign: Optional[str | Path] = None,
    words: str | list[str] = "sorry,cannot,i,unable,apologize",
    top_k: int = 10,
    plot: Optional[str | Path] = None,
    batch_size: int = 8,
    device: Optional[str] = None,
    dtype: Optional[str] = None,
    processor_kwargs: Optional[str | dict] = None,
) -> LensRun:
    """``steer inspect-layers``: at which layers do refusal tokens enter the top-k on harmful text?

    ``words``: refusal words (a list or comma-separated); ``benign``: control prompts, the
    band then uses harmful-minus-benign hit rates; ``plot``: a PNG of the hit rates."""
    from calibration.logit_lens import logit_lens, read_prompts

    plot is None or check_output_path(plot)  # a bad output path fails now, not after the work
    check_text_inputs(data, benign)
    prompts = read_prompts(data)
    benign_prompts = read_prompts(benign) if benign is not None else None
    word_list = [w.strip() for w in words.split(",") if w.strip()] if isinstance(words, str) else list(words)
    sm = _load_model(model, device=device, dtype=dtype, processor_kwargs=processor_kwargs)
    result = logit_lens(sm, prompts, words=word_list, top_k=top_k, batch_size=batch_size, benign_prompts=benign_prompts)
    if plot is not None:
        result.plot(plot, title=f"logit lens: {model}")
    return LensRun(result, None if plot is None else Path(plot))
