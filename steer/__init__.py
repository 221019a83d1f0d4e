"""steer: make vision-language models as safe on images as on text, by steering hidden states.

Runtime package: model adapters, the hook engine, vector files and the `SteeredModel` API.
Offline computation of vectors lives in the separate `calibration` package, which imports
this one (never the reverse).
"""

from steer.errors import ModelMismatchError, SteerError, SteerInputError, UnsupportedModelError
from steer.model import SteeredModel
from steer.positions import POSITIONS
from steer.schedule import SCHEDULES
from steer.steering import OPS, Steering
from steer.vectors import ShiftVectors
from steer.version import __version__

__all__ = [
    "OPS",
    "POSITIONS",
    "SCHEDULES",
    "ModelMismatchError",
    "ShiftVectors",
    "SteerError",
    "SteerInputError",
    "SteeredModel",
    "Steering",
    "UnsupportedModelError",
    "__version__",
]
