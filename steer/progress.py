"""Progress bars that keep their counts on a narrow terminal.

rich gives every column of a progress line its natural width and cuts what does not
fit; with the description first (``cmrm:runs/demo/cmrm.safetensors / organism``) an
80-column terminal loses the ``12/96`` count. Here the count, a fixed-width bar and the
times come first, and the description last, the only column that may be shortened.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Column
from rich.text import Text

BAR_WIDTH = 20


#: Columns left for the description on an 80-column line after count, bar and times (~45 columns).
_FIXED_COLUMNS = 48


class _Description(ProgressColumn):
    """The task description, shortened (with an ellipsis) to what the line has left."""

    def __init__(self, console: Console) -> None:
        super().__init__(table_column=Column(no_wrap=True, overflow="ellipsis"))
        self._console = console

    def render(self, task: Any) -> Text:
        room = max(8, self._console.width - _FIXED_COLUMNS)
        text = Text(str(task.description), no_wrap=True, overflow="ellipsis")
        text.truncate(room, overflow="ellipsis")
        return text


def progress_bar(console: Console | None = None, *extra_columns: Any, transient: bool = False) -> Progress:
    """A rich ``Progress``: count, bar, elapsed, remaining, ``extra_columns``, then the description."""
    console = console or Console(stderr=True)
    return Progress(
        MofNCompleteColumn(table_column=Column(no_wrap=True)),
        BarColumn(bar_width=BAR_WIDTH),
        TimeElapsedColumn(table_column=Column(no_wrap=True)),
        TimeRemainingColumn(table_column=Column(no_wrap=True)),
        *extra_columns,
        _Description(console),
        console=console,
        transient=transient,
    )


@contextmanager
def bars_by_name(console: Console | None = None, prefix: str = "") -> Iterator[Callable[[str, int, int], None]]:
    """A ``progress(name, done, total)`` callback that draws one bar per name, added on the name's first call.

    For work that reports several stages through one callback (``calibration.demo.run_demo``:
    baseline, cmrm, ...); each bar is described as ``prefix + name``."""
    with progress_bar(console) as bar:
        tasks: dict[str, Any] = {}

        def progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(f"{prefix}{name}", total=total)
            bar.update(tasks[name], completed=done)

        yield progress
