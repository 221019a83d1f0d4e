"""Rows of numbers as a grid of short strings, the shape every printed table is built from.

The library returns grids (header row first, then one list of cell texts per row) so a
Python user can read, test or render the same table the CLI prints; only the CLI turns
a grid into a rich table.
"""

from __future__ import annotations

from typing import Any, Sequence

Grid = list[list[str]]


def cell_text(value: Any, float_format: str = ".4g") -> str:
    """'-' for a missing value, floats in ``float_format``, anything else as str()."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, float_format)
    return str(value)


def dict_grid(rows: Sequence[dict[str, Any]], float_format: str = ".4g", empty_header: Sequence[str] = ("layer",)) -> Grid:
    """Header from the first row's keys (``empty_header`` when there are no rows), one line per row."""
    header = list(rows[0].keys()) if rows else list(empty_header)
    return [header, *([cell_text(row[c], float_format) for c in header] for row in rows)]
