"""Retrieved texts for TGA: the ``R`` of ``Retrieved Text: {R}. <image>\\n{question}``.

TGA (arXiv 2410.12662) prompts every training image with a related text found by
retrieval, and ranks the image's hidden states closer to the ground-truth caption than
to that retrieved text. A :class:`Retriever` gives one text per training example:

* :class:`NearestCaptionRetriever` -- the caption(s) of the nearest image(s) in a caption
  corpus, by cosine similarity of mean-pooled vision-tower features (CLIP patch features
  for LLaVA); the query image itself is never returned (excluded by content hash, and by
  ``id`` when rows carry one). The paper uses BEiT-3 retrieval; any feature function can
  be plugged in with ``feature_fn``.
* :class:`ColumnRetriever` -- precomputed texts from a data column (``retrieved``).

Note (``../shared/organism-notes.md``): when every concept has many images, the nearest
other image nearly always shows the same concept, so the retrieved text equals the
caption; ``exclude_same_caption=True`` skips corpus entries whose caption is the query's
own, which keeps the ranking term informative.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from PIL import Image

from steer.errors import SteerInputError
from steer.images import load_image

FeatureFn = Callable[[list[Image.Image]], torch.Tensor]


def image_digest(image: "str | os.PathLike | Image.Image") -> str:
    """sha256 of an image's decoded pixels (mode, size, RGB bytes): the same picture
    gets the same digest whether it comes as a path or as an in-memory PIL image."""
    img = load_image(image)
    h = hashlib.sha256(f"{img.mode}:{img.size[0]}x{img.size[1]}:".encode())
    h.update(img.tobytes())
    return h.hexdigest()


@dataclass
class CorpusEntry:
    """One corpus image with its caption (``id`` optional, used for exclusion too)."""

    image: "str | Image.Image"
    caption: str
    id: str | None = None


class Retriever(ABC):
    """Gives the retrieved text ``R`` for each training example.

    ``examples`` are objects with ``image`` (path or PIL image), ``caption``, optional
    ``id`` and ``retrieved`` attributes (:class:`calibration.tga.TGAExample`), or dicts
    with those keys. ``describe()`` is recorded in the artifact's metadata.
    """

    name = "retriever"

    @abstractmethod
    def retrieve(self, examples: Sequence[Any]) -> list[str]:
        """One retrieved text per example."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


def _field(example: Any, key: str, default: Any = None) -> Any:
    if isinstance(example, dict):
        return example.get(key, default)
    return getattr(example, key, default)


class ColumnRetriever(Retriever):
    """Precomputed retrieved texts, read from a column of the data (default ``retrieved``)."""

    name = "column"

    def __init__(self, column: str = "retrieved"):
        self.column = column

    def retrieve(self, examples: Sequence[Any]) -> list[str]:
        out = []
        for i, ex in enumerate(examples):
            value = _field(ex, self.column)
            if value is None and self.column != "retrieved":
                extra = _field(ex, "extra") or {}
                value = extra.get(self.column) if isinstance(extra, dict) else None
            if not isinstance(value, str) or not value.strip():
                where = _field(ex, "where") or f"row {i + 1}"
                raise SteerInputError(
                    f"{where}: no retrieved text in column {self.column!r}; add it to every row or use "
                    "nearest-caption retrieval (--retriever nearest)"
                )
            out.append(value.strip())
        return out

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "column": self.column}


def vision_tower_features(adapter: Any, batch_size: int = 32) -> FeatureFn:
    """A feature function: mean-pooled last-layer vision-tower features (float32, CPU).

    Works for models with ``model.vision_tower`` (LLaVA, LLaVA-NeXT: CLIP) or
    ``model.vision_model`` (Idefics3); images go through the processor's own image
    processor at its base size. Runs under ``inference_mode``: the vision tower is frozen.
    """
    model = adapter.model
    tower = None
    for path in ("model.vision_tower", "vision_tower", "model.vision_model", "vision_model"):
        obj: Any = model
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        tower = obj
        break
    if tower is None:
        raise SteerInputError(
            f"{adapter.family}: no vision tower found for nearest-caption retrieval; pass feature_fn= or use "
            "precomputed retrieved texts (ColumnRetriever)"
        )
    image_processor = getattr(adapter.processor, "image_processor", None)
    if image_processor is None:
        raise SteerInputError(f"{adapter.family}: the processor has no image processor")

    @torch.inference_mode()
    def features(images: list[Image.Image]) -> torch.Tensor:
        rows = []
        param = next(tower.parameters())
        for start in range(0, len(images), batch_size):
            chunk = [im.convert("RGB") for im in images[start : start + batch_size]]
            pixels = image_processor(chunk, return_tensors="pt")["pixel_values"]
            if pixels.dim() == 5:  # any-res tilings: keep the base tile
                pixels = pixels[:, 0]
            out = tower(pixels.to(param.device, param.dtype))
            hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
            rows.append(hidden.float().mean(dim=1).cpu())
        return torch.cat(rows, dim=0)

    return features


class NearestCaptionRetriever(Retriever):
    """Caption(s) of the nearest corpus image(s) by vision-tower features.

    ``corpus``: :class:`CorpusEntry` items, ``(image, caption)`` pairs, or example
    objects/dicts with ``image`` and ``caption`` (the training data itself is the usual
    corpus). ``k`` captions are joined with ``joiner``. The query image itself is
    excluded by pixel digest, and entries with the query's ``id`` are excluded too;
    ``exclude_same_caption`` also skips entries whose caption equals the query's own.
    Give ``adapter`` (features from its vision tower) or ``feature_fn``.
    """

    name = "nearest_caption"

    def __init__(
        self,
        corpus: Sequence[Any],
        *,
        adapter: Any = None,
        feature_fn: FeatureFn | None = None,
        k: int = 1,
        joiner: str = " ",
        exclude_same_caption: bool = False,
        batch_size: int = 32,
    ):
        if k < 1:
            raise SteerInputError(f"k must be >= 1, got {k}")
        self.entries = [self._entry(item, i) for i, item in enumerate(corpus)]
        if not self.entries:
            raise SteerInputError("nearest-caption retrieval needs a non-empty caption corpus")
        if feature_fn is None:
            if adapter is None:
                raise SteerInputError("NearestCaptionRetriever needs adapter= (vision-tower features) or feature_fn=")
            feature_fn = vision_tower_features(getattr(adapter, "adapter", adapter), batch_size=batch_size)
        self.feature_fn = feature_fn
        self.k = int(k)
        self.joiner = joiner
        self.exclude_same_caption = bool(exclude_same_caption)
        self._features: torch.Tensor | None = None
        self._digests: list[str] | None = None

    @staticmethod
    def _entry(item: Any, i: int) -> CorpusEntry:
        if isinstance(item, CorpusEntry):
            return item
        if isinstance(item, tuple) and len(item) == 2:
            return CorpusEntry(item[0], str(item[1]))
        image, caption = _field(item, "image"), _field(item, "caption")
        if image is None or not isinstance(caption, str):
            raise SteerInputError(f"caption corpus row {i + 1}: needs an image and a caption")
        ident = _field(item, "id")
        return CorpusEntry(image, caption, None if ident is None else str(ident))

    def _index(self) -> tuple[torch.Tensor, list[str]]:
        if self._features is None:
            images = [load_image(e.image) for e in self.entries]
            feats = self.feature_fn(images).float()
            self._features = torch.nn.functional.normalize(feats, dim=-1)
            self._digests = [image_digest(im) for im in images]
        return self._features, self._digests  # type: ignore[return-value]

    def neighbours(self, examples: Sequence[Any]) -> list[list[int]]:
        """Corpus indices of each example's ``k`` nearest neighbours (query excluded)."""
        feats, digests = self._index()
        images = [load_image(_field(ex, "image")) for ex in examples]
        query = torch.nn.functional.normalize(self.feature_fn(images).float(), dim=-1)
        sims = query @ feats.T
        out: list[list[int]] = []
        for row, (ex, img) in enumerate(zip(examples, images)):
            own = image_digest(img)
            ident = _field(ex, "id")
            caption = _field(ex, "caption")
            order = torch.argsort(sims[row], descending=True, stable=True).tolist()
            picked = []
            for j in order:
                entry = self.entries[j]
                if digests[j] == own:
                    continue
                if ident is not None and entry.id is not None and str(ident) == entry.id:
                    continue
                if self.exclude_same_caption and caption is not None and entry.caption.strip() == str(caption).strip():
                    continue
                picked.append(j)
                if len(picked) == self.k:
                    break
            if not picked:
                where = _field(ex, "where") or f"row {row + 1}"
                raise SteerInputError(
                    f"{where}: the caption corpus has no image other than the query itself; give a larger corpus"
                )
            out.append(picked)
        return out

    def retrieve(self, examples: Sequence[Any]) -> list[str]:
        return [self.joiner.join(self.entries[j].caption for j in idx) for idx in self.neighbours(examples)]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "k": self.k,
            "corpus_size": len(self.entries),
            "exclude_same_caption": self.exclude_same_caption,
        }


def read_corpus(path: str | os.PathLike) -> list[CorpusEntry]:
    """A caption corpus from a ``.jsonl`` file with ``image`` and ``caption`` columns
    (image paths relative to the file's folder are resolved)."""
    import json

    source = Path(path)
    if not source.is_file():
        raise SteerInputError(f"caption corpus not found: {source}")
    out = []
    for i, line in enumerate(source.read_text(encoding="utf-8-sig").splitlines()):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise SteerInputError(f"{source} line {i + 1}: not JSON ({err})") from None
        if "image" not in row or "caption" not in row:
            raise SteerInputError(f"{source} line {i + 1}: needs 'image' and 'caption'")
        image = Path(row["image"])
        if not image.is_absolute() and not image.exists():
            image = source.parent / image
        out.append(CorpusEntry(str(image), str(row["caption"]), None if row.get("id") is None else str(row["id"])))
    return out
