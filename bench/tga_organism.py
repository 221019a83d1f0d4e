"""TGA on the model organism: does aligning image states with caption states transfer
the text-only refusal to images?

Trains the organism's projector with ``calibration.tga.train_tga_projector`` in several
arms that differ only in the guide loss (a guide-weight-0 control trains with the LM
loss alone on the same data, steps and seed), evaluates every arm on the organism's
held-out ``eval`` cells (``steer.organism.cells.evaluate_organism``), and writes a
table, the loss curves (PNG) and the raw numbers (JSON). With ``--doc`` the results go
into ``docs/tga.md`` between the ``tga-results`` markers.

    python bench/tga_organism.py --doc docs/tga.md                 # shipped organism, CPU
    python bench/tga_organism.py --device cuda --doc docs/tga.md   # same on a GPU
    python bench/tga_organism.py --model DIR --steps 20 --limit 8  # smoke run

Training data: ``--renders`` training renders (seeds below the organism's
``TRAIN_SEEDS``; evaluation renders never occur) of each of the 38 objects, asked the
organism's captioning question ("describe the picture .") and answered with its caption
("a picture of a X ."), harmful objects included -- neutral captions, never refusals,
so no safety data on images. Typed-request images (the FigStep analog) are captioned too,
with what they say ("the image says : <body> ."): ``--typed-bodies`` benign bodies of the
typed ``train`` partition and every harmful training body that the ``image_harmful_typed``
cell never types, ``--typed-renders`` training renders each. Guide targets (``C``):

* ``templated``: the caption itself ("a picture of a bomb .");
* ``rich``: a concept-dense caption built from the organism's own answer templates
  ("a picture of a bomb . it is a bomb . i see a bomb . this is a bomb ."). Mean-pooled
  templated captions are nearly identical across concepts (cos 0.996-0.999 in
  ``../shared/organism-notes.md``), so the target barely names the concept.

Retrieved text ``R``: the caption of the nearest *other-concept* training render by
vision-tower features (``NearestCaptionRetriever(exclude_same_caption=True)``; without
that the nearest other image shows the same concept and R equals C). The prompt keeps
only ``<image> {question}``: the paper's "Retrieved Text:" words are not in the
organism's vocabulary, and evaluation prompts carry no retrieved text.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import platform
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from calibration.logit_lens import logit_lens  # noqa: E402
from calibration.retrieval import NearestCaptionRetriever  # noqa: E402
from calibration.tga import TGAExample, plot_loss_curves, train_tga_projector  # noqa: E402
from steer.model import SteeredModel  # noqa: E402

MARK_START = "<!-- tga-results:start -->"
MARK_END = "<!-- tga-results:end -->"

#: (label, result key) rows of the table; strict / onset / complete for refusals
ROWS = [
    ("text-only harmful refused", "text_harmful_refused"),
    ("text-only benign answered", "text_benign_answered"),
    ("look-alike over-refusal", "lookalike_over_refusal"),
    ("harmful text + unrelated image refused", "image_harmful_text_refused"),
    ("benign text + unrelated image answered", "image_benign_text_answered"),
    ('harmful-object image + "make this" refused', "image_harmful_object_refused"),
    ('benign-object image + "make this" answered', "image_benign_make_answered"),
    ("benign image QA accuracy", "image_benign_qa_accuracy"),
    ("harmful-object caption accuracy (recognition)", "image_harmful_caption_accuracy"),
    ("typed harmful request refused", "image_harmful_typed_refused"),
    ("typed benign request answered as taught (reading)", "image_benign_typed_answer_exact"),
]


def tga_data(renders: int, caption_kind: str, typed_bodies: int = 48, typed_renders: int = 2) -> list[TGAExample]:
    import random

    from steer.organism.images import render_object, render_typed
    from steer.organism.splits import TRAIN_SEEDS, typed_partition, untyped_harmful_bodies
    from steer.organism.vocab import CAPTION_QUESTION, IMAGE_QUESTIONS, OBJECTS, image_answer, picture_line, typed_caption

    if renders > TRAIN_SEEDS:
        raise SystemExit(f"--renders must be <= {TRAIN_SEEDS} (training renders only)")
    # (draw, guide target, answer, id) per training image
    images = []
    for obj in OBJECTS:
        caption = picture_line(obj)
        target = caption
        if caption_kind == "rich":
            target = f"{caption} " + " ".join(image_answer(IMAGE_QUESTIONS[q][1], obj) for q in (0, 1, 5))
        images.append((lambda s, o=obj: render_object(o, s), target, caption, obj))
    # typed requests: what the image says is the caption (harmful bodies included, as
    # harmful objects are: a neutral caption, never a refusal); no body the eval cells type
    benign = random.Random("tga-typed").sample(typed_partition()["train"], typed_bodies)
    for body in benign + list(untyped_harmful_bodies()):
        images.append((lambda s, b=body: render_typed(b, s), typed_caption(body), typed_caption(body), f"typed:{body.replace(' ', '-')}"))
    rows = []
    for draw, target, answer, name in images:
        for seed in range(renders if not name.startswith("typed:") else typed_renders):
            rows.append(
                TGAExample(
                    image=draw(seed),
                    caption=target,
                    question=CAPTION_QUESTION,
                    answer=answer,
                    id=f"{name}#{seed}",
                    where=f"{name} render {seed}",
                )
            )
    return rows


def parse_arms(spec: str) -> list[dict]:
    """'control,tga:0.3,tga-rich:0.3' -> arm dicts."""
    arms = []
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        if part == "baseline":
            arms.append({"name": "baseline", "train": False})
            continue
        if part == "control":
            arms.append({"name": "control (guide 0)", "train": True, "guide_weight": 0.0, "captions": "templated"})
            continue
        kind, _, weight = part.partition(":")
        if kind not in ("tga", "tga-rich"):
            raise SystemExit(f"unknown arm {part!r}: use baseline, control, tga:W, tga-rich:W")
        w = float(weight or 0.3)
        captions = "rich" if kind == "tga-rich" else "templated"
        arms.append({"name": f"TGA {captions} captions, guide {w:g}", "train": True, "guide_weight": w, "captions": captions})
    return arms


def fmt(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def cell(r: dict, key: str) -> str:
    if f"{key}_strict" in r:
        return " / ".join(fmt(r.get(f"{key}_{k}")) for k in ("strict", "onset", "complete"))
    return fmt(r.get(key))


def markdown(results: list[dict], args, command: str, lens: dict, timings: dict) -> str:
    names = [r["arm"] for r in results]
    lines = [
        MARK_START,
        "",
        f"Command: `{command}`",
        "",
        f"Organism: `{args.model or 'steer/organism/weights'}` (model.safetensors sha256 "
        f"`{args.weights_sha256[:16]}`); {args.steps} steps, batch {args.batch_size}, "
        f"lr {args.lr:g}, layers {args.layers}, {args.renders} training renders per object "
        f"({args.renders * 38} rows), seed {args.seed}; evaluation: the `eval` split"
        + (f", at most {args.limit} items per cell" if args.limit else "")
        + f". Torch {torch.__version__}, transformers {_tf_version()}, {platform.machine()}, device {args.device}.",
        "",
        "Refusal cells: strict / onset / complete (see `steer/organism/cells.py`).",
        "",
        "| cell | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for label, key in ROWS:
        lines.append(f"| {label} | " + " | ".join(cell(r["eval"], key) for r in results) + " |")
    lines.append(
        "| final mean cos(I_l, C_l) over the band | "
        + " | ".join(fmt(r.get("final", {}).get("cos_ic")) for r in results)
        + " |"
    )
    lines.append("| training time (s) | " + " | ".join(fmt(timings.get(r["arm"])) if r["arm"] in timings else "-" for r in results) + " |")
    lines += [
        "",
        f"Logit lens on the organism ({lens['n_prompts']} harmful probe prompts, tokens "
        f"{', '.join(lens['tokens'])}, top-{lens['top_k']}): state hit rate by layer "
        + ", ".join(f"{v:.2f}" for v in lens["state_hits"])
        + "; per-layer change "
        + ", ".join(f"{v:.2f}" for v in lens["delta_hits"])
        + f"; suggested band {lens['band']} ({lens['band_source']}).",
        "",
        f"![TGA loss curves]({Path(args.plot).name})",
        "",
        MARK_END,
    ]
    return "\n".join(lines)


def _tf_version() -> str:
    import transformers

    return transformers.__version__


def write_doc(doc: Path, block: str) -> None:
    from steer.atomic import atomic_write_text

    text = doc.read_text() if doc.exists() else "# TGA\n\n" + MARK_START + "\n" + MARK_END + "\n"
    if MARK_START in text and MARK_END in text:
        pre, rest = text.split(MARK_START, 1)
        _, post = rest.split(MARK_END, 1)
        text = pre + block + post
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    atomic_write_text(doc, text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="organism folder (default: the shipped weights)")
    ap.add_argument("--arms", default="baseline,control,tga:0.3,tga-rich:0.3,tga:1")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--layers", default="1-3")
    ap.add_argument("--renders", type=int, default=8)
    ap.add_argument("--typed-bodies", type=int, default=48, help="benign typed-request bodies captioned (0: none)")
    ap.add_argument("--typed-renders", type=int, default=2, help="training renders per typed body")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="max items per eval cell")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default="runs/tga_organism.json")
    ap.add_argument("--plot", default="docs/tga_loss.png")
    ap.add_argument("--doc", default=None, help="markdown file to put the results table into (docs/tga.md)")
    ap.add_argument("--artifacts", default=None, help="folder to keep each arm's projector artifact")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is fastest on a busy machine)")
    ap.add_argument(
        "--train-organism",
        default=None,
        metavar="DIR",
        help="train an organism from the current recipe (steer.organism.train, full schedule) into DIR first "
        "and use it (for when no shipped weights exist)",
    )
    args = ap.parse_args()
    if args.train_organism:
        from steer.organism import train_organism

        if not (Path(args.train_organism) / "config.json").is_file():
            t0 = time.time()
            train_organism(args.train_organism, schedule="full", device=args.device, progress=False)
            print(f"trained the organism in {time.time() - t0:.0f}s", flush=True)
        args.model = args.train_organism
    command = "python bench/tga_organism.py " + " ".join(sys.argv[1:])

    from steer.organism import load_organism
    from steer.organism.cells import evaluate_organism, hf_greedy_generate
    from steer.organism.splits import split_prompts

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    base_model, processor = load_organism(args.model)
    from steer.organism import ORGANISM_DIR

    weights = Path(args.model or ORGANISM_DIR) / "model.safetensors"
    args.weights_sha256 = hashlib.sha256(weights.read_bytes()).hexdigest()
    base_model.to(args.device)
    base = SteeredModel(base_model, processor)
    lo, _, hi = args.layers.partition("-")
    layers = list(range(int(lo), int(hi or lo) + 1))

    # top-1: the organism has 209 words, so the top-10 would be 5% of its vocabulary
    lens = logit_lens(
        base, split_prompts("probe", "harmful"), top_k=1, benign_prompts=split_prompts("probe", "benign")
    ).to_dict()
    print(f"logit lens: band {lens['band']} ({lens['band_source']}); delta hits {lens['delta_hits']}", flush=True)

    results, histories, timings = [], {}, {}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        import transformers

        payload = {"command": command, "args": vars(args), "lens": lens, "results": results, "timings": timings,
                   "histories": histories, "torch": torch.__version__, "transformers": transformers.__version__}
        out.write_text(json.dumps(payload, indent=1))

    data_cache: dict[str, list[TGAExample]] = {}
    retrieved_cache: dict[str, list[int]] = {}
    for arm in parse_arms(args.arms):
        name = arm["name"]
        sm = base
        final = {}
        if arm["train"]:
            kind = arm["captions"]
            if kind not in data_cache:
                data_cache[kind] = tga_data(args.renders, kind, args.typed_bodies, args.typed_renders)
            if "neighbours" not in retrieved_cache:
                # retrieval by image features only: the same neighbours for every caption kind
                templated = tga_data(args.renders, "templated", args.typed_bodies, args.typed_renders)
                retriever = NearestCaptionRetriever(templated, adapter=base.adapter, exclude_same_caption=True)
                retrieved_cache["neighbours"] = [idx[0] for idx in retriever.neighbours(templated)]
                plain = NearestCaptionRetriever(templated, feature_fn=retriever.feature_fn)
                same = sum(
                    templated[idx[0]].caption == ex.caption for ex, idx in zip(templated, plain.neighbours(templated))
                )
                print(
                    f"retrieval: excluding only the image itself, {same}/{len(templated)} nearest renders show the same "
                    "object; training uses the nearest other-object caption",
                    flush=True,
                )
            data = data_cache[kind]
            rows = [
                TGAExample(**{**ex.__dict__, "retrieved": data[j].caption})
                for ex, j in zip(data, retrieved_cache["neighbours"])
            ]
            def report(rec: dict, name: str = name) -> None:
                if rec["step"] % 100 == 0 or rec["step"] == args.steps - 1:
                    print(f"[{name}] step {rec['step']}: lm {rec['lm']:.4f} guide {rec['guide']:.4f} "
                          f"cos(I,C) {rec['cos_ic']:.3f} cos(R,C) {rec['cos_rc']:.3f}", flush=True)

            t0 = time.time()
            res = train_tga_projector(
                base,
                rows,
                layers=layers,
                retriever="column",
                steps=args.steps,
                lr=args.lr,
                guide_weight=arm["guide_weight"],
                batch_size=args.batch_size,
                prompt_format="<image> {question}",
                progress=sys.stderr.isatty(),
                callback=report,
                seed=args.seed,
            )
            timings[name] = time.time() - t0
            histories[name] = res.history
            final = res.metadata.get("final", {})
            if args.artifacts:
                Path(args.artifacts).mkdir(parents=True, exist_ok=True)
                slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
                res.save(Path(args.artifacts) / f"{slug}.safetensors")
            sm = SteeredModel(copy.deepcopy(base_model), processor)
            sm.load_projector(res.artifact)
        t0 = time.time()
        ev = evaluate_organism(hf_greedy_generate(sm.model, processor), limit=args.limit)
        print(f"[{name}] eval {time.time() - t0:.0f}s: " + json.dumps({k: round(v, 3) for k, v in ev.items() if isinstance(v, float)}), flush=True)
        results.append({"arm": name, "config": arm, "eval": ev, "final": final})
        save()  # after every arm: a run cut short keeps what it measured

    if histories:
        plot_loss_curves(histories, args.plot, title=f"TGA on the organism: layers {args.layers}, lr {args.lr:g}")
    block = markdown(results, args, command, lens, timings)
    print(block)
    if args.doc:
        write_doc(Path(args.doc), block)
        print(f"wrote {args.doc}")


if __name__ == "__main__":
    main()
