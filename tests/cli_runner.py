"""Run the `steer` console entry point in-process, as a user's shell would."""

from __future__ import annotations

import sys

import cli


def run_cli(args, capsys, monkeypatch) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``steer ARGS`` through ``cli.main`` (its error handling included)."""
    monkeypatch.setattr(sys, "argv", ["steer", *map(str, args)])
    code = 0
    try:
        cli.main()
    except SystemExit as ex:
        code = ex.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err
