"""Ctrl-C and SIGTERM: stop cleanly, say what was kept and how to resume, exit 130 / 143.

The CLI runs inside :func:`signals_raise_interrupted`; both signals then raise
:class:`Interrupted`, a ``BaseException`` that no ``except Exception`` swallows and that
typer does not turn into a silent return value (it does so for ``KeyboardInterrupt``).
Atomic writes (:mod:`steer.atomic`) delete their temporary file on the way out, so an
interrupted command leaves the old output or none, never half of one.

Long-running code says what an interrupt would keep with :func:`interrupt_note`; the
note is evaluated when the interrupt passes through, so it can count rows written so far.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Callable, Iterator

#: exit status of a process stopped by a signal, as shells report it: 128 + signal number
EXIT_SIGINT = 128 + int(signal.SIGINT)
EXIT_SIGTERM = 128 + int(signal.SIGTERM)

#: said when no running code left a note: every output is written atomically
DEFAULT_NOTE = "no output was written (outputs are replaced atomically); rerun the command"


class Interrupted(BaseException):
    """Raised by the signal handlers; ``exit_code`` is 130 (SIGINT) or 143 (SIGTERM)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)
        self.exit_code = 128 + int(signum)


_last_note: str | None = None


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(signum)


@contextmanager
def signals_raise_interrupted() -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM raise :class:`Interrupted`; the old handlers
    come back afterwards (the CLI may run inside another program, e.g. a test). Outside the
    main thread, where Python allows no handlers, nothing changes."""
    take_note()  # forget a note left by an earlier interrupt in this process
    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, _raise_interrupted)
    except ValueError:  # not the main thread
        pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def interrupt_note(note: str | Callable[[], str]) -> Iterator[None]:
    """While the block runs, an interrupt reports ``note`` (or ``note()``) as what was kept."""
    global _last_note
    try:
        yield
    except (Interrupted, KeyboardInterrupt):
        if _last_note is None:  # the innermost note wins: it knows most
            try:
                _last_note = note() if callable(note) else note
            except Exception:  # noqa: BLE001 - a hint must never hide the interrupt
                _last_note = None
        raise


def take_note() -> str:
    """The note left by the code an interrupt passed through (and forget it), or the default."""
    global _last_note
    note, _last_note = _last_note, None
    return note or DEFAULT_NOTE


def interrupted_message(exit_code: int) -> str:
    """The one line the CLI prints: ``interrupted; <what was kept, how to resume>``."""
    how = "" if exit_code == EXIT_SIGINT else " (SIGTERM)" if exit_code == EXIT_SIGTERM else ""
    return f"interrupted{how}; {take_note()}"
