"""Reading the recipe a vector file stores (which level, positions, schedule, alpha).

``steer calibrate`` writes ``level`` next to ``positions`` / ``schedule`` /
``default_alpha`` (see ``calibration/recipes.py``). Dataset-level files are applied by
:meth:`steer.model.SteeredModel.steering` from those keys directly. A file whose stored
level is ``sample`` (ShiftDC's measured recipe) must also be *run* at sample level, with
its own positions and schedule rather than the sample-level fallbacks; the helpers here
give callers (the CLI, eval variants) those settings, so a file means the same thing
wherever it is used.
"""

from __future__ import annotations

from typing import Any, Mapping

from steer.errors import SteerInputError

LEVELS = ("dataset", "sample")


def stored_level(metadata: Mapping[str, Any]) -> str:
    """The file's level; files written before levels were stored are dataset level."""
    level = str(metadata.get("level", "dataset"))
    if level not in LEVELS:
        raise SteerInputError(f"vector file stores unknown level {level!r}; expected one of: {', '.join(LEVELS)}")
    return level


def sample_settings(
    metadata: Mapping[str, Any], positions: str | None, schedule: str | None
) -> tuple[str | None, str | None]:
    """Positions and schedule for a sample-level run of this file.

    Explicit values win; a file stored at sample level supplies its own; otherwise None
    (the runtime's sample-level defaults apply).
    """
    if stored_level(metadata) != "sample":
        return positions, schedule
    return positions or metadata.get("positions"), schedule or metadata.get("schedule")


def load_metadata(path: Any) -> dict[str, Any]:
    """A vector file's metadata (the file is fully loaded and checked)."""
    from steer.vectors import ShiftVectors

    return ShiftVectors.load(path).metadata
