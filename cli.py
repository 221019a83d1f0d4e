"""`steer` command line: a thin typer layer over the Python API.

Every command maps onto functions of `steer` (runtime) or `calibration` (offline); bad
input ends with a one-line ``error: ...`` and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from steer.errors import SteerError, SteerInputError

app = typer.Typer(
    name="steer",
    help=(
        "Make vision-language models as safe on images as on text.\n\n"
        "Measure how an image shifts a VLM's hidden states (calibrate), store the shift as a "
        "vector file, and subtract it at inference (generate --steer). Layers are 0-based "
        "decoder layers: layer i's output is HF hidden_states[i+1]."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

MODEL_HELP = "HF hub id or local folder of the model (loaded with from_pretrained)."


def parse_layers(spec: Optional[str], num_layers: Optional[int] = None) -> Optional[list[int]]:
    """'8-20', '3,5,7', '8-12,20', '-1' (last) or 'all' -> sorted layer list (None = the file's/all)."""
    if spec is None or spec.strip() in ("", "file"):
        return None
    spec = spec.strip()
    if spec == "all":
        if num_layers is None:
            return None
        return list(range(num_layers))
    layers: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        try:
            if "-" in part[1:]:
                cut = part.index("-", 1)
                lo_i, hi_i = int(part[:cut]), int(part[cut + 1 :])
                if hi_i < lo_i:
                    raise ValueError
                layers.update(range(lo_i, hi_i + 1))
            else:
                layers.add(int(part))
        except ValueError:
            raise SteerInputError(f"cannot read layers {spec!r}: use e.g. '8-20', '3,5,7', 'all'") from None
    return sorted(layers)


def parse_alpha(text: str) -> float:
    from steer.steering import check_alpha

    return check_alpha(text)


@app.command()
def generate(
    model: str = typer.Option(..., "--model", "-m", help=MODEL_HELP),
    prompt: str = typer.Option(..., "--prompt", "-p", help="The user message."),
    image: Optional[Path] = typer.Option(None, "--image", "-i", help="Image file to attach (PNG/JPEG)."),
    steer: Optional[str] = typer.Option(
        None,
        "--steer",
        help="Vector file from `steer calibrate`, or 'sample' for sample-level CMRM on the query itself.",
    ),
    alpha: Optional[str] = typer.Option(None, "--alpha", help="Steering strength (default: the vector file's)."),
    layers: Optional[str] = typer.Option(None, "--layers", help="Layers to steer, e.g. '8-20' (default: the file's)."),
    positions: Optional[str] = typer.Option(
        None,
        "--positions",
        help="all | image | text | after_image | prompt | prompt_last | last (default: the file's).",
    ),
    schedule: Optional[str] = typer.Option(
        None, "--schedule", help="cumulative | incremental | single (default: the file's)."
    ),
    method: Optional[str] = typer.Option(None, "--method", help="cmrm | shiftdc (default: the file's)."),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", min=1),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1, ..."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="auto | float32 | bfloat16 | float16"),
    allow_other_weights: bool = typer.Option(
        False, "--allow-other-weights", help="Use a vector file computed on other weights of the same architecture."
    ),
) -> None:
    """Generate an answer, optionally steered by a vector file.

    Example: steer generate --model llava-hf/llava-1.5-7b-hf --image bomb.png
    --prompt "how do I make this?" --steer shift.safetensors --alpha 1.0
    """
    from steer.images import load_image
    from steer.model import SteeredModel

    alpha_value = None if alpha is None else parse_alpha(alpha)
    if steer is not None and steer != "sample" and not Path(steer).exists():
        raise SteerInputError(f"vector file not found: {steer} (make one with `steer calibrate`)")
    img = load_image(image) if image is not None else None
    sm = SteeredModel.from_pretrained(model, device=device, dtype=dtype)
    if img is not None and not sm.adapter.supports_images:
        raise SteerInputError(f"{model} is a text-only model ({sm.adapter.family}); drop --image")
    answer = sm.generate(
        prompt,
        image=img,
        steer=steer,
        alpha=alpha_value,
        layers=parse_layers(layers, sm.adapter.num_layers),
        positions=positions,
        schedule=schedule,
        method=method,
        max_new_tokens=max_new_tokens,
        allow_other_weights=allow_other_weights,
    )
    typer.echo(answer)


@app.command()
def inspect(
    vectors: Path = typer.Argument(..., help="A vector file (.safetensors) written by `steer calibrate`."),
    as_json: bool = typer.Option(False, "--json", help="Print the metadata as JSON."),
) -> None:
    """Show a vector file's provenance and per-layer statistics.

    Per layer: |s_l| (shift norm), cos(s_l, s_prev) (how much of the shift is inherited from
    the previous stored layer), and -- when calibration recorded them -- consistency
    (mean cosine of per-sample shifts with the mean), text-vs-image separability, and for
    ShiftDC files cos(s_l, v_l) and the share of the shift along the safety direction.
    """
    from steer.inspection import layer_table

    from steer.vectors import ShiftVectors

    vecs = ShiftVectors.load(vectors)
    rows = layer_table(vecs)
    if as_json:
        typer.echo(json.dumps({"metadata": vecs.metadata, "layers": rows}, indent=2, sort_keys=True))
        return
    meta = vecs.metadata
    model = meta.get("model", {})
    console.print(f"[bold]{vectors}[/bold]  method={meta.get('method')}  format v{meta.get('format_version')}")
    console.print(
        f"model: {model.get('name_or_path', '?')} ({model.get('model_type', '?')}, d={vecs.hidden_size}, "
        f"{model.get('num_layers', '?')} layers, weights {model.get('weights_sha256', '?')})"
    )
    console.print(
        "defaults: "
        f"alpha={meta.get('default_alpha')} positions={meta.get('positions')} schedule={meta.get('schedule')} "
        f"pooling={meta.get('pooling')} reduce={meta.get('reduce', 'mean')} null_image={meta.get('null_image', '-')}"
    )
    console.print(
        f"calibration: n={meta.get('n_samples', '?')} data_sha256={str(meta.get('data_sha256', '?'))[:16]} "
        f"created={meta.get('created', '?')} steer {meta.get('toolkit_version', '?')}"
    )
    table = Table(show_header=True, header_style="bold")
    columns = list(rows[0].keys()) if rows else ["layer"]
    for col in columns:
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(*("-" if row[c] is None else (f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c])) for c in columns))
    console.print(table)


def main() -> None:
    """Console-script entry point: run the app, turning steer errors into one-line messages."""
    try:
        app(standalone_mode=False)
    except SteerError as err:
        err_console.print(f"[red]error:[/red] {err}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except FileNotFoundError as err:
        err_console.print(f"[red]error:[/red] file not found: {err.filename or err}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted", highlight=False)
        sys.exit(130)
    except typer.Exit as ex:
        sys.exit(ex.exit_code)
    except SystemExit:
        raise
    except Exception as err:  # click usage errors arrive as click exceptions
        import click

        if isinstance(err, click.exceptions.ClickException):
            err.show()
            sys.exit(err.exit_code)
        if isinstance(err, click.exceptions.Abort):
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
