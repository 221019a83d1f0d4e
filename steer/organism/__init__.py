"""The embedded default model: a trained LLaVA "model organism" of safety-alignment
degradation.

A real ``LlavaForConditionalGeneration`` (4-layer Llama text model, 3-layer CLIP vision
tower, 1.5M parameters, 6 MB) trained like LLaVA on a synthetic world of objects and
requests. Text only it refuses harmful requests; with an image attached it answers them.
Recipe, splits and measured numbers: ``docs/organism.md``.

>>> from steer.organism import load_organism, split_prompts
>>> model, processor = load_organism()
>>> anchors = split_prompts("anchors")           # CMRM calibration prompts (text only)

Modules: :mod:`~steer.organism.vocab` (the world's words), :mod:`~steer.organism.images`
(rendering), :mod:`~steer.organism.splits` (fixed named splits),
:mod:`~steer.organism.training_data` (stage mixtures), :mod:`~steer.organism.model`
(tokenizer, processor, config), :mod:`~steer.organism.train` (the recipe),
:mod:`~steer.organism.cells` (evaluation cells).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from steer.organism.splits import EVAL_CELLS, SPLIT_NAMES, ImageRef, Item, get_split, split_prompts

#: folder of the shipped weights + processor (``save_pretrained`` format)
ORGANISM_DIR: Path = Path(__file__).resolve().parent / "weights"
#: the seed of the shipped weights, chosen by a rule on the validation verbs: of the text
#: stages that refused every validation-verb request (seeds 0, 2, 3 of 0-5), the full
#: retrains of seeds 0 and 2 were run, and seed 2 refused all validation requests after
#: stage 2 (seed 0: 0.57). Both retrains' eval-verb figures were seen before the choice;
#: the rule picks the same seed. Retrained afterwards, the other seeds of 0-5 refuse the
#: eval's new-verb requests 0.07-0.95: the recipe is seed-sensitive, so check a retrain
#: with another seed with bench/organism_acceptance.py. docs/organism.md, "Validation
#: verbs, stage 2, and the shipped seed".
SHIPPED_SEED = 2


def load_organism(path: str | Path | None = None, **kwargs: Any) -> tuple[Any, Any]:
    """(model, processor) of the organism via ``from_pretrained``; ``path`` defaults to
    :data:`ORGANISM_DIR`. Extra keyword arguments go to the model's ``from_pretrained``."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = Path(path) if path is not None else ORGANISM_DIR
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no organism weights at {path}; train them with steer.organism.train.train_organism")
    model = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
    model.eval()
    processor = AutoProcessor.from_pretrained(path)
    return model, processor


def evaluate_organism(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """See :func:`steer.organism.cells.evaluate_organism`."""
    from steer.organism.cells import evaluate_organism as _evaluate

    return _evaluate(*args, **kwargs)


def train_organism(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """See :func:`steer.organism.train.train_organism`."""
    from steer.organism.train import train_organism as _train

    return _train(*args, **kwargs)


__all__ = [
    "EVAL_CELLS",
    "ORGANISM_DIR",
    "SHIPPED_SEED",
    "SPLIT_NAMES",
    "ImageRef",
    "Item",
    "evaluate_organism",
    "get_split",
    "load_organism",
    "split_prompts",
    "train_organism",
]
