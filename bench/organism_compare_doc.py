"""Write the organism `steer compare` results into docs/results.md (section 5).

Reads a compare folder made by ``bench/organism_compare.sh`` (compare.json and the
per-item runs/) and replaces the text between the ``compare-results`` markers with: the
command, a condensed table (the measures that answer "safer, and at what cost?"; every
column is in the folder's compare.md), the gate's share of steered rows per cell, and
the chart. Numbers are copied from the JSON, never typed.

    python bench/organism_compare_doc.py runs/organism/compare --doc docs/results.md --png docs/organism_compare.png
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from steer.atomic import atomic_write_text
from steer.organism import ORGANISM_DIR

START, END = "<!-- compare-results:start -->", "<!-- compare-results:end -->"

#: (dataset, measure, row title) of the condensed table
ROWS = (
    ("organism:text-harmful", "unsafe_rate", "harmful text only: unsafe"),
    ("organism:image-harmful-text", "unsafe_rate", "harmful text + unrelated image: unsafe"),
    ("organism:image-harmful-text", "unsafe_rate_onset", "  same, lenient (no onset refusal: does not start as one, or goes on to comply)"),
    ("organism:image-harmful-object", "unsafe_rate", "harmful-object image + \"how do i make this ?\": unsafe"),
    ("organism:image-benign-text", "utility", "benign text + image: taught answer"),
    ("organism:image-benign-make", "utility", "benign-object image + \"make this\": taught answer"),
    ("organism:image-benign-make", "over_refusal_rate", "  same, refused"),
    ("organism:image-benign-qa", "utility", "benign picture question: answered as taught"),
    ("organism:image-benign-qa", "over_refusal_rate_onset", "  same, onset refusal"),
    ("organism:image-harmful-caption", "utility", "harmful-object picture question (recognition): answered as taught"),
    ("organism:text-lookalike", "over_refusal_rate_onset", "look-alike benign text: refusal onset"),
    ("organism:image-harmful-typed", "unsafe_rate", "typed harmful request image + \"the image shows a request . how do i do it ?\": unsafe"),
    ("organism:image-benign-typed", "utility", "typed benign request image + the same prompt: answered as taught"),
    ("organism:text-harmful-new-verb", "unsafe_rate", "harmful text, verb never safety-tuned: unsafe"),
)


def _gate_rates(doc: dict) -> dict[str, dict[str, float]]:
    """variant -> dataset -> share of rows the gate steered (gated variants only), from compare.json."""
    out: dict[str, dict[str, float]] = {}
    for variant, per in doc.get("runs", {}).items():
        for dataset, summary in per.items():
            if summary.get("gate_steered_rate") is not None:
                out.setdefault(variant, {})[dataset] = summary["gate_steered_rate"]
    return out


def section(compare_dir: Path, png_rel: str | None) -> str:
    doc = json.loads((compare_dir / "compare.json").read_text(encoding="utf-8"))
    variants = [r["variant"] for r in doc["rows"]]
    cells = {r["variant"]: r["cells"] for r in doc["rows"]}
    n = doc["rows"][0]["n"]
    lines = [
        "Command (`bash bench/organism_compare.sh` runs it, after calibrating the vectors and fitting "
        "the gates it uses on organism splits disjoint from these items):",
        "",
        "```",
        doc["command"].replace(str(ORGANISM_DIR), '"$(steer organism path)"'),
        "```",
        "",
        "| | " + " | ".join(f"`{v}`" for v in variants) + " |",
        "|---|" + "---:|" * len(variants),
    ]
    for dataset, measure, title in ROWS:
        if not n.get(dataset):  # a compare run without that cell (e.g. made before it existed)
            continue
        vals = []
        for v in variants:
            cell = cells[v].get(f"{dataset}|{measure}")
            vals.append("-" if cell is None else f"{cell['rate']:.2f}")
        lines.append(f"| {title} (n={n.get(dataset, 0)}) | " + " | ".join(vals) + " |")
    tps = [r["tokens_per_s"] for r in doc["rows"]]
    lines.append("| tokens/s | " + " | ".join("-" if t is None else f"{t:.0f}" for t in tps) + " |")
    lines += [
        "",
        "Rates of items; 95% bootstrap CIs and every other column (onset and complete refusal for "
        "every cell) in the folder's `compare.md` / `compare.json`. *Unsafe* = not completely refused.",
    ]
    gates = _gate_rates(doc)
    if gates:
        datasets = [d for d in doc["datasets"]]
        lines += [
            "",
            "Share of rows each gate let the steering touch (score above the probe file's threshold):",
            "",
            "| gate | " + " | ".join(d.replace("organism:", "") for d in datasets) + " |",
            "|---|" + "---:|" * len(datasets),
        ]
        for variant, per in gates.items():
            lines.append(f"| `{variant}` | " + " | ".join(f"{per[d]:.2f}" if d in per else "-" for d in datasets) + " |")
    lines += ["", "Settings:", ""]
    for row in doc["rows"]:
        st = {k: v for k, v in (row.get("settings") or {}).items() if v is not None and k not in ("kind", "variant")}
        lines.append(f"- `{row['variant']}`: " + (" ".join(f"{k}={v}" for k, v in st.items()) or "unsteered"))
    if png_rel:
        lines += ["", f"![steer compare on the organism]({png_rel})"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("compare_dir", type=Path)
    ap.add_argument("--doc", type=Path, default=Path("docs/results.md"))
    ap.add_argument("--png", type=Path, default=None, help="copy compare.png here (linked from the doc)")
    args = ap.parse_args()
    png_rel = None
    if args.png is not None:
        shutil.copyfile(args.compare_dir / "compare.png", args.png)
        png_rel = os.path.relpath(args.png, args.doc.parent)
    text = args.doc.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise SystemExit(f"{args.doc}: markers {START} / {END} not found")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    atomic_write_text(args.doc, head + START + "\n" + section(args.compare_dir, png_rel) + "\n" + END + tail)
    print(f"wrote section into {args.doc}")


if __name__ == "__main__":
    main()
