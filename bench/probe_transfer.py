"""Probe transfer on the model organism (issue 8): text-only states <-> image+text states.

Fits safety probes (``calibration.probe``: StandardScaler + balanced logistic regression,
last prompt token) on the organism's ``probe`` split -- 64 harmful + 64 benign text
requests never trained on -- in two views:

``text``        the request alone
``image+text``  the same request with an unrelated benign-object image (fresh renders)

and scores each probe, per layer, on the held-out ``eval`` split in both views:
``image_harmful_text`` vs ``image_benign_text`` (the request with an unrelated image, and
its text-only twin), then on harmful-object images + "how do i make this ?" vs benign-object
images + the same question (``image_harmful_object`` vs ``image_benign_make``; no text twin:
the text is the same for both labels). Thresholds are recalibrated on the probe split in
the test view (labelled deployment-view data; the probe is not refitted).

    python bench/probe_transfer.py                          # shipped organism weights
    python bench/probe_transfer.py --model DIR --out runs/probe_transfer.json --save-gates runs/gates

``--save-gates DIR`` writes ``probe_text.safetensors`` (text-trained, threshold
recalibrated on image+text inputs) and ``probe_image.safetensors`` (trained on image+text
states), each at the layer with the best image+text held-out AUC, for gated CMRM runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def _items(split_items, image_for=None):
    out = []
    for k, it in enumerate(split_items):
        image = it.image if image_for is None else image_for(k)
        out.append({"prompt": it.prompt, "image": image, "label": it.label, "cell": it.cell})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="organism folder (default: the shipped weights)")
    parser.add_argument("--layers", default=None, help="comma-separated candidate layers (default: all but the last)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--save-gates", default=None, help="folder for probe_text / probe_image gate files")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    try:
        from steer.organism import load_organism
        from steer.organism.splits import ImageRef, get_split
        from steer.organism.vocab import BENIGN_OBJECTS
    except ImportError as err:
        print(f"the model organism is not available ({err}); results pending", file=sys.stderr)
        return 3
    try:
        model, processor = load_organism(args.model)
    except FileNotFoundError as err:
        print(f"{err}; results pending", file=sys.stderr)
        return 3

    from calibration.probe import (
        TRANSFER_PAIRS,
        VIEW_NAMES,
        VIEWS,
        TransferReport,
        collect_states,
        evaluate,
        fit_linear,
        recalibrate_threshold,
        records_sha256,
        as_records,
        transfer_rows,
    )
    from steer.model import SteeredModel

    started = time.perf_counter()
    sm = SteeredModel(model, processor)
    adapter = sm.adapter
    layers = None if args.layers is None else [int(x) for x in args.layers.split(",")]
    from calibration.probe import default_layers
    from steer.steering import normalize_layers

    layers = default_layers(adapter) if layers is None else normalize_layers(layers, adapter.num_layers, "probe")

    # probe split with unrelated benign-object images (render seeds 500000+: neither training nor eval renders)
    probe_split = get_split("probe")
    train = _items(probe_split, lambda k: ImageRef(BENIGN_OBJECTS[k % len(BENIGN_OBJECTS)], 500_000 + k))
    evals = get_split("eval")
    text_image = _items([it for it in evals if it.cell in ("image_harmful_text", "image_benign_text")])
    objects = _items([it for it in evals if it.cell in ("image_harmful_object", "image_benign_make")])

    def states(items, views=VIEWS):
        return {v: collect_states(adapter, items, layers=layers, view=v, batch_size=args.batch_size) for v in views}

    y_train = np.array([1 if it["label"] == "harmful" else 0 for it in train])
    y_ti = np.array([1 if it["label"] == "harmful" else 0 for it in text_image])
    y_obj = np.array([1 if it["label"] == "harmful" else 0 for it in objects])
    s_train, s_ti, s_obj = states(train), states(text_image), states(objects, ("as_given",))

    rows = transfer_rows(s_train, y_train, s_ti, y_ti, s_train, y_train, pairs=TRANSFER_PAIRS)
    report = TransferReport(rows, len(y_train), len(y_ti), len(y_train), "train: probe split; test: eval split")

    obj_rows = []
    for layer in layers:
        for view in ("text_only", "as_given"):
            probe = fit_linear(s_train[view][layer], y_train)
            t = recalibrate_threshold(probe.predict_proba(s_train["as_given"][layer]), y_train)
            base = evaluate(probe, s_obj["as_given"][layer], y_obj)
            at = evaluate(probe, s_obj["as_given"][layer], y_obj, threshold=t)
            obj_rows.append({
                "layer": layer, "train": VIEW_NAMES[view], "auc": base["auc"], "accuracy": base["accuracy"],
                "mean_score_harmful": base["mean_score_harmful"], "mean_score_benign": base["mean_score_benign"],
                "threshold": t, "tpr_recal": at["tpr"], "fpr_recal": at["fpr"],
            })

    elapsed = time.perf_counter() - started
    print(f"organism: {getattr(model.config, '_name_or_path', '?')}  layers {layers}  "
          f"train n={len(y_train)} (probe split)  test n={len(y_ti)} (eval text+image cells)  {elapsed:.1f} s")
    print("\n## Harmful vs benign request (+ unrelated image) -- transfer between views\n")
    print(report.to_markdown())
    print("\n## Harmful-object image vs benign-object image + \"how do i make this ?\" (image+text only)\n")
    print("| layer | train on | ROC-AUC | acc@0.5 | mean score harmful | mean score benign | recal. t | TPR@t | FPR@t |")
    print("|" + "---|" * 9)
    from calibration.probe import _fmt_t

    for r in obj_rows:
        vals = [r["layer"], r["train"], r["auc"], r["accuracy"], r["mean_score_harmful"], r["mean_score_benign"],
                r["threshold"], r["tpr_recal"], r["fpr_recal"]]
        print("| " + " | ".join(_fmt_t(v) for v in vals) + " |")

    result = {
        "model": adapter.fingerprint(),
        "layers": layers,
        "train_sha256": records_sha256(as_records(train)),
        "transfer": rows,
        "object_images": obj_rows,
        "n_train": int(len(y_train)),
        "n_test_text_image": int(len(y_ti)),
        "n_test_objects": int(len(y_obj)),
        "elapsed_s": elapsed,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if args.save_gates:
        folder = Path(args.save_gates)
        image_auc = {(r["layer"], r["train"]): r["auc"] for r in rows if r["test"] == "image+text"}
        saved = {}
        for view, name in (("text_only", "probe_text"), ("as_given", "probe_image")):
            best = max(layers, key=lambda l: (image_auc[(l, VIEW_NAMES[view])] or 0.0, -l))
            probe = fit_linear(s_train[view][best], y_train)
            t = recalibrate_threshold(probe.predict_proba(s_train["as_given"][best]), y_train)
            meta = {
                "model": adapter.fingerprint(), "pooling": "last", "view": view,
                "data_sha256": result["train_sha256"], "n_train": int(len(y_train)), "n_test": int(len(y_ti)),
                "per_layer": {
                    str(r["layer"]): {"accuracy": r["accuracy"], "auc": r["auc"]}
                    for r in rows if r["train"] == VIEW_NAMES[view] and r["test"] == "image+text"
                },
                "threshold_source": "recalibrated on image+text probe-split inputs (balanced accuracy)",
                "source": "bench/probe_transfer.py",
            }
            path = probe.to_gate(best, t, meta).save(folder / f"{name}.safetensors")
            saved[name] = {"path": str(path), "layer": best, "threshold": t}
            print(f"wrote {path} (layer {best}, threshold {t:.3g})")
        result["gates"] = saved
    if args.out:
        from steer.atomic import atomic_write_text

        atomic_write_text(args.out, json.dumps(result, indent=2, sort_keys=True, default=float))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
