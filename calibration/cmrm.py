"""CMRM calibration (arXiv 2410.09047): per-layer dataset-level modality shift vectors.

For every anchor query (a prompt, optionally with a real image) two views run through the
model's adapter:

``c``  content-free image (``null_image``: blank / noise / mean, the processor's size) + prompt
``t``  the prompt alone (text only)

and, per decoder layer ``l``, the pooled hidden states give ``delta_l = h_l(c) - h_l(t)``.
Pooling (``pool``): ``last`` = the last prompt token (default; see
``../shared/organism-notes.md``: the last token carries the safety-relevant shift),
``mean`` = mean over the text tokens that follow the image and that both views share
(their longest common token suffix, capped at the tokens after the image).
The anchor's own real image is not needed by CMRM's shift (the ``o`` view is never run):
it is validated and hashed into the provenance only.

Dataset level: ``s_l = mean_i delta_l,i`` (``reduce="mean"``), or the first principal
component of the deltas (centred, as ``sklearn.decomposition.PCA``) scaled to the mean's
projection on it (``reduce="pc1"``; keeps a d x min(d, anchors, 512) float64 sketch of the second
moments per layer, not d x d: exact PC1 up to 512 anchors, see :mod:`calibration.accumulator`).

How it runs:

* streaming, float64 sums only (:mod:`calibration.accumulator`), whatever the model dtype;
  the two views run as two left-padded forwards per batch (the text-only rows are not
  padded to the image rows' length), each stopped after the deepest requested layer;
* ``checkpoint`` + ``checkpoint_every``: the accumulator is written atomically at batch
  boundaries; a rerun with the same settings resumes and gives identical vectors;
* data-parallel under ``torch.distributed`` (:mod:`calibration.distributed`);
* per-layer statistics in the metadata: ``norm`` |s_l|, ``consistency`` (mean cosine of
  the per-sample deltas with their mean), ``separability`` (held-out accuracy of a
  logistic-regression probe telling text-only states from content-free-image states, on
  up to ``probe_samples`` anchors split 75/25 by anchor), ``mean_delta_norm``.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from PIL import Image

from calibration import distributed as dist
from calibration.accumulator import ProbeStore, ShiftAccumulator, load_checkpoint, save_checkpoint
from calibration.recipes import Recipe, resolve_recipe
from steer.adapters import ModelAdapter
from steer.adapters.base import NULL_IMAGE_KINDS
from steer.capture import POOLS, capture_pooled, text_tail_lengths
from steer.errors import SteerInputError
from steer.interrupts import interrupt_note
from steer.model import as_adapter
from steer.resume_key import parameters_digest
from steer.steering import normalize_layers
from steer.vectors import ShiftVectors

REDUCES = ("mean", "pc1")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
PROMPT_FILES = ("prompts.txt", "prompt.txt")
CHECKPOINT_VERSION = 1
PROBE_TEST_FRACTION = 0.25


# ====================================================================== anchors
@dataclass
class Anchor:
    """One calibration query: a prompt, an optional real image, and where it came from."""

    prompt: str
    image: str | Image.Image | None = None
    where: str = ""

    def describe(self) -> str:
        return self.where or "an anchor"


def _is_hf_dataset_dir(path: Path) -> bool:
    return any((path / name).exists() for name in ("dataset_info.json", "state.json", "dataset_dict.json"))


def read_image_folder(folder: str | os.PathLike, prompt_file: str | os.PathLike | None = None) -> list[Anchor]:
    """Anchors from an image folder + a prompt file.

    The prompt file (default: ``prompts.txt`` or ``prompt.txt`` inside the folder) holds
    one prompt per line (empty lines skipped): either a single line, used with every
    image, or one line per image, paired with the images in sorted file-name order.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise SteerInputError(f"image folder not found: {root}")
    if prompt_file is None:
        found = [root / name for name in PROMPT_FILES if (root / name).is_file()]
        if not found:
            raise SteerInputError(
                f"{root}: an image folder needs a prompt file ({' or '.join(PROMPT_FILES)}: one prompt per line, "
                "or one line for all images); a datasets folder needs dataset_info.json/state.json"
            )
        prompt_path = found[0]
    else:
        prompt_path = Path(prompt_file).expanduser()
        if not prompt_path.is_file():
            raise SteerInputError(f"prompt file not found: {prompt_path}")
    images = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    prompts = [line.strip() for line in prompt_path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    if not images:
        raise SteerInputError(f"{root}: no image files ({', '.join(IMAGE_SUFFIXES)}) in the folder")
    if not prompts:
        raise SteerInputError(f"{prompt_path}: no prompts (one prompt per line)")
    if len(prompts) == 1:
        prompts = prompts * len(images)
    if len(prompts) != len(images):
        raise SteerInputError(
            f"{prompt_path}: {len(prompts)} prompts for {len(images)} images in {root}; give one prompt per image "
            "(sorted by file name) or a single prompt for all"
        )
    return [
        Anchor(prompt, str(img.resolve()), f"{root} image {img.name} (prompt line {i + 1})")
        for i, (prompt, img) in enumerate(zip(prompts, images))
    ]


def _from_item(item: Any, where: str) -> Anchor:
    if isinstance(item, Anchor):
        return item if item.where else Anchor(item.prompt, item.image, where)
    if isinstance(item, str):
        return Anchor(item, None, where)
    if isinstance(item, tuple) and len(item) == 2:
        prompt, image = item
        if not isinstance(prompt, str):
            raise SteerInputError(f"{where}: expected (prompt, image), got a {type(prompt).__name__} prompt")
        return Anchor(prompt, image, where)
    if isinstance(item, Mapping):
        if "prompt" not in item:
            found = ", ".join(repr(k) for k in item) or "none"
            raise SteerInputError(
                f"{where}: missing required column 'prompt' (found: {found}); expected columns: "
                "'prompt' (required), 'image' (optional)"
            )
        prompt, image = item["prompt"], item.get("image")
        if isinstance(image, Mapping) and "path" in image:
            image = image["path"]
        if image is not None and not isinstance(image, (str, os.PathLike, Image.Image)):
            raise SteerInputError(f"{where}: 'image' must be a file path or a PIL image, got {type(image).__name__}")
        if isinstance(image, str) and not image.strip():
            image = None
        return Anchor(prompt, str(image) if isinstance(image, os.PathLike) else image, where)
    prompt = getattr(item, "prompt", None)
    if prompt is not None:  # steer.data.items.EvalItem and look-alikes
        ident = getattr(item, "id", None)
        label = where if ident is None else f"{where} (id {ident})"
        return Anchor(prompt, getattr(item, "image", None), label)
    raise SteerInputError(f"{where}: cannot read a {type(item).__name__} as an anchor (give a prompt string or a dict)")


def load_anchors(source: Any, *, split: str | None = None, what: str = "anchors") -> list[Anchor]:
    """Calibration queries from any supported source.

    * a path: ``.jsonl`` / ``.csv`` / ``.json`` file or a ``datasets.save_to_disk`` folder
      (read by :func:`steer.data.user_files.load_user_dataset`: columns ``prompt`` and an
      optional ``image`` path), or an image folder + prompt file (:func:`read_image_folder`);
    * a shared evaluation set by name, optionally ``name:split`` (``advbench``,
      ``harmless-alpaca:train``, ... -- :data:`steer.data.named_sets.DATASET_NAMES`);
    * ``(image_folder, prompt_file)``;
    * a list of ``EvalItem``s, :class:`Anchor`s, dicts (``prompt``, ``image``), prompt
      strings or ``(prompt, image)`` pairs.

    Errors name the source and the row.
    """
    if isinstance(source, tuple) and len(source) == 2 and all(isinstance(s, (str, os.PathLike)) for s in source):
        folder = Path(source[0]).expanduser()
        if folder.is_dir() and not _is_hf_dataset_dir(folder):
            anchors = read_image_folder(folder, source[1])
            return _nonempty(anchors, str(folder), what)
    if isinstance(source, (str, os.PathLike)):
        text = str(source)
        path = Path(text).expanduser()
        if path.exists():
            if path.is_dir() and not _is_hf_dataset_dir(path):
                return _nonempty(read_image_folder(path), text, what)
            from steer.data.user_files import load_user_dataset

            items = load_user_dataset(path, split=split, default_label="harmful")  # labels unused: anchors are prompts
            return _nonempty([_from_item(it, f"{path} row {i + 1}") for i, it in enumerate(items)], text, what)
        if text.lower().startswith("hf:"):  # a hub dataset (steer.data.hub), read like --data of eval
            from steer.data.specs import load_items

            items = load_items(text)
            return _nonempty([_from_item(it, f"{text} row {i + 1}") for i, it in enumerate(items)], text, what)
        from steer.data.named_sets import DATASET_NAMES, load_dataset_by_name

        name, _, name_split = text.partition(":")
        key = name.strip().lower().replace("_", "-")
        if key in DATASET_NAMES:
            items = load_dataset_by_name(key, split=name_split or split)
            return _nonempty([_from_item(it, f"{key} row {i + 1}") for i, it in enumerate(items)], text, what)
        raise SteerInputError(
            f"{what}: {text!r} is neither a file/folder nor a shared set (known sets: {', '.join(DATASET_NAMES)})"
        )
    if isinstance(source, Iterable) and not isinstance(source, (bytes, Mapping)):
        anchors = [_from_item(it, f"{what} row {i + 1}") for i, it in enumerate(source)]
        return _nonempty(anchors, f"the given {what}", what)
    raise SteerInputError(f"cannot read {what} from a {type(source).__name__}")


def _nonempty(anchors: list[Anchor], source: str, what: str) -> list[Anchor]:
    if not anchors:
        raise SteerInputError(f"{what}: {source} holds no rows (empty dataset); calibration needs at least one")
    for a in anchors:
        if not isinstance(a.prompt, str) or not a.prompt.strip():
            raise SteerInputError(f"{a.describe()}: 'prompt' must be a non-empty string")
    return anchors


def subsample(anchors: list[Anchor], max_samples: int | None, seed: int) -> list[Anchor]:
    """At most ``max_samples`` anchors: a seeded random subset, kept in source order."""
    if max_samples is None or max_samples >= len(anchors):
        return list(anchors)
    if max_samples < 1:
        raise SteerInputError(f"max_samples must be >= 1, got {max_samples}")
    keep = np.sort(np.random.default_rng(seed).choice(len(anchors), size=max_samples, replace=False))
    return [anchors[int(i)] for i in keep]


# ====================================================================== hashing / checks
def _image_digest(image: str | Image.Image, where: str) -> bytes:
    if isinstance(image, Image.Image):
        h = hashlib.sha256(f"{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
        h.update(image.tobytes())
        return h.digest()
    path = Path(image).expanduser()
    if not path.is_file():
        raise SteerInputError(f"{where}: image file not found: {path}")
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    try:
        with Image.open(path) as img:
            img.size  # noqa: B018 - reads the header: is it an image at all?
    except Exception as err:  # PIL raises several types
        raise SteerInputError(f"{where}: cannot read image {path}: {err} (give a PNG/JPEG/WebP file)") from None
    return h.digest()


def data_sha256(anchors: Sequence[Anchor]) -> str:
    """sha256 of the calibration list, in order: each prompt's UTF-8 bytes and the sha256 of
    its image's bytes (file bytes, or mode/size/pixels of an in-memory image), length-prefixed.
    Also checks every image exists and is readable, naming the row."""
    h = hashlib.sha256()
    for a in anchors:
        p = a.prompt.encode("utf-8")
        h.update(b"P" + len(p).to_bytes(8, "little") + p)
        if a.image is None:
            h.update(b"N")
        else:
            h.update(b"I" + _image_digest(a.image, a.describe()))
    return h.hexdigest()


def context_limit(adapter: ModelAdapter) -> int | None:
    value = getattr(adapter.text_config, "max_position_embeddings", None)
    return int(value) if value else None


def _check_lengths(adapter: ModelAdapter, inputs: Mapping[str, Any], rows: Sequence[Anchor], view: str) -> None:
    limit = context_limit(adapter)
    if limit is None:
        return
    mask = inputs.get("attention_mask")
    lengths = mask.sum(dim=1) if mask is not None else torch.full((inputs["input_ids"].shape[0],), inputs["input_ids"].shape[1])
    for anchor, length in zip(rows, lengths.tolist()):
        if length > limit:
            raise SteerInputError(
                f"{anchor.describe()}: the prompt is {int(length)} tokens with the {view}, longer than the model "
                f"context of {limit} tokens; shorten or drop it"
            )


def preflight_lengths(adapter: ModelAdapter, anchors: Sequence[Anchor], *, with_image: bool, null: Image.Image | None) -> None:
    """Fail before any forward pass when a prompt cannot fit the model context."""
    limit = context_limit(adapter)
    if limit is None or not anchors:
        return
    extra = 0
    if with_image:
        probe = [anchors[0].prompt]
        n_img = int(adapter.build_inputs(probe, [null])["attention_mask"].sum())
        n_txt = int(adapter.build_inputs(probe, None)["attention_mask"].sum())
        extra = n_img - n_txt
    step = 256
    for start in range(0, len(anchors), step):
        chunk = anchors[start : start + step]
        inputs = adapter.build_inputs([a.prompt for a in chunk], None)
        lengths = inputs["attention_mask"].sum(dim=1) + extra
        for anchor, length in zip(chunk, lengths.tolist()):
            if length > limit:
                view = "content-free image" if with_image else "text-only view"
                raise SteerInputError(
                    f"{anchor.describe()}: the prompt is {int(length)} tokens with the {view}, longer than the model "
                    f"context of {limit} tokens; shorten or drop it"
                )


# ====================================================================== model / layers
def shared_text_tails(adapter: ModelAdapter, image_inputs: Mapping[str, Any], text_inputs: Mapping[str, Any]) -> torch.Tensor:
    """Per row: number of trailing tokens the image view and the text view share, capped at the
    image view's tokens after its last image token (both batches left-padded)."""
    ids_c, ids_t = image_inputs["input_ids"], text_inputs["input_ids"]
    m_c = image_inputs.get("attention_mask")
    m_t = text_inputs.get("attention_mask")
    m_c = torch.ones_like(ids_c, dtype=torch.bool) if m_c is None else m_c.bool()
    m_t = torch.ones_like(ids_t, dtype=torch.bool) if m_t is None else m_t.bool()
    width = min(ids_c.shape[1], ids_t.shape[1])
    same = (ids_c[:, -width:] == ids_t[:, -width:]) & m_c[:, -width:] & m_t[:, -width:]
    common = same.flip(1).long().cumprod(dim=1).sum(dim=1)
    tail = text_tail_lengths(adapter, ids_c, m_c)
    return torch.minimum(common, tail).clamp_min(1).cpu()


# ====================================================================== streaming runner
@dataclass
class Phase:
    """One streamed pass over a list of anchors.

    ``kind="shift"``: content-free-image view minus text view (CMRM deltas);
    ``kind="text"``: text-only states (ShiftDC's harmful / benign means, last token).
    """

    name: str
    kind: str
    anchors: list[Anchor]
    acc: ShiftAccumulator
    probe: ProbeStore | None = None
    probe_select: frozenset[int] = frozenset()
    local: list[int] = field(default_factory=list)
    batches_done: int = 0


class Runner:
    """Streams phases in batches, with atomic checkpoints and data-parallel shards."""

    def __init__(
        self,
        adapter: ModelAdapter,
        layers: Sequence[int],
        *,
        pool: str,
        null: Image.Image | None,
        batch_size: int,
        checkpoint: str | os.PathLike | None,
        checkpoint_every: int | None,
        signature: dict[str, Any],
        progress: bool,
    ):
        if batch_size < 1:
            raise SteerInputError(f"batch_size must be >= 1, got {batch_size}")
        if checkpoint_every is not None and checkpoint_every < 1:
            raise SteerInputError(f"checkpoint_every must be >= 1 sample, got {checkpoint_every}")
        if checkpoint_every is not None and checkpoint is None:
            raise SteerInputError("checkpoint_every needs a checkpoint path to write to")
        self.adapter = adapter
        self.layers = list(layers)
        self.pool = pool
        self.null = null
        self.batch_size = batch_size
        self.rank, self.world = dist.rank_and_world()
        self.checkpoint = self._rank_path(checkpoint)
        self.checkpoint_every = checkpoint_every
        self.signature = dict(signature, world_size=self.world, rank=self.rank, batch_size=batch_size)
        self.progress = progress and self.rank == 0
        self.resumed_samples = 0

    def _rank_path(self, checkpoint: str | os.PathLike | None) -> Path | None:
        if checkpoint is None:
            return None
        path = Path(checkpoint)
        return path if self.world == 1 else path.with_name(f"{path.name}.rank{self.rank}-of-{self.world}")

    # ------------------------------------------------------------------ checkpoint
    def _state(self, phases: Sequence[Phase]) -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "signature": self.signature,
            "phases": {
                p.name: {
                    "batches_done": p.batches_done,
                    "acc": p.acc.state_dict(),
                    "probe": p.probe.state_dict() if p.probe is not None else None,
                }
                for p in phases
            },
        }

    def _restore(self, phases: Sequence[Phase]) -> None:
        if self.checkpoint is None or not self.checkpoint.exists():
            return
        state = load_checkpoint(self.checkpoint)
        old = state.get("signature", {})
        if state.get("version") != CHECKPOINT_VERSION or old != self.signature:
            keys = sorted(k for k in set(old) | set(self.signature) if old.get(k) != self.signature.get(k))
            detail = ", ".join(f"{k}: {old.get(k)!r} (checkpoint) vs {self.signature.get(k)!r} (now)" for k in keys[:4])
            raise SteerInputError(
                f"checkpoint {self.checkpoint} belongs to a different calibration ({detail or 'format version'}); "
                "rerun with the same options to resume, or delete the checkpoint to start over"
            )
        for p in phases:
            saved = state["phases"][p.name]
            p.batches_done = int(saved["batches_done"])
            p.acc = ShiftAccumulator.from_state_dict(saved["acc"])
            if p.probe is not None and saved.get("probe") is not None:
                p.probe = ProbeStore.from_state_dict(saved["probe"])
            self.resumed_samples += min(len(p.local), p.batches_done * self.batch_size)

    def _save(self, phases: Sequence[Phase]) -> None:
        if self.checkpoint is not None:
            save_checkpoint(self.checkpoint, self._state(phases))

    def _interrupt_note(self) -> str:
        """What an interrupt keeps: the checkpoint (if one was written), else nothing."""
        if self.checkpoint is not None and self.checkpoint.exists():
            return f"checkpoint {self.checkpoint} kept; rerun the same command to resume from it"
        if self.checkpoint is not None:
            return "no checkpoint was written yet; rerun the command to start over"
        return "nothing was written; rerun the command (add --checkpoint-every N to make it resumable)"

    def remove_checkpoint(self) -> None:
        if self.checkpoint is not None:
            self.checkpoint.unlink(missing_ok=True)

    # ------------------------------------------------------------------ batches
    def _process(self, phase: Phase, index: list[int]) -> int:
        rows = [phase.anchors[i] for i in index]
        prompts = [a.prompt for a in rows]
        adapter = self.adapter
        text_inputs = adapter.build_inputs(prompts, None)
        _check_lengths(adapter, text_inputs, rows, "text-only view")
        if phase.kind == "text":
            states = capture_pooled(adapter, text_inputs, self.layers, pool="last")
            phase.acc.update(states)
            return len(index)
        image_inputs = adapter.build_inputs(prompts, [self.null] * len(prompts))
        _check_lengths(adapter, image_inputs, rows, "content-free image")
        tail = shared_text_tails(adapter, image_inputs, text_inputs) if self.pool == "mean" else None
        with_image = capture_pooled(adapter, image_inputs, self.layers, pool=self.pool, tail_len=tail)
        text_only = capture_pooled(adapter, text_inputs, self.layers, pool=self.pool, tail_len=tail)
        phase.acc.update({l: with_image[l] - text_only[l] for l in self.layers})
        if phase.probe is not None:
            for j, i in enumerate(index):
                if i in phase.probe_select:
                    phase.probe.add(
                        i,
                        torch.stack([text_only[l][j] for l in self.layers]),
                        torch.stack([with_image[l][j] for l in self.layers]),
                    )
        return len(index)

    def run(self, phases: Sequence[Phase]) -> None:
        for p in phases:
            p.local = dist.shard(list(range(len(p.anchors))), self.rank, self.world)
        self._restore(phases)
        total = sum(len(p.local) for p in phases)
        done = self.resumed_samples
        last_mark = done // self.checkpoint_every if self.checkpoint_every else 0
        bar = _ProgressBar(total, done, enabled=self.progress)
        with interrupt_note(self._interrupt_note), bar:
            for p in phases:
                batches = [p.local[i : i + self.batch_size] for i in range(0, len(p.local), self.batch_size)]
                bar.describe(p.name if self.world == 1 else f"{p.name} (rank {self.rank}/{self.world}, its shard)")
                for b, index in enumerate(batches):
                    if b < p.batches_done:
                        continue
                    n = self._process(p, index)
                    p.batches_done = b + 1
                    done += n
                    bar.advance(n)
                    if self.checkpoint_every and self.checkpoint is not None:
                        mark = done // self.checkpoint_every
                        if mark > last_mark:
                            self._save(phases)
                            last_mark = mark
        for p in phases:
            dist.all_reduce_accumulator(p.acc)
            if p.probe is not None:
                p.probe = dist.all_gather_probe(p.probe)


class _ProgressBar:
    """A rich progress bar with samples/s (a no-op when disabled)."""

    def __init__(self, total: int, completed: int, enabled: bool):
        self.enabled = enabled
        self._progress = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import ProgressColumn
        from rich.text import Text

        from steer.progress import progress_bar

        class RateColumn(ProgressColumn):
            def render(self, task):  # noqa: D401 - rich API
                speed = task.speed
                return Text("-- samples/s" if speed is None else f"{speed:.1f} samples/s")

        self._progress = progress_bar(Console(stderr=True), RateColumn())  # counts first: kept at 80 columns
        self._task = self._progress.add_task("calibrating", total=total, completed=completed)

    def __enter__(self) -> "_ProgressBar":
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()

    def describe(self, name: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=name)

    def advance(self, n: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)


# ====================================================================== statistics
def probe_indices(n: int, probe_samples: int, seed: int) -> frozenset[int]:
    if n <= probe_samples:
        return frozenset(range(n))
    rng = np.random.default_rng([seed, 1])
    return frozenset(int(i) for i in rng.choice(n, size=probe_samples, replace=False))


def separability(store: ProbeStore, seed: int) -> dict[int, float | None]:
    """Held-out accuracy of a logistic-regression probe: text-only (0) vs content-free image (1).

    The split is by anchor (both views of an anchor on the same side), 75/25, seeded;
    None with fewer than 4 anchors.
    """
    idx = store.indices()
    if len(idx) < 4:
        return {layer: None for layer in store.layers}
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    perm = np.random.default_rng([seed, 2]).permutation(len(idx))
    n_test = max(1, int(round(PROBE_TEST_FRACTION * len(idx))))
    test = [idx[i] for i in sorted(perm[:n_test])]
    train = [idx[i] for i in sorted(perm[n_test:])]
    out: dict[int, float | None] = {}
    for layer in store.layers:
        t_tr, i_tr = store.arrays(layer, train)
        t_te, i_te = store.arrays(layer, test)
        x_tr = torch.cat([t_tr, i_tr]).double().numpy()
        y_tr = np.r_[np.zeros(len(train)), np.ones(len(train))]
        x_te = torch.cat([t_te, i_te]).double().numpy()
        y_te = np.r_[np.zeros(len(test)), np.ones(len(test))]
        clf = make_pipeline(StandardScaler(), LogisticRegression(solver="liblinear", max_iter=2000, random_state=0))
        clf.fit(x_tr, y_tr)
        out[layer] = float(clf.score(x_te, y_te))
    return out


def shift_stats(acc: ShiftAccumulator, shifts: Mapping[int, torch.Tensor], sep: Mapping[int, float | None]) -> dict[str, dict[str, Any]]:
    stats: dict[str, dict[str, Any]] = {}
    for layer in acc.layers:
        stats[str(layer)] = {
            "norm": float(torch.linalg.vector_norm(shifts[layer])),
            "consistency": acc.consistency(layer),
            "separability": sep.get(layer),
            "mean_delta_norm": float(np.sqrt(acc.mean_sq_norm(layer))),
        }
    return stats


def reduce_shifts(acc: ShiftAccumulator, reduce: str) -> tuple[dict[int, torch.Tensor], dict[int, float]]:
    """({layer: s_l float64}, {layer: explained-variance ratio} (pc1 only))."""
    if reduce == "mean":
        return acc.means(), {}
    shifts, ratios = {}, {}
    for layer in acc.layers:
        shifts[layer], ratios[layer] = acc.pc1(layer)
    return shifts, ratios


# ====================================================================== public API
def check_recipe(
    method: str,
    recipe: "str | Recipe | None" = None,
    positions: str | None = None,
    schedule: str | None = None,
    default_alpha: float | str | None = None,
    level: str | None = None,
) -> Recipe:
    """The validated recipe a new vector file will carry (see :mod:`calibration.recipes`).

    ``recipe``: a preset name (default ``measured``), ``custom``, or a ready :class:`Recipe`
    (then the explicit settings must be None).
    """
    if isinstance(recipe, Recipe):
        if any(v is not None for v in (positions, schedule, default_alpha, level)):
            raise SteerInputError("give either a Recipe or positions/schedule/alpha/level, not both")
        if recipe.method != method:
            raise SteerInputError(f"recipe is for {recipe.method}, but this calibrates {method}")
        return resolve_recipe(method, "custom" if recipe.name == "custom" else recipe.name, positions=recipe.positions,
                              schedule=recipe.schedule, alpha=recipe.alpha, level=recipe.level)
    return resolve_recipe(method, recipe, positions=positions, schedule=schedule, alpha=default_alpha, level=level)


def _check_options(pool: str, reduce: str, null_image: str) -> None:
    if pool not in POOLS:
        raise SteerInputError(f"unknown pooling {pool!r}; choose one of: {', '.join(POOLS)}")
    if reduce not in REDUCES:
        raise SteerInputError(f"unknown reduce {reduce!r}; choose one of: {', '.join(REDUCES)}")
    if null_image not in NULL_IMAGE_KINDS:
        raise SteerInputError(f"unknown null image {null_image!r}; choose one of: {', '.join(NULL_IMAGE_KINDS)}")


def describe_source(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, tuple):
        return ",".join(map(str, source))
    return f"in-memory list ({type(source).__name__})"


@dataclass
class _Prepared:
    adapter: ModelAdapter
    layers: list[int]
    anchors: list[Anchor]
    digest: str
    null: Image.Image


def prepare_shift(
    model_or_sm: Any,
    anchors: Any,
    *,
    layers: Sequence[int] | None,
    pool: str,
    reduce: str,
    null_image: str,
    max_samples: int | None,
    seed: int,
    schedule: str | None = None,
) -> _Prepared:
    _check_options(pool, reduce, null_image)
    adapter = as_adapter(model_or_sm, "calibrate")
    if not adapter.supports_images:
        raise SteerInputError(
            f"CMRM measures the shift an image causes, and {adapter.family} models take no images; "
            "calibrate a vision-language model"
        )
    chosen = list(range(adapter.num_layers)) if layers is None else normalize_layers(layers, adapter.num_layers, "calibrate")
    if schedule == "single" and len(chosen) != 1:  # a stored recipe that could never be applied
        raise SteerInputError(
            f"schedule 'single' steers one layer, but {len(chosen)} layers are calibrated; give one layer "
            "(--layers N) or store another schedule"
        )
    items = subsample(load_anchors(anchors), max_samples, seed)
    if reduce == "pc1" and len(items) < 2:
        raise SteerInputError(
            f"--reduce pc1 needs at least 2 anchors (one sample has no principal component), got {len(items)}; "
            "give more anchors or --reduce mean"
        )
    digest = data_sha256(items)
    null = adapter.content_free_image(null_image, seed=seed)
    preflight_lengths(adapter, items, with_image=True, null=null)
    return _Prepared(adapter, chosen, items, digest, null)


def shift_phase(prep: _Prepared, reduce: str, probe_samples: int, seed: int) -> Phase:
    d = prep.adapter.hidden_size
    return Phase(
        "shift",
        "shift",
        prep.anchors,
        ShiftAccumulator(prep.layers, d, second_moment=reduce == "pc1", expected_samples=len(prep.anchors)),
        probe=(store := ProbeStore(prep.layers, d)),
        probe_select=probe_indices(len(prep.anchors), min(probe_samples, store.capacity), seed),  # bounded memory
    )


def base_signature(prep: _Prepared, *, method: str, pool: str, reduce: str, null_image: str, seed: int, max_samples: int | None, probe_samples: int) -> dict[str, Any]:
    fp = prep.adapter.fingerprint()
    return {
        "method": method,
        "model_weights": fp["weights_sha256"],
        "model_type": fp["model_type"],
        "model_params": parameters_digest(prep.adapter.model),  # every layer and the dtype, not just embeddings
        "layers": list(prep.layers),
        "pool": pool,
        "reduce": reduce,
        "null_image": null_image,
        "seed": int(seed),
        "max_samples": max_samples,
        "probe_samples": int(probe_samples),
        "data_sha256": prep.digest,
        "n_samples": len(prep.anchors),
        # image-token settings: a resume under other processor options would mix two kinds of shift
        **({"processor_kwargs": fp["processor_kwargs"]} if fp.get("processor_kwargs") else {}),
    }


def shift_metadata(
    prep: _Prepared,
    phase: Phase,
    shifts: Mapping[int, torch.Tensor],
    ratios: Mapping[int, float],
    *,
    method: str,
    pool: str,
    reduce: str,
    null_image: str,
    recipe: Recipe,
    seed: int,
    batch_size: int,
    max_samples: int | None,
    probe_samples: int,
    source: Any,
    elapsed: float,
) -> dict[str, Any]:
    rank, world = dist.rank_and_world()
    # the probe sees the same (gathered) samples on every rank: fit it once, share the result
    sep = separability(phase.probe, seed) if phase.probe is not None and rank == 0 else {}
    sep = dist.broadcast_object(sep)
    stats = shift_stats(phase.acc, shifts, sep)
    for layer, ratio in ratios.items():
        stats[str(layer)]["pc1_explained_variance"] = ratio
        stats[str(layer)]["pc1_exact"] = phase.acc.pc1_is_exact(layer)
    return {
        "method": method,
        "model": prep.adapter.fingerprint(),
        "pooling": pool,
        **recipe.metadata(),
        "n_samples": phase.acc.n,
        "data_sha256": prep.digest,
        "null_image": null_image,
        "reduce": reduce,
        "stats": stats,
        "calibration": {
            "data": describe_source(source),
            "seed": int(seed),
            "batch_size": int(batch_size),
            "max_samples": max_samples,
            "world_size": world,
            "views": "content-free image + prompt minus prompt alone",
            "accumulation": "float64",
            "probe": f"logistic regression, text-only vs content-free image, {len(phase.probe.indices()) if phase.probe else 0} anchors, "
            f"{int(PROBE_TEST_FRACTION * 100)}% held out by anchor",
            "elapsed_s": round(float(elapsed), 3),
        },
    }


def calibrate_cmrm(
    model_or_sm: Any,
    anchors: Any,
    *,
    layers: Sequence[int] | None = None,
    pool: str = "last",
    reduce: str = "mean",
    null_image: str = "blank",
    batch_size: int = 8,
    max_samples: int | None = None,
    seed: int = 0,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    progress: bool = True,
    recipe: "str | Recipe | None" = None,
    positions: str | None = None,
    schedule: str | None = None,
    default_alpha: float | None = None,
    level: str | None = None,
    probe_samples: int = 256,
    keep_checkpoint: bool = False,
) -> ShiftVectors:
    """Dataset-level CMRM shift vectors, one per layer, with provenance and per-layer stats.

    ``recipe`` / ``positions`` / ``schedule`` / ``default_alpha`` / ``level``: how the file
    is applied by default (:mod:`calibration.recipes`; default: the ``measured`` preset).

    ``anchors``: anything :func:`load_anchors` reads. ``layers``: decoder layers (None =
    all). ``checkpoint``: resume from / write to this file (written every
    ``checkpoint_every`` samples, at batch boundaries; removed on success unless
    ``keep_checkpoint``). Under ``torch.distributed`` every rank must call this with the
    same arguments; every rank gets the same vectors.
    """
    start = time.perf_counter()
    chosen_recipe = check_recipe("cmrm", recipe, positions, schedule, default_alpha, level)
    prep = prepare_shift(
        model_or_sm, anchors, layers=layers, pool=pool, reduce=reduce, null_image=null_image,
        max_samples=max_samples, seed=seed, schedule=chosen_recipe.schedule,
    )
    phase = shift_phase(prep, reduce, probe_samples, seed)
    signature = base_signature(
        prep, method="cmrm", pool=pool, reduce=reduce, null_image=null_image, seed=seed,
        max_samples=max_samples, probe_samples=probe_samples,
    )
    runner = Runner(
        prep.adapter, prep.layers, pool=pool, null=prep.null, batch_size=batch_size,
        checkpoint=checkpoint, checkpoint_every=checkpoint_every, signature=signature, progress=progress,
    )
    runner.run([phase])
    shifts, ratios = reduce_shifts(phase.acc, reduce)
    meta = shift_metadata(
        prep, phase, shifts, ratios, method="cmrm", pool=pool, reduce=reduce, null_image=null_image,
        recipe=chosen_recipe, seed=seed, batch_size=batch_size,
        max_samples=max_samples, probe_samples=probe_samples, source=anchors, elapsed=time.perf_counter() - start,
    )
    vectors = ShiftVectors(shifts, None, meta)
    if not keep_checkpoint:
        runner.remove_checkpoint()
    return vectors


def checkpoint_path_for(out: str | os.PathLike) -> Path:
    """Where the CLI keeps the resumable checkpoint of ``out``: ``<out>.ckpt`` next to it."""
    out = Path(out)
    return out.with_name(out.name + ".ckpt")
