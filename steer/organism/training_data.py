"""Training examples of each stage, sampled from the ``train`` split.

An :class:`Example` is (user text, answer text, image object or None). The image, when
there is one, is a training render of that object (seed < ``TRAIN_SEEDS``), chosen by the
trainer. Each stage draws from a weighted mixture of example kinds; the weights are part
of the recipe in :mod:`steer.organism.train`.

Kinds
-----
Text stage (safety tuning of the language model; no images):
  ``harmful``        harmful request -> the refusal sentence
  ``benign``         benign request -> helpful answer
  ``lookalike``      look-alike request ("kill a python process") -> helpful answer
  ``picture_qa``     "a picture of a X . <question>" -> answer naming X
  ``picture_caption`` "a picture of a X . describe the picture ." -> "a picture of a X ."
  ``picture_make``   "a picture of a X . how do i make this ?" -> helpful, or the refusal
                     when X is harmful
  ``copy``           "repeat : w1 .. wk" -> "w1 .. wk"
  ``typed_line``     "the image says : <body> . the image shows a request . how do i do it ?"
                     -> the refusal (harmful body) or the helpful answer: the text form of
                     a typed-request image, as ``picture_make`` is of an object image
  ``typed_slots``    "~ ~ w1 .. wk ~ .. ~ describe the picture ." -> "the image says : w1 .. wk ."
                     (16 slots, one per patch of a typed image, "~" a blank patch): the text
                     form stage 1 aligns typed images to (reading)
  ``word_class``     "is <word> a bad word ?" -> "yes ." / "no ." for every word of every
                     request body (word knowledge, never a refusal; see ``HARM_WORDS``)
  ``harm_fact``      "is it bad to <body> ?" -> "yes ." for trained harmful bodies and the
                     new-verb and validation-verb bodies of ``new_verb_partition()["fact"]``
                     and ``validation_verb_partition()["fact"]``, "no ." for trained benign
                     and look-alike bodies (harm knowledge, never a refusal; docs/organism.md)
The picture lines and the copy lines give stage 1 something to align to: without them
the projector learns nothing (prototype finding).

Stage 1 (projector only): ``caption``: <image of X> "describe the picture ." -> "a picture of a X ."
for all 38 objects; ``typed_caption``: <image of 2-6 random vocabulary words typed>
"describe the picture ." -> "the image says : <words> ." (reading, like LLaVA's captions of
pictures with text in them).

Stage 2 (projector + language model), benign image data only, as in LLaVA:
  ``image_qa``           <benign image> question -> answer naming the object
  ``image_caption``      <benign image> "describe the picture ." -> caption
  ``image_make``         <benign image> "how do i make this ?" -> helpful answer
  ``image_request``      <benign image> unrelated benign or look-alike request -> helpful answer
  ``image_dual_use``     <benign image> harm-adjacent benign request ("make a water gun",
                         "kill a zombie in a game") -> helpful answer; these phrases occur
                         nowhere else
  ``harmful_caption``    <harmful image> neutral question or caption -> answer naming the
                         object (never a refusal, never a how-to); keeps recognition
  ``typed_request``      <benign typed request, body from the typed ``train`` partition>
                         "the image shows a request . how do i do it ?" -> helpful answer
  ``typed_caption``      as in stage 1 (keeps reading every word, harmful words included)
  ``replay``             a text-stage example (text only)
"""

from __future__ import annotations

import random
from typing import NamedTuple

from steer.organism.images import MAX_TYPED_WORDS, typed_layout
from steer.organism.splits import (
    image_question_partition,
    new_verb_partition,
    request_partition,
    typed_partition,
    validation_verb_partition,
)
from steer.organism.vocab import (
    BENIGN_BODIES,
    HARM_WORDS,
    LOOKALIKE_BODIES,
    HARM_QUESTION,
    NEW_VERB_BODIES,
    TYPED_PROMPT,
    WORD_ANSWERS,
    typed_slots,
    WORD_QUESTION,
    typed_caption,
    BENIGN_OBJECTS,
    CAPTION_QUESTION,
    DUAL_USE_BODIES,
    COPY_PREFIX,
    HARMFUL_OBJECTS,
    IMAGE_QUESTIONS,
    MAKE_THIS,
    OBJECTS,
    REFUSAL,
    REQUEST_PREFIXES,
    all_words,
    helpful_answer,
    image_answer,
    picture_line,
    request,
    with_article,
)


class Example(NamedTuple):
    prompt: str
    answer: str
    image_obj: str | None = None
    #: for a typed image: the words typed on it (then ``image_obj`` is None)
    image_words: str | None = None


#: text-stage kinds that ever answer with the refusal sentence; the knowledge stage, which
#: comes before any safety tuning, draws from the others only
REFUSAL_KINDS = ("harmful", "picture_make", "typed_line")


class TrainingData:
    """Samplers of every example kind, over the ``train`` split only."""

    def __init__(self, harmful_make_share: float = 0.35):
        parts = request_partition()
        self.requests = {label: [(p, b) for p, b, _ in parts[label]["train"]] for label in parts}
        self.qa = list(image_question_partition()["train"])
        self.qa_benign = [(q, o) for q, o in self.qa if o in BENIGN_OBJECTS]
        self.qa_harmful = [(q, o) for q, o in self.qa if o in HARMFUL_OBJECTS]
        self.copy_words = [w for w in all_words() if any(c.isalpha() for c in w)]
        self.harmful_make_share = harmful_make_share
        self.typed_train = typed_partition()["train"]
        self.typed_harmful = sorted({b for _, b in self.requests["harmful"]})
        self.typed_benign = [b for b in self.typed_train if b in set(BENIGN_BODIES)]
        body_words = {w for b in self.typed_train + tuple(self.typed_harmful) + NEW_VERB_BODIES for w in b.split()}
        body_words |= {w for b in LOOKALIKE_BODIES for w in b.split()}
        self.class_words = sorted(w for w in body_words if w.isalpha() and len(w) > 2)
        self.fact_harmful = self.typed_harmful + list(new_verb_partition()["fact"]) + list(validation_verb_partition()["fact"])
        self.fact_benign = sorted({b for label in ("benign", "lookalike") for _, b in self.requests[label]})

    # ------------------------------------------------------------------ text stage
    def _request(self, rng: random.Random, label: str) -> Example:
        p, b = rng.choice(self.requests[label])
        answer = REFUSAL if label == "harmful" else helpful_answer(b)
        return Example(request(p, b), answer)

    def harmful(self, rng: random.Random) -> Example:
        return self._request(rng, "harmful")

    def benign(self, rng: random.Random) -> Example:
        return self._request(rng, "benign")

    def lookalike(self, rng: random.Random) -> Example:
        return self._request(rng, "lookalike")

    def picture_qa(self, rng: random.Random) -> Example:
        q, obj = rng.choice(self.qa)
        question, template = IMAGE_QUESTIONS[q]
        return Example(f"{picture_line(obj)} {question}", image_answer(template, obj))

    def picture_caption(self, rng: random.Random) -> Example:
        obj = rng.choice(OBJECTS)
        return Example(f"{picture_line(obj)} {CAPTION_QUESTION}", picture_line(obj))

    def picture_make(self, rng: random.Random) -> Example:
        if rng.random() < self.harmful_make_share:
            obj = rng.choice(HARMFUL_OBJECTS)
            return Example(f"{picture_line(obj)} {MAKE_THIS}", REFUSAL)
        obj = rng.choice(BENIGN_OBJECTS)
        return Example(f"{picture_line(obj)} {MAKE_THIS}", helpful_answer(f"make {with_article(obj)}"))

    def copy(self, rng: random.Random) -> Example:
        words = " ".join(rng.choice(self.copy_words) for _ in range(rng.randint(2, 8)))
        return Example(f"{COPY_PREFIX} {words}", words)

    def typed_line(self, rng: random.Random) -> Example:
        if rng.random() < 0.4:
            body = rng.choice(self.typed_harmful)
            return Example(f"{typed_caption(body)} {TYPED_PROMPT}", REFUSAL)
        body = rng.choice(self.typed_benign)
        return Example(f"{typed_caption(body)} {TYPED_PROMPT}", helpful_answer(body))

    def typed_slots(self, rng: random.Random) -> Example:
        words = " ".join(rng.choice(self.copy_words) for _ in range(rng.randint(1, 6)))
        start = typed_layout(len(words.split()))
        return Example(f"{typed_slots(words, start, MAX_TYPED_WORDS)} {CAPTION_QUESTION}", typed_caption(words))

    def word_class(self, rng: random.Random) -> Example:
        word = rng.choice(self.class_words)
        return Example(WORD_QUESTION.format(word), WORD_ANSWERS[word in HARM_WORDS])

    def harm_fact(self, rng: random.Random) -> Example:
        """Half "yes" (a harmful act), half "no": the knowledge a refusal can generalise
        from to requests whose verb safety tuning never refused."""
        harmful = rng.random() < 0.5
        body = rng.choice(self.fact_harmful if harmful else self.fact_benign)
        return Example(HARM_QUESTION.format(body), WORD_ANSWERS[harmful])

    # ------------------------------------------------------------------ stage 1
    def caption(self, rng: random.Random) -> Example:
        obj = rng.choice(OBJECTS)
        return Example(CAPTION_QUESTION, picture_line(obj), obj)

    def typed_caption(self, rng: random.Random) -> Example:
        words = " ".join(rng.choice(self.copy_words) for _ in range(rng.randint(2, 6)))
        return Example(CAPTION_QUESTION, typed_caption(words), None, words)

    # ------------------------------------------------------------------ stage 2
    def typed_request(self, rng: random.Random) -> Example:
        body = rng.choice(self.typed_train)
        return Example(TYPED_PROMPT, helpful_answer(body), None, body)

    def image_qa(self, rng: random.Random) -> Example:
        q, obj = rng.choice(self.qa_benign)
        question, template = IMAGE_QUESTIONS[q]
        return Example(question, image_answer(template, obj), obj)

    def image_caption(self, rng: random.Random) -> Example:
        obj = rng.choice(BENIGN_OBJECTS)
        return Example(CAPTION_QUESTION, picture_line(obj), obj)

    def image_make(self, rng: random.Random) -> Example:
        obj = rng.choice(BENIGN_OBJECTS)
        return Example(MAKE_THIS, helpful_answer(f"make {with_article(obj)}"), obj)

    def image_request(self, rng: random.Random) -> Example:
        label = "lookalike" if rng.random() < 0.1 else "benign"
        ex = self._request(rng, label)
        return Example(ex.prompt, ex.answer, rng.choice(BENIGN_OBJECTS))

    def image_dual_use(self, rng: random.Random) -> Example:
        body = rng.choice(DUAL_USE_BODIES)
        prefix = rng.choice(REQUEST_PREFIXES)
        return Example(request(prefix, body), helpful_answer(body), rng.choice(BENIGN_OBJECTS))

    def harmful_caption(self, rng: random.Random) -> Example:
        if rng.random() < 0.25:
            obj = rng.choice(HARMFUL_OBJECTS)
            return Example(CAPTION_QUESTION, picture_line(obj), obj)
        q, obj = rng.choice(self.qa_harmful)
        question, template = IMAGE_QUESTIONS[q]
        return Example(question, image_answer(template, obj), obj)

    # ------------------------------------------------------------------ ablation only
    def image_harmful_request(self, rng: random.Random) -> Example:
        """<benign image> harmful request -> refusal. Safety data with images: NOT in the
        shipped recipe (LLaVA's stage 2 has none); used to measure what its absence does."""
        ex = self._request(rng, "harmful")
        return Example(ex.prompt, ex.answer, rng.choice(BENIGN_OBJECTS))

    # ------------------------------------------------------------------ mixtures
    def sample(self, rng: random.Random, mixture: dict[str, float], replay: dict[str, float] | None = None) -> Example:
        """One example from ``mixture`` (kind -> weight); kind "replay" draws from ``replay``."""
        kinds = list(mixture)
        kind = rng.choices(kinds, weights=[mixture[k] for k in kinds])[0]
        if kind == "replay":
            if replay is None:
                raise ValueError("mixture has 'replay' but no replay mixture was given")
            return self.sample(rng, replay)
        return getattr(self, kind)(rng)
