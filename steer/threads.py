"""How many CPU threads torch may use: ``--threads N``, else ``STEER_THREADS``, else a
default that does not oversubscribe a shared machine.

torch's own default is one intra-op thread per core. On a machine where other jobs
already hold cores, those threads stall each other at every parallel region (a demo run
measured 424 s with the default against 37 s with one thread, same machine, same
minute). The default here is the number of cores not already busy -- the cores this
process may run on minus the one-minute load average, at least 1 -- capped at
:data:`CAP`, beyond which small models gain little.

:func:`with_threads` adds the ``--threads`` option to a typer command in one line and
prints the choice (and why) to stderr when the command starts.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Optional

from steer.errors import SteerInputError

ENV = "STEER_THREADS"
#: most threads the automatic default picks
CAP = 8


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    source: str  # "--threads", "STEER_THREADS" or "default"
    cores: int
    load: float | None

    def describe(self) -> str:
        if self.source != "default":
            return f"threads: {self.threads} (from {self.source})"
        load = "unknown" if self.load is None else f"{self.load:.1f}"
        return f"threads: {self.threads} (default: {self.cores} cores, load average {load}, cap {CAP}; set --threads or {ENV})"


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads(cores: int | None = None, load: float | None = None) -> int:
    """Cores not already busy (cores - one-minute load average, rounded down), in [1, CAP]."""
    cores = usable_cores() if cores is None else cores
    if load is None:
        return max(1, min(cores, CAP))
    return max(1, min(cores - math.ceil(load - 0.5), CAP))


def _load_average() -> float | None:
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def _positive(value: Any, where: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number < 1:
        raise SteerInputError(f"{where} must be a whole number >= 1, got {value!r}")
    return number


def choose_threads(threads: int | None = None) -> ThreadChoice:
    """The thread count to use: the argument, else ``STEER_THREADS``, else :func:`default_threads`."""
    cores = usable_cores()
    if threads is not None:
        return ThreadChoice(_positive(threads, "--threads"), "--threads", cores, None)
    env = os.environ.get(ENV, "").strip()
    if env:
        return ThreadChoice(_positive(env, ENV), ENV, cores, None)
    load = _load_average()
    return ThreadChoice(default_threads(cores, load), "default", cores, load)


def apply_threads(threads: int | None = None) -> ThreadChoice:
    """Choose (see :func:`choose_threads`) and set torch's intra-op thread count."""
    import torch

    choice = choose_threads(threads)
    torch.set_num_threads(choice.threads)
    return choice


THREADS_HELP = f"CPU threads for torch (default: {ENV}, else the cores not already busy, at most {CAP})."


def with_threads(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a typer command a ``--threads N`` option: applied, and printed to stderr, before it runs."""
    import typer

    signature = inspect.signature(command, eval_str=True)
    option = inspect.Parameter(
        "threads",
        inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(None, "--threads", min=1, help=THREADS_HELP),
        annotation=Optional[int],
    )

    @functools.wraps(command)
    def run(*args: Any, threads: Optional[int] = None, **kwargs: Any) -> Any:
        choice = apply_threads(threads)
        import sys

        print(choice.describe(), file=sys.stderr, flush=True)
        return command(*args, **kwargs)

    run.__signature__ = signature.replace(parameters=[*signature.parameters.values(), option])  # type: ignore[attr-defined]
    run.__annotations__ = {**getattr(command, "__annotations__", {}), "threads": Optional[int]}
    return run
