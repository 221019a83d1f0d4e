"""Safety probes on hidden states (PSA-VLM's safety head as a scikit-learn probe), offline.

A probe reads one decoder layer's pooled hidden state and predicts whether the request is
harmful. Per candidate layer it is ``StandardScaler`` + ``LogisticRegression(class_weight=
"balanced")`` (scikit-learn), fitted on a stratified, seeded train split of labelled items
and scored on the held-out rest (accuracy at 0.5 and ROC-AUC). The best layer (highest
held-out AUC, then accuracy, then the earliest layer) becomes a :class:`steer.gate.ProbeGate`
that the runtime uses to gate steering (``SteeredModel.generate(..., gate=...)``).

Optionally, as in PSA-VLM's risk-type head, a multinomial logistic regression on the same
standardised features predicts a category column (``multiclass_column``); rows with an
empty category take their label ("benign" / "harmful") as class.

Views (``view``): ``as_given`` runs each item as given (with its image when it has one);
``text_only`` drops every image. :func:`transfer_report` fits probes on one view and
scores them on the other -- text-only states -> image+text states and the reverse -- the
measurement that says which representation a gate may read (see ``docs/probe.md``).

A text-trained probe tends to *rank* image inputs well while its probabilities there sit
near 0 (``../shared/organism-notes.md``): :func:`recalibrate_threshold` /
:func:`recalibrate_gate` choose a new threshold on labelled inputs of the deployment view,
without refitting the probe.

Entry points: :func:`fit_probe` (model + items), :func:`fit_layers` / :func:`fit_linear`
(arrays only), :func:`collect_states`, :func:`transfer_report`, :func:`recalibrate_threshold`,
:func:`recalibrate_gate`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from PIL import Image

from steer.adapters import ModelAdapter
from steer.capture import POOLS, capture_pooled, text_tail_lengths
from steer.errors import SteerInputError
from steer.model import as_adapter
from steer.steering import normalize_layers, residual_dtype
from steer.gate import ProbeGate, check_threshold

VIEWS = ("as_given", "text_only")
VIEW_NAMES = {"text_only": "text", "as_given": "image+text"}
OBJECTIVES = ("balanced_accuracy", "max_fpr")
POSITIVE_LABELS = {"harmful", "unsafe", "1", "true", "yes"}
NEGATIVE_LABELS = {"benign", "safe", "lookalike", "0", "false", "no"}


# ====================================================================== items
@dataclass(frozen=True)
class Record:
    """One labelled input: prompt, image source (path, PIL image, object with ``render()``, or None), 0/1 label."""

    prompt: str
    image: Any
    label: int
    category: str | None = None


def _label_of(value: Any, where: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)) and int(value) in (0, 1):
        return int(value)
    text = str(value).strip().lower()
    if text in POSITIVE_LABELS:
        return 1
    if text in NEGATIVE_LABELS:
        return 0
    raise SteerInputError(f"{where}: label {value!r} is neither harmful nor benign")


def _field(item: Any, name: str) -> Any:
    if isinstance(item, Mapping):
        return item.get(name)
    if hasattr(item, name):
        return getattr(item, name)
    meta = getattr(item, "meta", None)
    if isinstance(meta, Mapping):
        return meta.get(name)
    return None


def as_records(items: Iterable[Any], multiclass_column: str | None = None) -> list[Record]:
    """Records from EvalItems (``steer.data.items``), organism items, dicts or Records."""
    out: list[Record] = []
    for n, item in enumerate(items, 1):
        if isinstance(item, Record):
            out.append(item)
            continue
        where = f"item {n}"
        prompt = _field(item, "prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise SteerInputError(f"{where}: needs a non-empty 'prompt'")
        label = _field(item, "label")
        if label is None:
            raise SteerInputError(f"{where}: needs a label (harmful / benign) to fit a probe")
        category = None
        if multiclass_column is not None:
            value = _field(item, multiclass_column)
            category = None if value is None or (isinstance(value, str) and not value.strip()) else str(value)
        out.append(Record(prompt, _field(item, "image"), _label_of(label, where), category))
    if not out:
        raise SteerInputError("no labelled items: the data has no rows")
    if multiclass_column is not None and all(r.category is None for r in out):
        raise SteerInputError(
            f"no row has a value in the risk-type column {multiclass_column!r}; give a column the data has "
            "(e.g. 'category') or drop the risk-type option"
        )
    return out


def load_record_image(source: Any) -> Image.Image | None:
    if source is None:
        return None
    if isinstance(source, Image.Image):
        return source.convert("RGB")
    render = getattr(source, "render", None)
    if callable(render):
        return render().convert("RGB")
    from steer.images import load_image

    return load_image(source)


def _image_digest(source: Any) -> bytes:
    if isinstance(source, (str, os.PathLike)):
        h = hashlib.sha256()
        with open(source, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return h.digest()
    if not isinstance(source, Image.Image) and dataclass_repr(source) is not None:
        return hashlib.sha256(dataclass_repr(source).encode()).digest()
    img = load_record_image(source)
    h = hashlib.sha256(f"{img.mode}:{img.size[0]}x{img.size[1]}:".encode())
    h.update(img.tobytes())
    return h.digest()


def dataclass_repr(source: Any) -> str | None:
    """A stable identity for image recipes such as the organism's ``ImageRef(obj, seed)``."""
    import dataclasses

    if dataclasses.is_dataclass(source) and not isinstance(source, type):
        return f"{type(source).__name__}:{sorted(dataclasses.asdict(source).items())}"
    return None


def records_sha256(records: Sequence[Record]) -> str:
    """sha256 over the items in order: prompt bytes, image bytes (or recipe), label, category."""
    h = hashlib.sha256()
    for r in records:
        p = r.prompt.encode("utf-8")
        h.update(b"P" + len(p).to_bytes(8, "little") + p)
        h.update(b"N" if r.image is None else b"I" + _image_digest(r.image))
        h.update(b"L" + bytes([r.label]))
        c = (r.category or "").encode("utf-8")
        h.update(b"C" + len(c).to_bytes(8, "little") + c)
    return h.hexdigest()


# ====================================================================== model side
def default_layers(adapter: ModelAdapter) -> list[int]:
    """Every layer but the last: a gate on the last layer could not gate any later layer."""
    n = adapter.num_layers
    return list(range(max(1, n - 1)))


def check_view(view: str) -> str:
    if view not in VIEWS:
        raise SteerInputError(f"unknown view {view!r}; choose one of: {', '.join(VIEWS)}")
    return view


@torch.inference_mode()
def collect_states(
    model_or_sm: Any,
    items: Sequence[Any],
    *,
    layers: Sequence[int] | None = None,
    view: str = "as_given",
    pool: str = "last",
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> dict[int, np.ndarray]:
    """{layer: (N, d) float64 array} of pooled layer outputs, one row per item, in order.

    ``view="text_only"`` drops every image; ``pool="last"`` is the last prompt token (what
    the runtime gate reads).
    """
    adapter = as_adapter(model_or_sm, "probe")
    records = as_records(items)
    check_view(view)
    if pool not in POOLS:
        raise SteerInputError(f"unknown pooling {pool!r}; choose one of: {', '.join(POOLS)}")
    if batch_size < 1:
        raise SteerInputError(f"batch size must be >= 1, got {batch_size}")
    chosen = default_layers(adapter) if layers is None else normalize_layers(layers, adapter.num_layers, "probe")
    if view == "as_given" and not adapter.supports_images and any(r.image is not None for r in records):
        raise SteerInputError(
            f"{adapter.family} models take no images, but some items have one; use view 'text_only' or a VLM"
        )
    parts: dict[int, list[torch.Tensor]] = {layer: [] for layer in chosen}
    for start in range(0, len(records), batch_size):
        batch = records[start : start + batch_size]
        images = None if view == "text_only" else [load_record_image(r.image) for r in batch]
        if images is not None and all(im is None for im in images):
            images = None
        inputs = adapter.build_inputs([r.prompt for r in batch], images)
        tail = None
        if pool == "mean":
            tail = text_tail_lengths(adapter, inputs["input_ids"], inputs.get("attention_mask"))
        found = capture_pooled(adapter, inputs, chosen, pool=pool, tail_len=tail)
        for layer in chosen:
            parts[layer].append(found[layer])
        if progress is not None:
            progress(min(start + batch_size, len(records)), len(records))
    return {layer: torch.cat(parts[layer]).numpy() for layer in chosen}


# ====================================================================== fitting on arrays
@dataclass
class LinearProbe:
    """A fitted standardised logistic regression, as plain float64 arrays."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    type_coef: np.ndarray | None = None
    type_intercept: np.ndarray | None = None
    type_classes: tuple[str, ...] | None = None

    def standardise(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.scale

    def decision(self, x: np.ndarray) -> np.ndarray:
        return self.standardise(x) @ self.coef + self.intercept

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(N,) probability of the harmful class."""
        z = self.decision(x)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -700, 700)))

    def predict_type(self, x: np.ndarray) -> np.ndarray:
        if self.type_coef is None:
            raise SteerInputError("this probe has no risk-type head")
        logits = self.standardise(x) @ self.type_coef.T + self.type_intercept
        return np.asarray(self.type_classes, dtype=object)[np.argmax(logits, axis=1)]

    def to_gate(self, layer: int, threshold: float = 0.5, metadata: Mapping[str, Any] | None = None) -> ProbeGate:
        return ProbeGate(
            layer=layer,
            mean=torch.from_numpy(self.mean),
            scale=torch.from_numpy(self.scale),
            coef=torch.from_numpy(self.coef),
            intercept=torch.tensor([self.intercept]),
            threshold=threshold,
            metadata=dict(metadata or {}),
            type_coef=None if self.type_coef is None else torch.from_numpy(self.type_coef),
            type_intercept=None if self.type_intercept is None else torch.from_numpy(self.type_intercept),
            type_classes=self.type_classes,
        )


def _as_xy(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    xa = np.asarray(x.numpy() if torch.is_tensor(x) else x, dtype=np.float64)
    ya = np.asarray(y.numpy() if torch.is_tensor(y) else y).astype(np.int64).reshape(-1)
    if xa.ndim != 2:
        raise SteerInputError(f"states must be (N, d), got shape {xa.shape}")
    if len(xa) != len(ya):
        raise SteerInputError(f"{len(xa)} states but {len(ya)} labels")
    if not set(np.unique(ya).tolist()) <= {0, 1}:
        raise SteerInputError("labels must be 0 (benign) / 1 (harmful)")
    if not np.isfinite(xa).all():
        raise SteerInputError("states contain non-finite values")
    return xa, ya


def fit_linear(
    x: Any,
    y: Any,
    *,
    categories: Sequence[str] | None = None,
    C: float = 1.0,
    max_iter: int = 5000,
) -> LinearProbe:
    """Fit StandardScaler + LogisticRegression(class_weight="balanced") on (N, d) states.

    With ``categories`` (one class name per row) a multinomial risk-type head is fitted on
    the same standardised features (needs >= 2 distinct classes).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    xa, ya = _as_xy(x, y)
    counts = np.bincount(ya, minlength=2)
    if counts.min() < 1:
        raise SteerInputError(f"a probe needs harmful and benign examples to train on, got {counts[1]} / {counts[0]}")
    scaler = StandardScaler().fit(xa)
    z = scaler.transform(xa)
    clf = LogisticRegression(class_weight="balanced", C=C, max_iter=max_iter).fit(z, ya)
    probe = LinearProbe(
        mean=scaler.mean_.astype(np.float64),
        scale=scaler.scale_.astype(np.float64),
        coef=clf.coef_.reshape(-1).astype(np.float64),
        intercept=float(clf.intercept_.reshape(-1)[0]),
    )
    if categories is not None:
        cats = np.asarray([str(c) for c in categories], dtype=object)
        if len(cats) != len(xa):
            raise SteerInputError(f"{len(xa)} states but {len(cats)} categories")
        classes = sorted(set(cats.tolist()))
        if len(classes) < 2:
            raise SteerInputError(f"a risk-type head needs >= 2 categories in the training rows, got {classes}")
        head = LogisticRegression(class_weight="balanced", C=C, max_iter=max_iter).fit(z, cats)
        coef = head.coef_.astype(np.float64)
        icpt = head.intercept_.astype(np.float64)
        if len(head.classes_) == 2:  # sklearn stores one row for two classes: expand to softmax form
            coef = np.stack([-coef[0] / 2, coef[0] / 2])
            icpt = np.array([-icpt[0] / 2, icpt[0] / 2])
        probe.type_coef, probe.type_intercept = coef, icpt
        probe.type_classes = tuple(str(c) for c in head.classes_)
    return probe


def evaluate(probe: LinearProbe, x: Any, y: Any, threshold: float = 0.5) -> dict[str, Any]:
    """Accuracy at ``threshold`` (score > threshold = harmful), ROC-AUC, TPR/FPR, mean scores by class."""
    from sklearn.metrics import roc_auc_score

    xa, ya = _as_xy(x, y)
    p = probe.predict_proba(xa)
    pred = p > threshold
    pos, neg = ya == 1, ya == 0
    return {
        "n": int(len(ya)),
        "accuracy": float(np.mean(pred == pos)) if len(ya) else None,
        "auc": float(roc_auc_score(ya, p)) if pos.any() and neg.any() else None,
        "tpr": float(pred[pos].mean()) if pos.any() else None,
        "fpr": float(pred[neg].mean()) if neg.any() else None,
        "mean_score_harmful": float(p[pos].mean()) if pos.any() else None,
        "mean_score_benign": float(p[neg].mean()) if neg.any() else None,
    }


def split_indices(y: Any, test_fraction: float = 0.25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded (train, test) row indices, both sorted; each side gets both classes."""
    ya = np.asarray(y).astype(np.int64).reshape(-1)
    if not 0.0 < float(test_fraction) < 1.0:
        raise SteerInputError(f"test fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng([int(seed), 8])
    train: list[int] = []
    test: list[int] = []
    for cls in (0, 1):
        idx = np.flatnonzero(ya == cls)
        if len(idx) < 2:
            name = "harmful" if cls else "benign"
            raise SteerInputError(
                f"a probe needs at least 2 {name} items (one to train on, one to test on), got {len(idx)}"
            )
        idx = idx[rng.permutation(len(idx))]
        n_test = min(len(idx) - 1, max(1, int(round(float(test_fraction) * len(idx)))))
        test += idx[:n_test].tolist()
        train += idx[n_test:].tolist()
    return np.array(sorted(train), dtype=np.int64), np.array(sorted(test), dtype=np.int64)


@dataclass
class LayerResult:
    layer: int
    probe: LinearProbe
    accuracy: float
    auc: float | None
    train_accuracy: float
    type_accuracy: float | None = None
    type_macro_f1: float | None = None

    def row(self) -> dict[str, Any]:
        out = {"layer": self.layer, "accuracy": self.accuracy, "auc": self.auc, "train_accuracy": self.train_accuracy}
        if self.probe.type_coef is not None:
            out["type_accuracy"] = self.type_accuracy
            out["type_macro_f1"] = self.type_macro_f1
        return out


@dataclass
class ProbeReport:
    """Per-layer held-out results and the chosen layer; :meth:`to_gate` / :meth:`save` for the runtime."""

    results: dict[int, LayerResult]
    best_layer: int
    train_index: np.ndarray
    test_index: np.ndarray
    view: str = "as_given"
    pool: str = "last"
    data_sha256: str | None = None
    model: dict[str, Any] | None = None
    multiclass_column: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def layers(self) -> list[int]:
        return sorted(self.results)

    @property
    def best(self) -> LayerResult:
        return self.results[self.best_layer]

    def rows(self) -> list[dict[str, Any]]:
        return [self.results[layer].row() for layer in self.layers]

    def per_layer(self) -> dict[str, dict[str, Any]]:
        return {str(r["layer"]): {k: v for k, v in r.items() if k != "layer"} for r in self.rows()}

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "per_layer": self.per_layer(),
            "pooling": self.pool,
            "view": self.view,
            "n_train": int(len(self.train_index)),
            "n_test": int(len(self.test_index)),
            "accuracy": self.best.accuracy,
            "auc": self.best.auc,
            "threshold_source": "default",
        }
        if self.data_sha256 is not None:
            meta["data_sha256"] = self.data_sha256
        if self.model is not None:
            meta["model"] = dict(self.model)
        if self.multiclass_column is not None:
            meta["multiclass_column"] = self.multiclass_column
        meta.update(self.extra)
        return meta

    def to_gate(self, layer: int | None = None, threshold: float = 0.5) -> ProbeGate:
        """The runtime gate for ``layer`` (default: the best layer)."""
        if self.pool != "last":
            raise SteerInputError(
                f"the runtime gate reads the last prompt token; this probe was fitted on {self.pool!r}-pooled "
                "states: refit with pool='last' to use it as a gate"
            )
        chosen = self.best_layer if layer is None else int(layer)
        if chosen not in self.results:
            raise SteerInputError(f"no probe was fitted for layer {chosen} (fitted: {self.layers})")
        meta = self.metadata()
        if chosen != self.best_layer:
            meta.update(accuracy=self.results[chosen].accuracy, auc=self.results[chosen].auc)
        return self.results[chosen].probe.to_gate(chosen, threshold, meta)

    def save(self, path: str | os.PathLike, *, layer: int | None = None, threshold: float = 0.5) -> Path:
        return self.to_gate(layer, threshold).save(path)

    def format_table(self) -> str:
        rows = self.rows()
        cols = list(rows[0].keys())
        lines = ["  ".join(f"{c:>14}" for c in cols)]
        for row in rows:
            mark = "  <- chosen" if row["layer"] == self.best_layer else ""
            lines.append("  ".join(f"{_fmt(row[c]):>14}" for c in cols) + mark)
        return "\n".join(lines)

    def plot(self, path: str | os.PathLike) -> Path:
        """Per-layer held-out accuracy and ROC-AUC (PNG), chosen layer marked; written atomically."""
        series = {"accuracy": [r.accuracy for r in self.results.values()], "ROC-AUC": [r.auc for r in self.results.values()]}
        if self.best.type_accuracy is not None:
            series["risk-type accuracy"] = [r.type_accuracy for r in self.results.values()]
        title = f"probe ({VIEW_NAMES[self.view]} states, n_test={len(self.test_index)})"
        return plot_layers(path, list(self.results), series, title=title, chosen=self.best_layer)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def plot_layers(
    path: str | os.PathLike,
    layers: Sequence[int],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str = "",
    chosen: int | None = None,
) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from steer.atomic import atomic_path

    order = np.argsort(layers)
    xs = [layers[i] for i in order]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    try:
        for name, values in series.items():
            ys = [np.nan if values[i] is None else values[i] for i in order]
            ax.plot(xs, ys, marker="o", label=name)
        if chosen is not None:
            ax.axvline(chosen, color="grey", linestyle="--", linewidth=1, label=f"chosen layer {chosen}")
        ax.set_xlabel("decoder layer (0-based)")
        ax.set_ylabel("held-out score")
        ax.set_ylim(0.0, 1.02)
        ax.set_xticks(xs)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        if title:
            ax.set_title(title, fontsize=10)
        fig.tight_layout()
        target = Path(path)
        fmt = target.suffix.lstrip(".").lower() or "png"
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=fmt, dpi=120)
    finally:
        plt.close(fig)
    return target


def pick_best_layer(results: Mapping[int, LayerResult]) -> int:
    """Highest held-out AUC, then accuracy, then the earliest layer (more layers left to steer)."""
    return min(results, key=lambda l: (-(results[l].auc if results[l].auc is not None else -1.0), -results[l].accuracy, l))


def fit_layers(
    states: Mapping[int, Any] | Any,
    y: Any,
    *,
    test_fraction: float = 0.25,
    seed: int = 0,
    categories: Sequence[str | None] | None = None,
    train_index: Sequence[int] | None = None,
    test_index: Sequence[int] | None = None,
    C: float = 1.0,
) -> ProbeReport:
    """Fit and score a probe per layer from arrays alone (no model): ``states`` is {layer: (N, d)}
    or one (N, d) array (reported as layer 0). Returns a :class:`ProbeReport`."""
    if not isinstance(states, Mapping):
        states = {0: states}
    if not states:
        raise SteerInputError("no layers to probe")
    ya = np.asarray(y.numpy() if torch.is_tensor(y) else y).astype(np.int64).reshape(-1)
    if train_index is None or test_index is None:
        tr, te = split_indices(ya, test_fraction, seed)
    else:
        tr, te = np.asarray(train_index, dtype=np.int64), np.asarray(test_index, dtype=np.int64)
    cats = None
    if categories is not None:
        cats = np.asarray(
            [("harmful" if lab else "benign") if c is None else str(c) for c, lab in zip(categories, ya)], dtype=object
        )
    results: dict[int, LayerResult] = {}
    for layer, x in sorted(states.items()):
        xa, _ = _as_xy(x, ya)
        probe = fit_linear(xa[tr], ya[tr], categories=None if cats is None else cats[tr], C=C)
        test = evaluate(probe, xa[te], ya[te])
        train = evaluate(probe, xa[tr], ya[tr])
        res = LayerResult(int(layer), probe, test["accuracy"], test["auc"], train["accuracy"])
        if cats is not None:
            from sklearn.metrics import f1_score

            pred = probe.predict_type(xa[te])
            res.type_accuracy = float(np.mean(pred == cats[te]))
            res.type_macro_f1 = float(f1_score(cats[te].astype(str), pred.astype(str), average="macro", zero_division=0))
        results[int(layer)] = res
    return ProbeReport(results, pick_best_layer(results), tr, te)


# ====================================================================== fitting from a model
def fit_probe(
    model_or_sm: Any,
    items: Sequence[Any],
    *,
    layers: Sequence[int] | None = None,
    view: str = "as_given",
    pool: str = "last",
    batch_size: int = 8,
    test_fraction: float = 0.25,
    seed: int = 0,
    multiclass_column: str | None = None,
    C: float = 1.0,
    states: Mapping[int, np.ndarray] | None = None,
) -> ProbeReport:
    """Collect pooled states of ``items`` (one forward per batch, stopped after the deepest
    layer) and fit + score a probe per layer; see :func:`fit_layers`.

    ``layers``: candidate layers (default: all but the last, which could gate nothing).
    ``states``: precomputed :func:`collect_states` output to reuse (must match ``items``).
    """
    adapter = as_adapter(model_or_sm, "probe")
    check_view(view)
    records = as_records(items, multiclass_column)
    chosen = default_layers(adapter) if layers is None else normalize_layers(layers, adapter.num_layers, "probe")
    if states is None:
        states = collect_states(adapter, records, layers=chosen, view=view, pool=pool, batch_size=batch_size)
    else:
        missing = [layer for layer in chosen if layer not in states]
        if missing:
            raise SteerInputError(f"precomputed states lack layers {missing}")
        states = {layer: states[layer] for layer in chosen}
    y = np.array([r.label for r in records], dtype=np.int64)
    cats = [r.category for r in records] if multiclass_column is not None else None
    report = fit_layers(states, y, test_fraction=test_fraction, seed=seed, categories=cats, C=C)
    report.view, report.pool = view, pool
    report.data_sha256 = records_sha256(records)
    report.model = adapter.fingerprint()
    report.multiclass_column = multiclass_column
    report.extra.update(seed=int(seed), test_fraction=float(test_fraction), n_items=len(records))
    return report


# ====================================================================== thresholds
def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-300, 1 - 1e-16)
    return np.log(p) - np.log1p(-p)


def recalibrate_threshold(
    scores: Any,
    labels: Any,
    *,
    objective: str = "balanced_accuracy",
    max_fpr: float = 0.05,
) -> float:
    """A threshold for ``score > t`` chosen on labelled scores of the deployment view.

    ``balanced_accuracy``: maximise (TPR + TNR) / 2. ``max_fpr``: the highest TPR with a
    false-positive rate (benign rows steered) <= ``max_fpr``. Candidates are midpoints in
    logit space between consecutive distinct scores, so thresholds between scores near 0
    (a text-trained probe read on image inputs) stay between them; ties pick the middle one.
    """
    if objective not in OBJECTIVES:
        raise SteerInputError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    s = np.asarray(scores.detach().cpu().double().numpy() if torch.is_tensor(scores) else scores, dtype=np.float64)
    y = np.asarray(labels.cpu().numpy() if torch.is_tensor(labels) else labels).astype(np.int64).reshape(-1)
    if s.shape != y.shape:
        raise SteerInputError(f"{s.size} scores but {y.size} labels")
    pos, neg = y == 1, y == 0
    if not pos.any() or not neg.any():
        raise SteerInputError("recalibration needs harmful and benign examples")
    uniq = np.unique(s)
    lg = _logit(uniq)
    mids = 1.0 / (1.0 + np.exp(-(lg[:-1] + lg[1:]) / 2)) if len(uniq) > 1 else np.array([])
    cands = np.concatenate([[max(0.0, float(uniq[0]) / 2)], mids, [1.0]])
    cands = np.unique(np.clip(cands, 0.0, 1.0))
    flagged = s[None, :] > cands[:, None]
    tpr = flagged[:, pos].mean(axis=1)
    fpr = flagged[:, neg].mean(axis=1)
    if objective == "balanced_accuracy":
        value = (tpr + 1.0 - fpr) / 2.0
    else:
        value = np.where(fpr <= max_fpr + 1e-12, tpr, -1.0)
    best = np.flatnonzero(value >= value.max() - 1e-12)
    return check_threshold(float(cands[best[len(best) // 2]]))


@torch.inference_mode()
def gate_scores(
    model_or_sm: Any, gate: ProbeGate, items: Sequence[Any], *, view: str = "as_given", batch_size: int = 8
) -> np.ndarray:
    """(N,) float32 gate scores of ``items`` exactly as the runtime computes them (``gate.score``)."""
    adapter = as_adapter(model_or_sm, "probe")
    gate.check_model(adapter)
    states = collect_states(adapter, items, layers=[gate.layer], view=view, batch_size=batch_size)[gate.layer]
    hidden = torch.from_numpy(states).to(device=adapter.device, dtype=residual_dtype(adapter.model))
    return gate.score(hidden).cpu().numpy()


def recalibrate_gate(
    model_or_sm: Any,
    gate: ProbeGate,
    items: Sequence[Any],
    *,
    view: str = "as_given",
    objective: str = "balanced_accuracy",
    max_fpr: float = 0.05,
    batch_size: int = 8,
) -> ProbeGate:
    """The same probe with a threshold chosen on labelled ``items`` of the deployment view
    (e.g. image + text requests for a probe trained on text-only states)."""
    records = as_records(items)
    scores = gate_scores(model_or_sm, gate, records, view=view, batch_size=batch_size)
    labels = np.array([r.label for r in records])
    t = recalibrate_threshold(scores, labels, objective=objective, max_fpr=max_fpr)
    out = gate.with_threshold(t)
    out.metadata.update(
        threshold_source=f"recalibrated ({objective}{'' if objective != 'max_fpr' else f' <= {max_fpr}'})",
        recalibration_sha256=records_sha256(records),
        recalibration_n=len(records),
    )
    return out


# ====================================================================== transfer
TRANSFER_PAIRS = (("text_only", "text_only"), ("text_only", "as_given"), ("as_given", "as_given"), ("as_given", "text_only"))


@dataclass
class TransferReport:
    """Rows: per layer and (train view, test view): held-out accuracy at 0.5, ROC-AUC, mean
    scores by class, and the accuracy / TPR / FPR at a threshold recalibrated on the test view."""

    rows: list[dict[str, Any]]
    n_train: int
    n_test: int
    n_recalibration: int
    mode: str

    def format_table(self) -> str:
        cols = ["layer", "train", "test", "acc@0.5", "auc", "score_h", "score_b", "t_recal", "acc@t", "tpr@t", "fpr@t"]
        lines = ["  ".join(f"{c:>10}" for c in cols)]
        for r in self.rows:
            vals = [r["layer"], r["train"], r["test"], r["accuracy"], r["auc"], r["mean_score_harmful"],
                    r["mean_score_benign"], r["threshold"], r["accuracy_recal"], r["tpr_recal"], r["fpr_recal"]]
            lines.append("  ".join(f"{_fmt_t(v):>10}" for v in vals))
        return "\n".join(lines)

    def to_markdown(self) -> str:
        head = "| layer | train on | test on | acc@0.5 | ROC-AUC | mean score harmful | mean score benign | recal. t | acc@t | TPR@t | FPR@t |"
        lines = [head, "|" + "---|" * 11]
        for r in self.rows:
            vals = [r["layer"], r["train"], r["test"], r["accuracy"], r["auc"], r["mean_score_harmful"],
                    r["mean_score_benign"], r["threshold"], r["accuracy_recal"], r["tpr_recal"], r["fpr_recal"]]
            lines.append("| " + " | ".join(_fmt_t(v) for v in vals) + " |")
        return "\n".join(lines)


def _fmt_t(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.1e}"
        return f"{value:.3f}"
    return str(value)


def transfer_rows(
    states_train: Mapping[str, Mapping[int, np.ndarray]],
    y_train: np.ndarray,
    states_test: Mapping[str, Mapping[int, np.ndarray]],
    y_test: np.ndarray,
    states_recal: Mapping[str, Mapping[int, np.ndarray]],
    y_recal: np.ndarray,
    *,
    pairs: Sequence[tuple[str, str]] = TRANSFER_PAIRS,
    objective: str = "balanced_accuracy",
    C: float = 1.0,
) -> list[dict[str, Any]]:
    """The transfer table from arrays: ``states_*[view][layer]`` -> rows (see :class:`TransferReport`)."""
    rows: list[dict[str, Any]] = []
    views_needed = {a for a, _ in pairs}
    layers = sorted(next(iter(states_train.values())))
    for layer in layers:
        probes = {v: fit_linear(states_train[v][layer], y_train, C=C) for v in views_needed}
        for train_view, test_view in pairs:
            probe = probes[train_view]
            row = {"layer": layer, "train": VIEW_NAMES[train_view], "test": VIEW_NAMES[test_view]}
            row.update(evaluate(probe, states_test[test_view][layer], y_test))
            recal_scores = probe.predict_proba(states_recal[test_view][layer])
            t = recalibrate_threshold(recal_scores, y_recal, objective=objective)
            at = evaluate(probe, states_test[test_view][layer], y_test, threshold=t)
            row.update(threshold=t, accuracy_recal=at["accuracy"], tpr_recal=at["tpr"], fpr_recal=at["fpr"])
            rows.append(row)
    return rows


def transfer_report(
    model_or_sm: Any,
    items: Sequence[Any],
    *,
    eval_items: Sequence[Any] | None = None,
    layers: Sequence[int] | None = None,
    pool: str = "last",
    batch_size: int = 8,
    test_fraction: float = 0.25,
    seed: int = 0,
    objective: str = "balanced_accuracy",
    C: float = 1.0,
) -> TransferReport:
    """Train on text-only states, test on image+text states (and the reverse, and both in-view).

    ``items`` must carry images (the image+text view; the text view drops them). Without
    ``eval_items`` the items are split (stratified, seeded) into train and held-out test
    rows: probes fit on the train rows of one view and are scored on the test rows of each
    view, and the recalibrated threshold of a test view is chosen on the train rows *of that
    view* (labelled deployment-view data the probe itself never saw in that view). With
    ``eval_items`` the probes fit on all ``items`` and are scored on ``eval_items``;
    recalibration uses ``items`` in the test view.
    """
    adapter = as_adapter(model_or_sm, "probe")
    records = as_records(items)
    if not any(r.image is not None for r in records):
        raise SteerInputError("a transfer report needs items with images (the image+text view); none has one")
    chosen = default_layers(adapter) if layers is None else normalize_layers(layers, adapter.num_layers, "probe")

    def states_of(recs: Sequence[Record]) -> dict[str, dict[int, np.ndarray]]:
        return {
            v: collect_states(adapter, recs, layers=chosen, view=v, pool=pool, batch_size=batch_size) for v in VIEWS
        }

    y = np.array([r.label for r in records], dtype=np.int64)
    all_states = states_of(records)
    if eval_items is None:
        tr, te = split_indices(y, test_fraction, seed)
        pick = lambda st, idx: {v: {l: a[idx] for l, a in st[v].items()} for v in st}  # noqa: E731
        s_train, s_test, y_train, y_test = pick(all_states, tr), pick(all_states, te), y[tr], y[te]
        s_recal, y_recal = s_train, y_train
        mode = f"split {1 - test_fraction:.2f}/{test_fraction:.2f} (seed {seed})"
    else:
        ev = as_records(eval_items)
        s_train, y_train = all_states, y
        s_test, y_test = states_of(ev), np.array([r.label for r in ev], dtype=np.int64)
        s_recal, y_recal = all_states, y
        mode = "train on items, test on eval_items"
    rows = transfer_rows(s_train, y_train, s_test, y_test, s_recal, y_recal, objective=objective, C=C)
    return TransferReport(rows, int(len(y_train)), int(len(y_test)), int(len(y_recal)), mode)
