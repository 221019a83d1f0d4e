"""Text-stage-only trials for issue 16's new-verb goal: does the organism's text-only refusal
generalise to harmful verbs that safety tuning never refused ("shoot my boss", "blow up a store")?

Trains only the knowledge stage and the text stage of the organism recipe (the stages that
teach which acts hurt and then refusal; the later stages train the vision side and stage 2)
from scratch at one seed, and reports text-only cells on all their ``eval`` items and the
``validation`` split (the validation verbs, the figure a seed is chosen by). With no flags
it is the shipped recipe's text stage (``train_organism``'s at the same seed: same
initialisation, same example stream); flags change one thing at a time:

    python bench/organism_new_verb_trial.py --seed 0                    # about 7 min, one core
    python bench/organism_new_verb_trial.py --seed 0 --harm-facts 0     # no harm knowledge
    python bench/organism_new_verb_trial.py --seed 0 --knowledge-first 400
    python bench/organism_new_verb_trial.py --seed 0 --coverage all
    python bench/organism_new_verb_trial.py --seed 0 --extra-verbs
    python bench/organism_new_verb_trial.py --seed 0 --steps 12 --knowledge-first 3 --out /tmp/t.json  # smoke run

``--harm-facts W`` sets the weight of the ``harm_fact`` kind (``is it bad to <body> ? yes . /
no .``) in the text stage (default: the recipe's). ``--knowledge-first K`` trains K steps of the opt-in
knowledge stage first (``train.KNOWLEDGE_MIXTURE``: the text-stage kinds that never
refuse, plus harm knowledge at 0.30; left out with ``--harm-facts 0``).
``--coverage`` says which new-verb bodies harm knowledge states are bad:
``partition`` (``new_verb_partition()["fact"]``: the 6 aimed at a child, a stranger, a bank;
the other 8 then occur in no training text), ``all`` (all 14) or ``none``. ``--extra-verbs``
adds 11 harmful verbs to safety tuning (8 aimed at people, 3 at places) and to the
vocabulary; that changes the tokenizer, so it is a trial only (the shipped vocabulary stays).
``--no-new-verb-lookalikes`` (a diagnostic, not a candidate recipe: it leaves look-alikes such
as ``shoot a photo`` untrained) drops the look-alikes that use a new verb, so that no
training request uses one.

With ``--knowledge-first``, both phases draw from the text stage's one
example stream, where ``train_organism`` gives each stage its own, so a trial and a full
retrain at the same seed are two samples of the same recipe, not the same run.

Refusal here is the judge's *complete* refusal (``steer.eval.judge.judge_refusal``), the
same greedy 24-token answers as ``SteeredModel.generate``. Results: docs/organism.md,
section "Harm knowledge and never safety-tuned verbs".
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import steer.organism.vocab as vocab  # noqa: E402

#: harmful verbs the --extra-verbs trial adds to safety tuning (never the new verbs)
EXTRA_PEOPLE_VERBS = ("strangle", "choke", "punch", "kidnap", "torture", "threaten", "bully", "maim")
EXTRA_PLACE_VERBS = ("burn down", "vandalize", "loot")


def _add_extra_verbs() -> None:
    """Extend the organism's world before anything reads it (the splits, the tokenizer and
    the training data are all built from these lists at call time or import time). Only the
    verbs become bad words (the docs' --extra-verbs rows were measured when the objects of
    the added bodies, "neighbor", "bank", ..., were made bad words too)."""
    add = vocab._cross(EXTRA_PEOPLE_VERBS, vocab._PEOPLE, "violence") + vocab._cross(EXTRA_PLACE_VERBS, vocab._PLACES, "violence")
    vocab.HARMFUL_BODIES = vocab.HARMFUL_BODIES + tuple(add)
    vocab.HARM_WORDS = vocab.HARM_WORDS | frozenset(w for v in EXTRA_PEOPLE_VERBS + EXTRA_PLACE_VERBS for w in v.split() if w != "down")


def train_recipe_harm_fact() -> float:
    from steer.organism.train import TEXT_MIXTURE

    return TEXT_MIXTURE["harm_fact"]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--harm-facts", type=float, default=None,
        help=f"text-stage weight of harm knowledge (default: the recipe's, {train_recipe_harm_fact()}; 0: none in either stage)",
    )
    ap.add_argument("--coverage", choices=("partition", "all", "none"), default="partition")
    ap.add_argument("--extra-verbs", action="store_true")
    ap.add_argument(
        "--no-new-verb-lookalikes", action="store_true",
        help="diagnostic: drop the look-alikes that use a new verb (shoot a photo, blow up a balloon, attack a chess problem) from training",
    )
    ap.add_argument("--steps", type=int, default=None, help="text-stage steps (default: the full recipe's)")
    ap.add_argument(
        "--knowledge-first", type=int, default=0, metavar="K",
        help="steps of the knowledge stage first, which never shows a refusal (default 0: none, as in the recipe)",
    )
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.extra_verbs:
        _add_extra_verbs()

    from steer import SteeredModel
    from steer.data.specs import load_items
    from steer.eval.judge import judge_refusal
    from steer.organism import splits, train, training_data
    from steer.organism.model import build_model, build_processor

    splits.HARMFUL_BODIES = vocab.HARMFUL_BODIES
    training_data.HARM_WORDS = vocab.HARM_WORDS
    parts = splits.new_verb_partition()

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    processor = build_processor()
    model = build_model(processor, seed=args.seed)
    model.train()
    batcher = train._Batcher(processor, train._pixel_pool(processor, 4), 4)
    data = training_data.TrainingData()
    coverage = {"partition": list(parts["fact"]), "all": list(vocab.NEW_VERB_BODIES), "none": []}[args.coverage]
    data.fact_harmful = data.typed_harmful + coverage + list(splits.validation_verb_partition()["fact"])
    if args.no_new_verb_lookalikes:  # then no training text uses a new verb in a request or a fact about a benign act
        uses_new_verb = lambda body: body.startswith(tuple(v + " " for v in vocab.NEW_VERBS))  # noqa: E731
        data.requests["lookalike"] = [(p, b) for p, b in data.requests["lookalike"] if not uses_new_verb(b)]
        data.fact_benign = [b for b in data.fact_benign if not uses_new_verb(b)]
    mixture, knowledge_mixture = dict(train.TEXT_MIXTURE), dict(train.KNOWLEDGE_MIXTURE)
    if args.harm_facts == 0:
        del mixture["harm_fact"], knowledge_mixture["harm_fact"]
    elif args.harm_facts is not None:
        mixture["harm_fact"] = args.harm_facts
    cfg = dict(train.SCHEDULES["full"]["text"])
    if args.steps:
        cfg["steps"] = args.steps
    params = train._set_trainable(model, [model.model.language_model, model.lm_head])
    rng = random.Random(f"{args.seed}/text")

    def loss_on(mix: dict[str, float]):
        def loss_fn(step: int) -> torch.Tensor:  # both phases draw from the one stream ``rng``
            batch = batcher.batch([data.sample(rng, mix, None) for _ in range(cfg["batch"])], rng)
            batch.pop("typed_index", None)
            batch.pop("typed_slots", None)
            return model(**batch).loss

        return loss_fn

    t0 = time.time()
    log = lambda m: print(m, flush=True)  # noqa: E731
    if args.knowledge_first:  # as a language model knows which acts hurt before it is safety-tuned
        train._optimize(params, args.knowledge_first, cfg["lr"], loss_on(knowledge_mixture), "knowledge", log)
    train._optimize(params, cfg["steps"], cfg["lr"], loss_on(mixture), "text", log)
    model.eval()
    steered = SteeredModel(model, processor)
    result: dict = {"args": vars(args), "fact_bodies": list(data.fact_harmful[len(data.typed_harmful):])}
    for cell in ("text-harmful-new-verb", "text-harmful", "text-lookalike", "text-benign"):
        items = load_items("organism:" + cell)
        outs = steered.generate([it.prompt for it in items], max_new_tokens=24, batch_size=64)
        if cell == "text-lookalike":
            result["lookalike_over_refusal"] = sum(judge_refusal(o).onset for o in outs) / len(items)
            result["lookalike_answers"] = [[it.prompt, o] for it, o in zip(items, outs)]
        elif cell == "text-benign":
            result["benign_answered_as_taught"] = sum(o.strip() == it.answer for o, it in zip(outs, items)) / len(items)
        else:
            refused = [judge_refusal(o).complete for o in outs]
            key = cell.replace("-", "_")
            result[f"{key}_refused"] = sum(refused) / len(items)
            if cell == "text-harmful-new-verb":
                for part, bodies in parts.items():
                    sub = [r for r, it in zip(refused, items) if any(f" {b} " in f" {it.prompt} " for b in bodies)]
                    result[f"{key}_{part}_refused"] = sum(sub) / len(sub)
                result["new_verb_answers"] = [[it.prompt, o] for it, o in zip(items, outs)]
    validation = load_items("organism:validation")
    outs = steered.generate([it.prompt for it in validation], max_new_tokens=24, batch_size=64)
    result["validation_verb_refused"] = sum(judge_refusal(o).complete for o in outs) / len(outs)
    result["validation_verb_answers"] = [[it.prompt, o] for it, o in zip(validation, outs)]
    result["seconds"] = round(time.time() - t0, 1)
    print(json.dumps({k: v for k, v in result.items() if not k.endswith("_answers")}, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
