"""The `steer organism ...` and `steer data ...` command groups (typer sub-apps of `cli.app`).

Same rules as `cli`: each command parses its options, calls one function of `steer` and
prints; errors are `SteerInputError`s that `cli.main` turns into one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cli_options import DataDir, ShowProgress
from steer.errors import SteerInputError
from steer.organism import SHIPPED_SEED
from steer.threads import with_threads

# markup and emoji codes off, as in cli: paths and set names are user text
console = Console(markup=False, emoji=False)
err_console = Console(stderr=True, markup=False, emoji=False)

organism_app = typer.Typer(short_help="The built-in model organism: train it, find it.", help="The embedded model organism: a tiny trained LLaVA that shows safety alignment degradation.")


@organism_app.command("train", short_help="Retrain the organism from scratch (about 14 min of one CPU core).")
@with_threads
def organism_train(
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the trained model + processor (save_pretrained)."),
    seed: int = typer.Option(SHIPPED_SEED, "--seed", help=f"Seed of every stage (the shipped weights use {SHIPPED_SEED}, chosen on the validation verbs; other seeds may "
        "refuse far fewer never safety-tuned verbs, so run bench/organism_acceptance.py on the result: docs/organism.md)."),
    short: bool = typer.Option(False, "--short", help="A few steps of every stage (smoke test), not the full recipe."),
) -> None:
    """Retrain the organism from scratch (about 14 min of one CPU core, measured; recipe and timings in docs/organism.md)."""
    from steer.organism import train_organism

    record = train_organism(out, seed=seed, schedule="short" if short else "full", progress=True)
    console.print(f"saved to {out} in {record['seconds']} s", highlight=False)


@organism_app.command("path")
def organism_path() -> None:
    """Print the folder of the shipped organism (usable as --model anywhere)."""
    from steer.organism import ORGANISM_DIR

    typer.echo(str(ORGANISM_DIR))


data_app = typer.Typer(short_help="Public benchmarks: list them, fetch them.", help="Public benchmarks: list the named sets and fetch them from their pinned upstream sources.")


@data_app.command("list", short_help="Each named set and where it is read from.")
def data_list(
    data_dir: DataDir = None,
) -> None:
    """Each named set: items, size, licence, and where it is read from now (--data-dir / STEER_SHARED_DATA, ../shared/data, the fetch cache, or missing)."""
    from steer.data.fetch import data_cache_dir
    from steer.data.locate import set_statuses

    table = Table(show_header=True, header_style="bold", box=None)
    for col in ("name", "items", "MB", "licence", "read from"):
        table.add_column(col)
    for row in set_statuses(data_dir):
        where = row.location.describe() if row.location else Text("missing", "yellow")
        licence = row.licence + (" (non-commercial)" if row.non_commercial else "")
        table.add_row(row.name, row.items, f"{row.megabytes:.1f}", licence, where)
    console.print(table)
    console.print(f"fetch cache: {data_cache_dir()} (set STEER_CACHE to move it); get a missing set with"
                  " `steer data fetch NAME` (or --all)", highlight=False, soft_wrap=True)


@data_app.command("fetch", short_help="Download named sets, hash-checked, into the cache.")
def data_fetch(
    names: Optional[list[str]] = typer.Argument(None, help="Set names (see `steer data list`)."),
    all_sets: bool = typer.Option(False, "--all", help="Fetch every named set (about 29 MB)."),
    mirror: Optional[str] = typer.Option(None, "--mirror", help="Base URL standing in for https://raw.githubusercontent.com (or STEER_DATA_MIRROR)."),
    progress: ShowProgress = True,
) -> None:
    """Download named sets from their pinned upstream commits into the cache, each file checked against its SHA-256.

    Resumable; a corrupted cached file is downloaded again; a file whose hash differs is never stored.

    Example: steer data fetch advbench figstep xstest-safe
    """
    from steer.data.fetch import fetch_sets
    from steer.data.registry import set_names

    if all_sets == bool(names):
        raise SteerInputError("give set names (e.g. `steer data fetch advbench figstep`) or --all, not both or neither")
    fetch_sets(set_names() if all_sets else names, mirror=mirror, progress=progress,
               echo=lambda line: err_console.print(line, highlight=False, soft_wrap=True))
