"""Offline calibration: compute the vectors that `steer` subtracts at inference.

* :func:`calibrate_cmrm` -- dataset-level CMRM shift vectors (arXiv 2410.09047): per
  layer, the mean (or first principal component) of ``h_l(content-free image + prompt) -
  h_l(prompt)`` over an anchor set, streamed in float64, batched, resumable,
  data-parallel under ``torch.distributed``.
* :func:`calibrate_shiftdc` -- the same shift plus a per-layer unit text-only safety
  direction (ShiftDC, arXiv 2502.13095) in one vector file;
  :func:`compute_safety_directions` for the directions alone.
* :func:`train_vector` -- a steering vector for any behaviour from contrastive
  (positive, negative) prompt pairs: mean difference or oriented first principal direction.
* :class:`ShiftAccumulator` -- the exact, mergeable float64 sums behind both.

This package imports the runtime package `steer`, never the reverse. Command line:
``steer calibrate`` / ``probe`` / ``train-tga`` / ``inspect-layers``, each one call of
:mod:`calibration.runs` (model path and data in, artifact written, printed rows out).
"""

from calibration.accumulator import ProbeStore, ShiftAccumulator, load_checkpoint, save_checkpoint
from calibration.cmrm import (
    REDUCES,
    Anchor,
    calibrate_cmrm,
    checkpoint_path_for,
    data_sha256,
    load_anchors,
    read_image_folder,
)
from calibration.contrast import CONTRAST_METHODS, ContrastPair, load_pairs, train_vector
from calibration.safety_direction import calibrate_shiftdc, compute_safety_directions, load_safety_sets

__all__ = [
    "CONTRAST_METHODS",
    "ContrastPair",
    "REDUCES",
    "Anchor",
    "ProbeStore",
    "ShiftAccumulator",
    "calibrate_cmrm",
    "calibrate_shiftdc",
    "checkpoint_path_for",
    "compute_safety_directions",
    "data_sha256",
    "load_anchors",
    "load_checkpoint",
    "load_pairs",
    "load_safety_sets",
    "read_image_folder",
    "save_checkpoint",
    "train_vector",
]
