"""The `steer` command line's option vocabulary: every option that several commands share, declared once.

A flag that means the same thing in two commands is one ``Annotated`` type here, so its name,
short form, range and help cannot drift apart between commands (and docs/cli.md, generated
from the app, says the same thing everywhere). Options whose meaning is particular to one
command stay beside that command in cli.py. :func:`data_options` adds the options that steer
how datasets are read (where named sets live, which columns hold what).
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Annotated, Optional

import typer

MODEL_HELP = "HF hub id or local folder of the model (loaded with from_pretrained)."
FORCE_HELP = "Write through a symbolic link at the output path (to the file it points at)."
DEVICE_MAP_HELP = "e.g. 'auto' to spread a large model over GPUs (needs accelerate); instead of --device."
PROCESSOR_KWARGS_HELP = (
    "JSON object for the processor, e.g. '{\"max_pixels\": 200704}' (Qwen2-VL): it changes the image tokens, "
    "so vector files record it."
)
ALLOW_OTHER_PK_HELP = "Use vector/probe/projector files made with other --processor-kwargs."
DATA_HELP = (
    "Dataset: a shared set (figstep, figstep-tiny, advbench, harmbench[:test|:val], mm-safetybench[:tiny], "
    "xstest-safe, xstest-unsafe, harmless-alpaca[:split]), the shipped organism's held-out items "
    "(organism, organism:CELL e.g. organism:image-harmful-text; --limit then counts per cell, evenly spaced), "
    "a Hugging Face dataset hf:ORG/NAME[:split][@revision] (--prompt-column etc. name its columns), "
    "or a .jsonl/.csv/.json/.parquet file or datasets folder; "
    "append @none|@blank|@noise|@unrelated:PATH to set its image mode."
)
IMAGE_MODE_HELP = (
    "as_given | none (text only) | blank | noise | unrelated:PATH (a natural photo, same for every item). "
    "Use none/blank/unrelated:PATH for harmful text sets such as advbench and harmbench."
)
LABEL_HELP = "harmful | benign: the label of every row of a --data file that has no 'label' column (never guessed)."
DATA_DIR_HELP = (
    "Folder in the shared layout searched first for named sets (else STEER_SHARED_DATA, ../shared/data, "
    "the fetch cache)."
)
STEER_HELP = "Vector file from `steer calibrate`, or 'sample' for sample-level CMRM (each query's own shift)."
# the choices as help text (steer.positions / steer.schedule import torch, which --help must not wait for;
# tests/test_cli.py checks these against them)
POSITION_NAMES = "all | image | text | after_image | prompt | prompt_last | last"
SCHEDULE_NAMES = "cumulative | incremental | single"

# the model and where it runs
Model = Annotated[str, typer.Option("--model", "-m", help=MODEL_HELP)]
ProcessorKwargs = Annotated[Optional[str], typer.Option("--processor-kwargs", help=PROCESSOR_KWARGS_HELP)]
Dtype = Annotated[Optional[str], typer.Option("--dtype", help="auto | float32 | bfloat16 | float16")]
DeviceMap = Annotated[Optional[str], typer.Option("--device-map", help=DEVICE_MAP_HELP)]
Device = Annotated[Optional[str], typer.Option("--device", help="cpu, cuda, cuda:1, ...")]
BatchSize = Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Items per forward pass.")]
MaxNewTokens = Annotated[int, typer.Option("--max-new-tokens", min=1)]

# files written and read
Force = Annotated[bool, typer.Option("--force", help=FORCE_HELP)]
VectorsArg = Annotated[Path, typer.Argument(help="A vector file (.safetensors) written by `steer calibrate`.")]
AllowOtherPk = Annotated[bool, typer.Option("--allow-other-processor-kwargs", help=ALLOW_OTHER_PK_HELP)]
AllowOtherWeights = Annotated[bool, typer.Option("--allow-other-weights", help="Use a vector file computed on other "
                                                 "weights of the same architecture, or one that records no model.")]

# steering one model (generate, eval; export shares the schedule and method)
SteerFile = Annotated[Optional[str], typer.Option("--steer", help=STEER_HELP)]
Alpha = Annotated[Optional[str], typer.Option("--alpha", help="Steering strength (default: the vector file's).")]
SteerLayers = Annotated[Optional[str], typer.Option("--layers", help="Layers to steer, e.g. '8-20' (default: the file's).")]
Positions = Annotated[Optional[str], typer.Option("--positions", help=f"{POSITION_NAMES} (default: the file's).")]
Schedule = Annotated[Optional[str], typer.Option("--schedule", help=f"{SCHEDULE_NAMES} (default: the file's).")]
FileMethod = Annotated[Optional[str], typer.Option("--method", help="cmrm | shiftdc (default: the file's).")]
Gate = Annotated[Optional[Path], typer.Option("--gate", help="Probe file from `steer probe`: steer only prompts whose "
                                              "risk score exceeds the threshold (needs --steer).")]
Threshold = Annotated[Optional[float], typer.Option("--threshold", help="Gate threshold in [0, 1] (default: the probe "
                                                    "file's).")]
Projector = Annotated[Optional[Path], typer.Option("--projector", help="TGA projector artifact from `steer train-tga`, "
                                                   "swapped in (in memory).")]
Variant = Annotated[Optional[str], typer.Option("--variant", help="A variant spec instead of the steering options, e.g. "
                                                "'shiftdc-sample:V@alpha=0.5' or 'refusal-add:V:PROBE' (see `steer compare`).")]

# evaluation runs (eval, sweep, compare)
ImageMode = Annotated[Optional[str], typer.Option("--image-mode", help="Default image mode for entries without @MODE. "
                                                  + IMAGE_MODE_HELP)]
Label = Annotated[Optional[str], typer.Option("--label", help=LABEL_HELP)]
LimitEach = Annotated[Optional[int], typer.Option("--limit", min=0, help="Use the first N items of each dataset.")]
Resume = Annotated[bool, typer.Option("--resume/--no-resume", help="Skip items already written under --out (default) "
                                      "or start over.")]
Judge = Annotated[Optional[str], typer.Option("--judge", help="Also judge with this HF causal LM (Llama-Guard-style "
                                              "safe/unsafe).")]
IncludeAdvice = Annotated[bool, typer.Option("--include-advice", help="Count 'specialised advice' harmful items in "
                                             "unsafe rates.")]
ShowProgress = Annotated[bool, typer.Option("--progress/--no-progress")]
DataDir = Annotated[Optional[Path], typer.Option("--data-dir", help=DATA_DIR_HELP)]


def data_options(command):
    """Give a command --data-dir, --fetch and --prompt/--image/--label-column; they apply while it runs
    (:func:`steer.data.options.using_data_options`), wherever its data is read."""
    kw = inspect.Parameter.KEYWORD_ONLY
    extra = [
        inspect.Parameter("data_dir", kw, annotation=Optional[Path], default=typer.Option(
            None, "--data-dir", help=DATA_DIR_HELP)),
        inspect.Parameter("fetch", kw, annotation=bool, default=typer.Option(
            False, "--fetch", help="Download a named set that is not found (as `steer data fetch NAME`).")),
        inspect.Parameter("prompt_column", kw, annotation=Optional[str], default=typer.Option(
            None, "--prompt-column", help="Column holding the prompt in a hf:/file dataset (default 'prompt').")),
        inspect.Parameter("image_column", kw, annotation=Optional[str], default=typer.Option(
            None, "--image-column", help="Column holding the image (default 'image').")),
        inspect.Parameter("label_column", kw, annotation=Optional[str], default=typer.Option(
            None, "--label-column", help="Column holding harmful/benign (or safe/unsafe) labels (default 'label').")),
    ]
    signature = inspect.signature(command, eval_str=True)

    @functools.wraps(command)
    def run(*args, data_dir=None, fetch=False, prompt_column=None, image_column=None, label_column=None, **kwargs):
        from steer.data.options import using_data_options

        with using_data_options(data_dir=None if data_dir is None else str(data_dir), fetch=fetch or None,
                                prompt_column=prompt_column, image_column=image_column, label_column=label_column):
            return command(*args, **kwargs)

    run.__signature__ = signature.replace(parameters=[*signature.parameters.values(), *extra])
    return run
