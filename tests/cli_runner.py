"""Run the `steer` console entry point in-process, as a user's shell would."""

from __future__ import annotations

import sys

import cli


def run_cli(args, capsys, monkeypatch, columns: int = 80) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``steer ARGS`` through ``cli.main`` (its error handling included),
    rendered for a terminal ``columns`` wide (tables, help)."""
    from rich.console import Console

    monkeypatch.setattr(sys, "argv", ["steer", *map(str, args)])
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.setattr(cli, "console", Console(width=columns, markup=False, emoji=False))
    monkeypatch.setattr(cli, "err_console", Console(stderr=True, width=columns, markup=False, emoji=False))
    code = 0
    try:
        cli.main()
    except SystemExit as ex:
        code = ex.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def error_lines(err: str) -> list[str]:
    """The non-empty stderr lines other than the ``threads: ...`` banner every model command
    prints first (steer.threads) -- what an "error in one line" test counts."""
    return [line for line in err.splitlines() if line.strip() and not line.startswith("threads: ")]
