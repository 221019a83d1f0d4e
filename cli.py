"""`steer` command line: a thin typer layer over the Python API.

Every command parses its options, calls one function of `steer` (runtime) or `calibration`
(offline) with them by name, and prints what it returns (docs/api.md, "The commands as
functions"); bad input ends with a one-line ``error: ...`` and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import NoReturn, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cli_options import (  # the option vocabulary shared by the commands (one declaration per flag)
    DATA_HELP, POSITION_NAMES, SCHEDULE_NAMES, AllowOtherPk, AllowOtherWeights, Alpha, BatchSize, Device,
    DeviceMap, Dtype, FileMethod, Force, Gate, ImageMode, IncludeAdvice, Judge, Label, LimitEach, MaxNewTokens,
    Model, Positions, ProcessorKwargs, Projector, Resume, Schedule, ShowProgress, SteerFile, SteerLayers, Threshold,
    Variant, VectorsArg, data_options,
)
from cli_groups import data_app, organism_app  # the `steer organism ...` and `steer data ...` groups
from steer.errors import SteerError
from steer.layer_spec import parse_layers  # noqa: F401 (cli.parse_layers: the --layers syntax, kept importable here)
from steer.threads import with_threads

app = typer.Typer(
    name="steer",
    help=(
        "Make vision-language models as safe on images as on text.\n\n"
        "Measure how an image shifts a VLM's hidden states (calibrate), store the shift as a "
        "vector file, and subtract it at inference (generate --steer). Layers are 0-based "
        "decoder layers: layer i's output is HF hidden_states[i+1]."
    ),
    no_args_is_help=True,
    rich_markup_mode=None,  # help is plain text: no markup or emoji codes (':V:' in 'gated:V:PROBE' is not an emoji)
    pretty_exceptions_enable=False,
)
# markup and emoji codes off: paths, prompts and error messages are user text ('[/x]', ':smile:'),
# never rich markup; styled pieces are built as rich Text
console = Console(markup=False, emoji=False)
err_console = Console(stderr=True, markup=False, emoji=False)


def _show_version(value: bool) -> None:
    if value:
        from steer.version import __version__

        typer.echo(f"steer {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Make vision-language models as safe on images as on text."""


def _api_options(values: dict, *drop: str) -> dict:
    """A command's parsed options as keyword arguments of the API function it calls (call it first, on
    ``locals()``): each option's parameter name is that function's parameter name, so the CLI keeps no
    second list of them and cannot pass one to the wrong place."""
    return {name: value for name, value in values.items() if name not in drop}


def _say(line: str) -> None:
    """A line of a command's output (stdout), never wrapped or highlighted."""
    console.print(line, highlight=False, soft_wrap=True)


def _note(line: str) -> None:
    """A note beside the output (stderr)."""
    err_console.print(line, highlight=False)


def _print_grid(grid: list[list[str]], title: Optional[str] = None, justify: Optional[list[str]] = None,
                label_width: Optional[int] = None) -> None:
    """Print a grid (header row first) as a table whose columns fold, never cut, long text; ``label_width``: the
    first column's minimum width."""
    table = Table(show_header=True, header_style="bold", title=title)
    for i, col in enumerate(grid[0]):
        table.add_column(col, justify=justify[i] if justify else "right", overflow="fold",
                         min_width=label_width if i == 0 else None)
    for row in grid[1:]:
        table.add_row(*row)
    console.print(table)


@app.command()
@with_threads
def generate(
    model: Model,
    prompt: str = typer.Option(..., "--prompt", "-p", help="The user message."),
    image: Optional[Path] = typer.Option(None, "--image", "-i", help="Image file to attach (PNG/JPEG)."),
    steer: SteerFile = None,
    alpha: Alpha = None,
    layers: SteerLayers = None,
    positions: Positions = None,
    schedule: Schedule = None,
    method: FileMethod = None,
    level: Optional[str] = typer.Option(None, "--level", help="dataset: subtract the file's stored shift; sample: "
        "measure this query's own shift on the file's layers (one extra forward over the prompts' text, the "
        "content-free-image prefix is cached per model; ShiftDC files project it on their safety direction). "
        "Default: the level the file stores."),
    max_new_tokens: MaxNewTokens = 64,
    device: Device = None,
    dtype: Dtype = None,
    processor_kwargs: ProcessorKwargs = None,
    device_map: DeviceMap = None,
    backend: str = typer.Option("native", "--backend", help="native (PyTorch hooks) | nnsight (same steering via nnsight tracing)."),
    allow_other_weights: AllowOtherWeights = False,
    allow_other_processor_kwargs: AllowOtherPk = False,
    gate: Gate = None,
    threshold: Threshold = None,
    projector: Projector = None,
    variant: Variant = None,
) -> None:
    """Generate an answer, optionally steered by a vector file.

    Example: steer generate --model llava-hf/llava-1.5-7b-hf --image bomb.png
    --prompt "how do I make this?" --steer shift.safetensors --alpha 1.0
    """
    options = _api_options(locals())
    from steer.eval.answer import answer_prompt

    typer.echo(answer_prompt(**options, note=_note).text)


@app.command()
def inspect(
    vectors: VectorsArg,
    as_json: bool = typer.Option(False, "--json", help="Print the metadata as JSON."),
) -> None:
    """Show a vector file's provenance and per-layer statistics.

    Per layer: |s_l| (shift norm), cos(s_l, s_prev) (how much of the shift is inherited from
    the previous stored layer), and -- when calibration recorded them -- consistency
    (mean cosine of per-sample shifts with the mean), text-vs-image separability, and for
    ShiftDC files cos(s_l, v_l) and the share of the shift along the safety direction.
    """
    from steer.inspection import inspect_vectors

    report = inspect_vectors(vectors)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True))
        return
    first, *rest = report.lines()
    console.print(Text.assemble((report.path, "bold"), first[len(report.path):]))  # the path in bold
    for line in rest:
        console.print(line)
    _print_grid(report.rows())


@app.command(short_help='Compute CMRM shift vectors or ShiftDC shift + directions.')
@with_threads
@data_options
def calibrate(
    ctx: typer.Context,
    model: Model,
    data: str = typer.Option(..., "--data", "-d", help="Anchor queries: a .jsonl/.csv/.json file (column 'prompt', "
        "optional 'image'), a datasets save_to_disk folder, an image folder with prompts.txt, or a shared set name "
        "(e.g. advbench, harmless-alpaca:train)."),
    out: Path = typer.Option(..., "--out", "-o", help="Vector file to write (.safetensors), atomically."),
    force: Force = False,
    layers: str = typer.Option("all", "--layers", help="Decoder layers to calibrate: 'all', '8-20', '3,5,7'."),
    reduce: str = typer.Option("mean", "--reduce", help="mean | pc1 (first principal component of the shifts)."),
    pool: str = typer.Option("last", "--pool", help="last (last prompt token) | mean (shared text tokens after the image)."),
    null_image: str = typer.Option("blank", "--null-image", help="Content-free image: blank | noise | mean."),
    batch_size: BatchSize = 8,
    max_samples: Optional[int] = typer.Option(None, "--max-samples", min=1, help="Use at most N anchors (a seeded "
        "random subset; also caps each safety side)."),
    seed: int = typer.Option(0, "--seed", help="Seed for --max-samples, the noise image and the probe split."),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", min=1, help="Write a resumable "
        "checkpoint (<out>.ckpt) every N samples; rerun the same command to resume."),
    method: str = typer.Option("cmrm", "--method", help="cmrm | shiftdc (shift + text-only safety direction) | "
        "contrast (a behaviour vector from a JSONL of 'positive'/'negative' prompt pairs given as --data; --reduce "
        "mean or pc1)."),
    safety_data: Optional[str] = typer.Option(None, "--safety-data", help="ShiftDC: 'harmful.jsonl,benign.jsonl' "
        "(files or shared sets, e.g. advbench,harmless-alpaca) or one file with a harmful/benign 'label' column."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1, ... (under torchrun: cuda:LOCAL_RANK)."),
    dtype: Dtype = None,
    processor_kwargs: ProcessorKwargs = None,
    device_map: DeviceMap = None,
    recipe: str = typer.Option("measured", "--recipe", help="Steering defaults stored in the file "
        "(generate/eval/compare use them unless told otherwise). measured: the best measured on the organism (CMRM: "
        "prompt positions, incremental schedule, alpha 1; ShiftDC: sample level, alpha 1). paper: the "
        "paper-literal after_image + cumulative, alpha 1, for replication. --positions/--schedule/--alpha/--level "
        "override it (stored as recipe 'custom')."),
    positions: Optional[str] = typer.Option(None, "--positions", help=f"Stored positions: {POSITION_NAMES}."),
    schedule: Optional[str] = typer.Option(None, "--schedule", help=f"Stored layer schedule: {SCHEDULE_NAMES}."),
    alpha: Optional[str] = typer.Option(None, "--alpha", help="Stored default alpha (steering strength)."),
    level: Optional[str] = typer.Option(None, "--level", help="Stored level: dataset (the stored shift) | sample (each query's own shift)."),
) -> None:
    """Compute per-layer shift vectors (CMRM) or shift + safety directions (ShiftDC).

    Per anchor and layer: delta = h(content-free image + prompt) - h(prompt), pooled on the
    last prompt token (or the shared text tokens); the file stores their mean (or pc1), in
    float64 until written. Under torchrun each rank takes a shard; results are identical.

    Example: steer calibrate --model llava-hf/llava-1.5-7b-hf --data anchors.jsonl
    --out shift.safetensors --layers 8-20 --checkpoint-every 500
    """
    options = _api_options(locals(), "ctx")
    from calibration.runs import calibrate_file

    recipe_given = getattr(ctx.get_parameter_source("recipe"), "name", "") != "DEFAULT"
    options["recipe"] = recipe if recipe_given else None  # contrast refuses a --recipe only when one is given
    run = calibrate_file(**options, note=_note, echo=lambda line: console.print(line, highlight=False))
    if run.rank != 0:
        return
    _print_grid(run.rows(), run.title)
    for line in run.lines():
        console.print(line, highlight=False, soft_wrap=True)


@app.command(short_help='Fit a per-layer safety probe; save the best as a gate.')
@with_threads
@data_options
def probe(
    model: Model,
    data: Path = typer.Option(..., "--data", "-d", help="Labelled data: .jsonl/.csv/.json with 'prompt', 'label' "
        "(harmful/benign), optional 'image', 'category'; or a labelled shared set (e.g. organism:probe)."),
    out: Path = typer.Option(..., "--out", "-o", help="Probe file to write (.safetensors), atomically."),
    force: Force = False,
    layers: Optional[str] = typer.Option(None, "--layers", help="Candidate layers, e.g. '0-10' (default: all but the "
        "last, which could gate nothing)."),
    view: str = typer.Option("as_given", "--view", help="as_given (with each item's image, if any) | text_only (images "
        "dropped)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a per-layer accuracy / ROC-AUC plot (PNG)."),
    risk_types: Optional[str] = typer.Option(None, "--risk-types", help="Also fit a PSA-VLM-style risk-type head on "
        "this column (e.g. 'category')."),
    threshold: float = typer.Option(0.5, "--threshold", help="Default gate threshold stored in the file."),
    transfer: bool = typer.Option(False, "--transfer", help="Also print the text-only <-> image+text transfer table "
        "(needs items with images)."),
    batch_size: BatchSize = 8,
    test_fraction: float = typer.Option(0.25, "--test-fraction", help="Held-out share of each class."),
    seed: int = typer.Option(0, "--seed", help="Seed of the train/test split."),
    device: Device = None,
    dtype: Dtype = None,
    processor_kwargs: ProcessorKwargs = None,
) -> None:
    """Fit a safety probe per layer on labelled hidden states; save the best layer's as a gate.

    Prints held-out accuracy / ROC-AUC per layer and the chosen layer. Use the file with
    `steer generate --steer shift.safetensors --gate probe.safetensors --layers <after the probe layer>`.
    """
    options = _api_options(locals(), "transfer")
    from calibration.runs import fit_probe_file

    run = fit_probe_file(**options)
    console.print(run.data_line(), highlight=False)
    grid = run.rows()
    _print_grid(grid, justify=["right"] * (len(grid[0]) - 1) + ["left"])
    for line in run.lines():
        console.print(line, highlight=False)
    if transfer:
        report = run.transfer_report()
        console.print(f"transfer ({report.mode}; recalibrated thresholds chosen on the train rows of the test view):")
        console.print(report.format_table(), highlight=False, soft_wrap=True)


# ---------------------------------------------------------------------------- evaluation
# `steer eval`, `steer sweep`, `steer compare` (steer/eval/runs.py).


@app.command("eval", short_help='Evaluate one model or setting on a dataset.')
@with_threads
@data_options
def eval_cmd(
    model: Model,
    data: str = typer.Option(..., "--data", "-d", help=DATA_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="Results JSONL (appended per batch; reruns resume from it)."),
    force: Force = False,
    steer: SteerFile = None,
    alpha: Alpha = None,
    layers: SteerLayers = None,
    positions: Positions = None,
    schedule: Schedule = None,
    method: FileMethod = None,
    projector: Projector = None,
    gate: Gate = None,
    threshold: Threshold = None,
    variant: Variant = None,
    image_mode: ImageMode = None,
    label: Label = None,
    limit: LimitEach = None,
    batch_size: BatchSize = 8,
    max_new_tokens: MaxNewTokens = 64,
    resume: Resume = True,
    judge: Judge = None,
    include_advice: IncludeAdvice = False,
    progress: ShowProgress = True,
    device: Device = None,
    dtype: Dtype = None,
    processor_kwargs: ProcessorKwargs = None,
    device_map: DeviceMap = None,
    allow_other_weights: AllowOtherWeights = False,
    allow_other_processor_kwargs: AllowOtherPk = False,
) -> None:
    """Evaluate one model or steering setting on a dataset: per-item JSONL + summary.

    Summary: unsafe rate (harmful items not completely refused) and onset-unsafe rate with 95% bootstrap CIs, over-refusal (complete and onset) on benign items, utility where items have answers, tokens/s. Also written to RESULTS.summary.json.

    Example: steer eval --model llava-hf/llava-1.5-7b-hf --steer shift.safetensors --alpha 1 --data figstep --out figstep_cmrm.jsonl
    """
    options = _api_options(locals())
    from steer.eval.runs import evaluate_model

    run = evaluate_model(**options, announce=lambda what, rest: err_console.print(Text.assemble((what, "bold"), rest),
                                                                                   highlight=False))
    for line in run.lines():
        typer.echo(line)


@app.command("sweep", short_help='Sweep layers x alphas: CSV + safety/utility frontier.')
@with_threads
@data_options
def sweep_cmd(
    model: Model,
    steer: str = typer.Option(..., "--steer", help="Vector file to sweep, or 'sample' (sample-level CMRM)."),
    safety_data: str = typer.Option(..., "--safety-data", help="Comma-separated harmful datasets (rows without a label are harmful). " + DATA_HELP),
    utility_data: Optional[str] = typer.Option(None, "--utility-data", help="Comma-separated benign datasets (answers -> accuracy, else answered rate); rows without a label are benign. Without it no best setting is named."),
    out: Path = typer.Option(Path("sweep"), "--out", "-o", help="Output folder: sweep.csv, frontier.png, sweep.json, runs/."),
    layers: Optional[str] = typer.Option(None, "--layers", help="Layer sets separated by ';' ('4-12;8-12'); 'each:4-12' = every single layer (default: the file's)."),
    alpha: str = typer.Option("0:2:0.25", "--alpha", help="Alpha grid: start:stop:step (stop included) or a list '0.5,1,1.5'."),
    schedule: Optional[str] = typer.Option(None, "--schedule", help="Comma-separated schedules to sweep (default: the file's)."),
    positions: Optional[str] = typer.Option(None, "--positions", help="Comma-separated positions to sweep (default: the file's)."),
    method: FileMethod = None,
    level: Optional[str] = typer.Option(None, "--level", help="dataset | sample: with a ShiftDC file, 'sample' sweeps "
        "sample-level ShiftDC (each query's own shift). Default: the level the file stores."),
    utility_floor: Optional[float] = typer.Option(None, "--utility-floor", help="Best = max safety with utility >= this (default: baseline utility - 0.05)."),
    image_mode: ImageMode = None,
    limit: LimitEach = None,
    batch_size: BatchSize = 8,
    max_new_tokens: MaxNewTokens = 64,
    resume: Resume = True,
    progress: ShowProgress = True,
    allow_other_weights: AllowOtherWeights = False,
    device: Device = None,
    dtype: Dtype = None,
    processor_kwargs: ProcessorKwargs = None,
    device_map: DeviceMap = None,
) -> None:
    """Sweep layer sets x alphas (x schedules x positions): CSV + safety/utility frontier PNG.

    Prints the best setting: the highest safety (1 - unsafe rate, complete refusal) among settings whose utility stays >= the floor.

    Example: steer sweep --model llava-hf/llava-1.5-7b-hf --steer shift.safetensors --layers 8-31 --alpha 0:2:0.25 --safety-data figstep-tiny,advbench@blank --utility-data xstest-safe
    """
    options = _api_options(locals())
    from steer.eval.runs import sweep_model, sweep_row_line

    result = sweep_model(**options, note=_note,
                         on_row=lambda row: err_console.print(sweep_row_line(row), highlight=False, soft_wrap=False))
    typer.echo(result.best_line())
    typer.echo(f"csv: {result.csv_path}  plot: {result.png_path}")


@app.command("compare", short_help='Run variants on datasets: one table and a chart.')
@with_threads
@data_options
def compare_cmd(
    model: Model,
    variants: str = typer.Option(..., "--variants", help="Comma- or ;-separated: baseline, cmrm:V, shiftdc:V, cmrm-sample, "
        "shiftdc-sample:V, tga:PROJECTOR, gated:V:PROBE[:T], and the content-aware caption-cmrm, "
        "caption-shiftdc:V (twin=both, follow=0.5 for twin following), refusal-add:V[:PROBE[:T]]; options after @, "
        "e.g. cmrm:V@alpha=0.5,schedule=incremental (docs/content-steering.md for the content-aware ones)."),
    data: str = typer.Option(..., "--data", "-d", help="Comma-separated datasets. " + DATA_HELP),
    out: Path = typer.Option(Path("compare"), "--out", "-o", help="Output folder: compare.md, compare.json, compare.png, runs/."),
    image_mode: ImageMode = None,
    label: Label = None,
    limit: LimitEach = None,
    batch_size: BatchSize = 8,
    max_new_tokens: MaxNewTokens = 64,
    resume: Resume = True,
    judge: Judge = None,
    include_advice: IncludeAdvice = False,
    progress: ShowProgress = True,
    device: Device = None,
    dtype: Dtype = None,
    processor_kwargs: ProcessorKwargs = None,
    device_map: DeviceMap = None,
    allow_other_weights: AllowOtherWeights = False,
    allow_other_processor_kwargs: AllowOtherPk = False,
    html: Optional[Path] = typer.Option(None, "--html", help="Also write a self-contained HTML report here (same as "
        "`steer report OUT --html FILE`)."),
) -> None:
    """Run several variants on several datasets: one table (Markdown + JSON) and a bar chart.

    Rows = variants; columns = unsafe rate (complete and onset refusal) per dataset, over-refusal (complete and onset), utility, tokens/s.

    Example: steer compare --model llava-hf/llava-1.5-7b-hf --variants baseline,cmrm:V,cmrm-sample --data figstep,advbench@blank,xstest-safe --out cmp/
    """
    options = _api_options(locals())
    from steer.eval.runs import compare_model
    from steer.eval.terminal import ci_note, rich_table

    run = compare_model(**options, command="steer " + " ".join(sys.argv[1:]), note=_note)
    for title, grid in run.tables():  # a small table per dataset: fits 80 columns, nothing cut
        console.print(rich_table(grid, title))
    console.print(ci_note(), highlight=False)
    for line in run.lines():
        typer.echo(line)


@app.command("report", short_help='Build one self-contained HTML report from a compare run.')
def report_cmd(
    results_dir: Path = typer.Argument(..., help="The --out folder of a `steer compare` run (compare.json, runs/)."),
    html: Path = typer.Option(Path("report.html"), "--html", help="HTML file to write (atomically)."),
    sweep_dir: Optional[Path] = typer.Option(None, "--sweep", help="A `steer sweep --out` folder: add its safety/utility frontier."),
    vectors: Optional[list[Path]] = typer.Option(None, "--vectors", help="Vector file whose per-layer shift norms to "
        "plot (repeatable); the compared variants' files are added when they exist."),
    samples: int = typer.Option(8, "--samples", min=0, help="Items shown side by side (spread over datasets, harmful and benign)."),
) -> None:
    """Build one self-contained HTML report from a compare folder: table, charts, sample answers.

    No network is needed to view it: plots and image thumbnails are embedded, CSS is inline, there are no scripts.

    Example: steer report cmp/ --sweep sweep/ --vectors shift.safetensors --html report.html
    """
    from steer.eval.report import write_report

    path = write_report(results_dir, html, sweep_dir=sweep_dir, vectors=vectors or (), n_samples=samples)
    typer.echo(f"report: {path}")


@app.command("train-tga", short_help='Train a TGA projector (image-to-caption alignment).')
@with_threads
def train_tga(
    model: Model,
    data: Path = typer.Option(..., "--data", "-d", help="JSONL of training rows: 'image' (path, relative to the file) "
        "and 'caption'; optional 'question', 'answer' (default: the caption), 'retrieved' (precomputed retrieved "
        "text), 'id'."),
    out: Path = typer.Option(..., "--out", "-o", help="Projector artifact to write (.safetensors), atomically."),
    force: Force = False,
    layers: Optional[str] = typer.Option(None, "--layers", help="Guide band, e.g. '1-3' or '10-18' (default: the "
        "logit-lens suggestion, see inspect-layers)."),
    harmful: Optional[Path] = typer.Option(None, "--harmful", help="Harmful text prompts (JSONL 'prompt' / TXT) for "
        "the logit-lens band when --layers is not given."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Optimizer steps (default: --epochs passes over the data)."),
    epochs: int = typer.Option(1, "--epochs", min=1),
    lr: float = typer.Option(1e-3, "--lr", help="AdamW learning rate of the projector."),
    guide_weight: float = typer.Option(0.3, "--guide-weight", help="Weight of the guide terms (paper: 1.0; 0.3 was the "
        "best trade-off on the organism)."),
    batch_size: BatchSize = 8,
    train_llm: bool = typer.Option(False, "--train-llm", help="Also train the LLM's decoder layers (stored in the artifact)."),
    retriever: str = typer.Option("auto", "--retriever", help="auto | column (the data's 'retrieved') | nearest "
        "(nearest-image caption, query excluded)."),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Caption corpus JSONL (image, caption) for "
        "--retriever nearest (default: the training data)."),
    exclude_same_caption: bool = typer.Option(False, "--exclude-same-caption", help="Nearest retrieval skips corpus "
        "captions equal to the query's own."),
    prompt_format: str = typer.Option("Retrieved Text: {R}. <image>\n{question}", "--prompt-format", help="Training "
        "prompt; {R}, {question}, one <image>."),
    question: str = typer.Option("Describe the image briefly.", "--question", help="Question for rows without one."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Checkpoint file (default: OUT + '.ckpt'); a "
        "rerun resumes from it."),
    checkpoint_every: int = typer.Option(50, "--checkpoint-every", min=0, help="Steps between checkpoints (0: none)."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Resume from the checkpoint (default) or start over."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write the loss curves (PNG)."),
    seed: int = typer.Option(0, "--seed"),
    device: Device = None,
    dtype: Optional[str] = typer.Option(None, "--dtype", help="auto | float32 | bfloat16 | float16 (float32 trains best)."),
    processor_kwargs: ProcessorKwargs = None,
) -> None:
    """Train a TGA projector (arXiv 2410.12662): LM loss + image-to-caption hidden-state alignment.

    The LLM and vision tower stay frozen (unless --train-llm); the base model files are
    never modified. Load the result with `steer generate --projector OUT`.

    Example: steer train-tga --model llava-hf/llava-1.5-7b-hf --data captions.jsonl
    --out tga_projector.safetensors --layers 10-18 --steps 2000
    """
    options = _api_options(locals())
    from calibration.runs import train_tga_file

    run = train_tga_file(**options)
    for line in run.lines():
        _say(line)


@app.command("inspect-layers", short_help='Logit lens: where do refusal tokens appear?')
@with_threads
@data_options
def inspect_layers(
    model: Model,
    data: Path = typer.Option(..., "--data", "-d", help="Harmful text prompts: JSONL with 'prompt' (or TXT, one per "
        "line), or a shared set (advbench, organism:text-harmful)."),
    benign: Optional[Path] = typer.Option(None, "--benign", help="Benign prompts as a control: the band then uses "
        "harmful-minus-benign hit rates."),
    words: str = typer.Option("sorry,cannot,i,unable,apologize", "--words", help="Refusal words (comma-separated)."),
    top_k: int = typer.Option(10, "--top-k", min=1, help="A refusal token counts when it is in the top-k."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write the per-layer hit rates (PNG)."),
    batch_size: BatchSize = 8,
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    device: Device = None,
    dtype: Dtype = None,
    processor_kwargs: ProcessorKwargs = None,
) -> None:
    """Logit lens on harmful text: at which layers do refusal tokens enter the top-k?

    Decodes each decoder layer's last-token state (and its per-layer change) with the
    model's final norm and LM head; suggests the TGA layer band (train-tga's default).
    """
    options = _api_options(locals(), "as_json")
    from calibration.runs import find_refusal_layers

    run = find_refusal_layers(**options)
    if as_json:
        typer.echo(json.dumps(run.result.to_dict(), indent=2, sort_keys=True))
        return
    console.print(run.heading(), highlight=False)
    _print_grid(run.rows())
    for line in run.lines():
        _say(line)


@app.command("export", short_help='Export a vector file for llama.cpp (GGUF).')
def export(
    vectors: VectorsArg,
    out: Path = typer.Argument(..., help="Where to write the exported file (e.g. out.gguf)."),
    force: Force = False,
    fmt: str = typer.Option("gguf", "--format", "-f", help="Output format: gguf (llama.cpp control vector)."),
    alpha: str = typer.Option("1.0", "--alpha", help="Strength baked into the exported vectors."),
    method: FileMethod = None,
    schedule: Schedule = None,
    layers: Optional[str] = typer.Option(None, "--layers", help="Layers to export, e.g. '8-20' (default: all in the file)."),
    op: str = typer.Option("subtract", "--op", help="subtract (steer's default; exported negated) | add."),
) -> None:
    """Export a vector file for another runtime: llama.cpp's --control-vector (GGUF).

    llama.cpp ADDS direction.k to the output of block k (= steer layer k) at every position,
    so a subtraction is written as the negated vector -alpha * v; layer 0 cannot be steered
    by llama.cpp and is left out. Example: steer export --format gguf shift.safetensors
    shift.gguf --alpha 1.0, then llama-cli -m model.gguf --control-vector shift.gguf
    """
    options = _api_options(locals())
    from steer.export_gguf import export_vectors, summary_line

    summary, warned = export_vectors(**options)
    for message in warned:
        err_console.print(Text.assemble(("warning:", "yellow"), f" {message}"), highlight=False, soft_wrap=True)
    _say(summary_line(summary))


app.add_typer(organism_app, name="organism")
app.add_typer(data_app, name="data")


@app.command(short_help='The failure and the fix on the built-in organism, offline.')
@with_threads
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Folder for demo.json, cells.json and the vector files."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="At most N items per evaluation cell (faster, noisier)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Another organism checkpoint (default: the shipped one)."),
) -> None:
    """Show the failure and the fix on the embedded model organism, offline, in minutes on CPU.

    Baseline eval on held-out prompts -> CMRM calibration on a separate anchor split ->
    ShiftDC safety direction from labelled text -> steered evals -> a table, and
    OUT/demo.json with every number (unsafe rates are 1 - complete refusal; *_onset
    variants count only onset refusals: starts as a refusal, does not go on to comply).
    """
    from calibration.demo import run_demo, summary_lines, table_rows
    from steer.progress import bars_by_name

    with bars_by_name(err_console, "eval ") as progress:
        summary = run_demo(out, model_path=model, limit=limit, progress=progress)
    _print_grid([["", "baseline", "CMRM", "ShiftDC", "content"], *table_rows(summary)],
                "model organism: harmful requests with and without images", ["left"] + ["right"] * 4,
                label_width=24)  # the row labels stay readable at 80 columns
    for line in summary_lines(summary, out):
        console.print(line, highlight=False)


def main() -> None:
    """Console-script entry point: run the app, turning steer errors into one-line messages.

    Ctrl-C exits 130 and SIGTERM 143 with one line saying what was kept and how to resume
    (typer hands back Ctrl-C as a return value of 130, which must not become exit 0)."""
    from steer.atomic import remove_unfinished_writes
    from steer.interrupts import Interrupted, interrupted_message, signals_raise_interrupted

    try:
        with signals_raise_interrupted():
            code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            if code == 130:
                _exit(interrupted_message(code), code, error=False)
            sys.exit(code)
    except (Interrupted, KeyboardInterrupt) as err:
        remove_unfinished_writes()
        code = getattr(err, "exit_code", 130)
        _exit(interrupted_message(code), code, error=False)
    except SteerError as err:
        _exit(str(err), 2)
    except UnicodeDecodeError as err:  # a text file met by a reader the up-front checks did not cover
        _exit(f"an input file is not UTF-8 text (byte offset {err.start}); save it as UTF-8", 2)
    except FileNotFoundError as err:
        _exit(f"file not found: {err.filename or err}", 2)
    except typer.Exit as ex:
        sys.exit(ex.exit_code)
    except SystemExit:
        raise
    except Exception as err:  # usage errors arrive as click exceptions (typer vendors its own click)
        if isinstance(err, _click_exception_types()):
            err.show()
            sys.exit(err.exit_code)
        if type(err).__name__ == "Abort":
            sys.exit(1)
        raise


def _exit(message: str, code: int, error: bool = True) -> NoReturn:
    """End the run with one line on stderr: ``error: MESSAGE`` (the prefix in red), or an interruption's line as is."""
    err_console.print(Text.assemble(("error:", "red"), f" {message}") if error else message, highlight=False,
                      soft_wrap=True)
    sys.exit(code)


def _click_exception_types() -> tuple[type, ...]:
    """ClickException of click and of typer's vendored copy (typer >= 0.2x), whichever exist."""
    types: list[type] = []
    for module in ("click.exceptions", "typer._click.exceptions"):
        try:
            types.append(__import__(module, fromlist=["ClickException"]).ClickException)
        except (ImportError, AttributeError):
            continue
    return tuple(types)


if __name__ == "__main__":
    main()
