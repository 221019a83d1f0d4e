"""Exceptions with messages that name the problem and the fix.

The CLI turns every :class:`SteerError` into a one-line message and exit code 2, so a
user never sees a traceback for bad input.
"""


class SteerError(Exception):
    """Base class of every error `steer` raises on purpose."""


class SteerInputError(SteerError, ValueError):
    """Bad user input: a missing/unreadable file, an out-of-range layer, a bad option."""


class ModelMismatchError(SteerError):
    """An artifact (vector file, probe, projector) was made for another model."""


class UnsupportedModelError(SteerError):
    """No adapter knows this model family."""


class SteeringConflictError(SteerError, RuntimeError):
    """Two steerings were nested on the same model in a way that cannot compose."""
