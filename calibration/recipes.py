"""Named steering recipes: the defaults a new vector file carries.

A vector file stores how it should be applied (``positions``, ``schedule``,
``default_alpha``, ``level``) so that ``steer generate --steer FILE`` needs no further
options. Which defaults to store is a choice with measurable consequences, so it is made
by name:

* ``measured`` (the default): the best settings measured on the model organism
  (docs/results.md, section 2). CMRM: dataset level, ``incremental`` schedule, ``prompt``
  positions, alpha 1.0. ShiftDC: sample level (each query's own shift projected on the
  safety direction), ``prompt`` / ``incremental``, alpha 1.0. These are also the settings
  of ``steer demo``, whose saved files therefore reproduce the demo.
* ``paper``: the paper-literal recipe, kept for replication: ``after_image`` positions,
  ``cumulative`` schedule (subtract ``s_l`` at every layer), alpha 1.0; ShiftDC at
  sample level as in arXiv 2502.13095. On the organism it refuses at onset but collapses
  benign image QA (0.96 -> 0.20), so it is not the default.
* ``custom``: what a file gets when explicit positions / schedule / alpha / level differ
  from the named recipe they start from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from steer.errors import SteerInputError
from steer.stored_recipe import LEVELS


@dataclass(frozen=True)
class Recipe:
    """How a vector file is applied: what it subtracts, where, how strongly."""

    method: str  # cmrm | shiftdc
    alpha: float
    positions: str
    schedule: str
    level: str = "dataset"  # dataset: the stored shift | sample: each query's own shift
    layers: tuple[int, ...] | None = None  # None: every calibrated layer
    name: str = "custom"  # measured | paper | custom

    def describe(self) -> str:
        """One line naming every setting, for summaries."""
        layers = "all" if self.layers is None else ",".join(map(str, self.layers))
        return (
            f"recipe {self.name}: {self.method} {self.level}-level alpha={self.alpha:g} layers={layers} "
            f"positions={self.positions} schedule={self.schedule}"
        )

    def metadata(self) -> dict[str, Any]:
        """The vector-file metadata keys this recipe sets."""
        return {
            "recipe": self.name,
            "positions": self.positions,
            "schedule": self.schedule,
            "default_alpha": float(self.alpha),
            "level": self.level,
        }

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The named presets, per method.
RECIPES: dict[str, dict[str, Recipe]] = {
    "measured": {
        "cmrm": Recipe("cmrm", 1.0, "prompt", "incremental", "dataset", name="measured"),
        "shiftdc": Recipe("shiftdc", 1.0, "prompt", "incremental", "sample", name="measured"),
    },
    "paper": {
        "cmrm": Recipe("cmrm", 1.0, "after_image", "cumulative", "dataset", name="paper"),
        "shiftdc": Recipe("shiftdc", 1.0, "after_image", "cumulative", "sample", name="paper"),
    },
}
RECIPE_NAMES = tuple(RECIPES) + ("custom",)
DEFAULT_RECIPE = "measured"


def check_settings(positions: str, schedule: str, alpha: float | str) -> float:
    """Validate steering defaults stored outside the named presets (e.g. contrast vectors); returns alpha."""
    from steer.positions import check_positions
    from steer.schedule import check_schedule
    from steer.steering import check_alpha

    check_positions(positions)
    check_schedule(schedule)
    return check_alpha(alpha)


def resolve_recipe(
    method: str,
    recipe: str | None = None,
    *,
    positions: str | None = None,
    schedule: str | None = None,
    alpha: float | str | None = None,
    level: str | None = None,
) -> Recipe:
    """The recipe a new vector file stores: a named preset, with explicit settings on top.

    ``recipe=None`` means ``measured``; ``"custom"`` starts from ``measured`` too. Any
    explicit setting that differs from the preset makes the result ``custom`` (the file
    then says so instead of claiming a preset it does not follow). Every value is
    validated here, before any model is loaded.
    """
    from steer.positions import check_positions
    from steer.schedule import check_schedule
    from steer.steering import check_alpha

    name = DEFAULT_RECIPE if recipe is None else str(recipe).strip().lower()
    if name not in RECIPE_NAMES:
        raise SteerInputError(f"unknown recipe {recipe!r}; choose one of: {', '.join(RECIPE_NAMES)}")
    if method not in RECIPES[DEFAULT_RECIPE]:
        raise SteerInputError(f"unknown method {method!r}; choose one of: {', '.join(RECIPES[DEFAULT_RECIPE])}")
    base = RECIPES[DEFAULT_RECIPE if name == "custom" else name][method]
    if positions is not None:
        check_positions(positions)
    schedule is None or check_schedule(schedule)
    if level is not None and level not in LEVELS:
        raise SteerInputError(f"unknown level {level!r}; choose one of: {', '.join(LEVELS)}")
    chosen = replace(
        base,
        positions=base.positions if positions is None else positions,
        schedule=base.schedule if schedule is None else schedule,
        alpha=base.alpha if alpha is None else check_alpha(alpha),
        level=base.level if level is None else level,
    )
    if name == "custom" or replace(chosen, name=base.name) != base:
        chosen = replace(chosen, name="custom")
    return chosen


def recipe_of(metadata: dict[str, Any]) -> Recipe:
    """The recipe a vector file's metadata carries (files from before recipes: their stored keys)."""
    method = str(metadata.get("method", "cmrm"))
    return Recipe(
        method=method,
        alpha=float(metadata.get("default_alpha", 1.0)),
        positions=str(metadata.get("positions", "after_image")),
        schedule=str(metadata.get("schedule", "cumulative")),
        level=str(metadata.get("level", "dataset")),
        name=str(metadata.get("recipe", "custom")),
    )
