"""Per-command data options (``--data-dir``, ``--fetch``, ``--prompt-column`` ...).

Named sets and hub datasets are read deep inside calibration, probing and evaluation
code, through one reader (:func:`steer.data.named_sets.load_dataset_by_name`,
:func:`steer.data.hub.load_hf_items`).  Rather than thread five arguments through every
caller, the CLI sets them for the duration of one command with :func:`using_data_options`
and the readers consult :func:`current_data_options` when their own argument is ``None``.
API users can pass the arguments directly or use the same context manager.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Iterator

__all__ = ["DataOptions", "current_data_options", "using_data_options"]


@dataclass(frozen=True)
class DataOptions:
    """``data_dir``: a folder in the shared layout tried before ``../shared/data`` and the
    fetch cache; ``fetch``: download a missing named set on first use; ``*_column``: the
    names of the prompt / image / label columns of a hub or user dataset."""

    data_dir: str | None = None
    fetch: bool = False
    prompt_column: str | None = None
    image_column: str | None = None
    label_column: str | None = None

    def columns(self) -> dict[str, str]:
        """``{standard name: dataset's column}`` for the columns that were renamed."""
        given = {"prompt": self.prompt_column, "image": self.image_column, "label": self.label_column}
        return {k: v for k, v in given.items() if v}


_CURRENT: ContextVar[DataOptions] = ContextVar("steer_data_options", default=DataOptions())


def current_data_options() -> DataOptions:
    """The options in force (defaults outside :func:`using_data_options`)."""
    return _CURRENT.get()


@contextmanager
def using_data_options(**changes: object) -> Iterator[DataOptions]:
    """Set some :class:`DataOptions` fields inside a ``with`` block (``None`` keeps the current value)."""
    opts = replace(_CURRENT.get(), **{k: v for k, v in changes.items() if v is not None})
    token = _CURRENT.set(opts)
    try:
        yield opts
    finally:
        _CURRENT.reset(token)
