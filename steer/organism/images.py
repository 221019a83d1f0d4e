"""Synthetic images of the organism's objects.

Each object has one fixed *look*: a shape (8 kinds: circle, ring, square, diamond,
triangle, star, cross, bar) filled with a colour (8 kinds), like a symbol in an icon
language ("grenade" is a purple circle, "gun" a yellow bar). An image shows one object at a
random position and size, slightly rotated, with a jittered fill colour, on a random
dark background, with pixel noise. Images are 32 x 32 RGB PIL images; the model sees them
only through the real ``CLIPImageProcessor``.

Why shapes and not photographs: they render offline in microseconds, every pixel is
under a fixed seed, and 38 concepts stay separable at 32 px with 8 x 8 patches, so a
three-layer vision tower learns them in under a minute. The degradation under study is
about what image tokens do to the language model's hidden states, which does not need
natural images.
"""

from __future__ import annotations

import math
import random

import numpy as np
from PIL import Image, ImageDraw

from steer.organism.vocab import OBJECTS, all_words

IMAGE_SIZE = 32
#: bump when :func:`render_object` or :func:`render_typed` changes its pixels, so cached renders (steer.data.organism_sets) are not reused
IMAGES_VERSION = 2  # 2: typed words start at the top-left patch

SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross", "ring", "bar")
COLORS = {
    "red": (220, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 90, 230),
    "yellow": (235, 220, 50),
    "purple": (160, 60, 210),
    "orange": (245, 140, 30),
    "cyan": (40, 210, 220),
    "white": (235, 235, 235),
}


def _assign_looks() -> dict[str, tuple[str, str]]:
    # A fixed permutation of the 64 (shape, colour) pairs; the first 38 go to the objects.
    pairs = [(s, c) for s in SHAPES for c in COLORS]
    random.Random(1234).shuffle(pairs)
    return {obj: pairs[i] for i, obj in enumerate(OBJECTS)}


#: object -> (shape, colour name)
LOOKS: dict[str, tuple[str, str]] = _assign_looks()


def _polygon(cx: float, cy: float, r: float, n: int, rot: float, inner: float | None = None) -> list[tuple[float, float]]:
    pts = []
    steps = n * 2 if inner is not None else n
    for k in range(steps):
        rad = r if inner is None or k % 2 == 0 else r * inner
        a = rot + 2 * math.pi * k / steps - math.pi / 2
        pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
    return pts


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, rot: float, fill, bg) -> None:
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        ri = r * 0.5
        draw.ellipse([cx - ri, cy - ri, cx + ri, cy + ri], fill=bg)
    elif shape == "square":
        draw.polygon(_polygon(cx, cy, r * 1.15, 4, rot + math.pi / 4), fill=fill)
    elif shape == "diamond":
        draw.polygon(_polygon(cx, cy, r * 1.1, 4, rot), fill=fill)
    elif shape == "triangle":
        draw.polygon(_polygon(cx, cy, r * 1.15, 3, rot), fill=fill)
    elif shape == "bar":
        c, s = math.cos(rot), math.sin(rot)
        hw, hh = r * 1.15, r * 0.45
        corners = [(-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh)]
        draw.polygon([(cx + x * c - y * s, cy + x * s + y * c) for x, y in corners], fill=fill)
    elif shape == "star":
        draw.polygon(_polygon(cx, cy, r * 1.2, 5, rot, inner=0.45), fill=fill)
    elif shape == "cross":
        w = r * 0.38
        c, s = math.cos(rot), math.sin(rot)
        for dx, dy in ((1, 0), (0, 1)):
            # a bar along (dx, dy) rotated by rot
            ux, uy = dx * c - dy * s, dx * s + dy * c
            vx, vy = -uy, ux
            draw.polygon(
                [
                    (cx + ux * r + vx * w, cy + uy * r + vy * w),
                    (cx + ux * r - vx * w, cy + uy * r - vy * w),
                    (cx - ux * r - vx * w, cy - uy * r - vy * w),
                    (cx - ux * r + vx * w, cy - uy * r + vy * w),
                ],
                fill=fill,
            )
    else:  # pragma: no cover - SHAPES is closed
        raise ValueError(shape)


def render_object(obj: str, seed: int) -> Image.Image:
    """A 32 x 32 RGB image of ``obj``; the same (obj, seed) always gives the same pixels."""
    shape, colour = LOOKS[obj]
    rng = random.Random(f"{obj}/{seed}")
    bg = tuple(rng.randint(0, 80) for _ in range(3))
    img = Image.new("RGB", (IMAGE_SIZE * 4, IMAGE_SIZE * 4), bg)  # draw at 4x, then downsample
    draw = ImageDraw.Draw(img)
    r = rng.uniform(9.0, 13.0) * 4
    margin = r * 1.1
    cx = rng.uniform(margin, IMAGE_SIZE * 4 - margin)
    cy = rng.uniform(margin, IMAGE_SIZE * 4 - margin)
    rot = rng.uniform(-0.2, 0.2)
    fill = tuple(max(0, min(255, v + rng.randint(-25, 25))) for v in COLORS[colour])
    _draw_shape(draw, shape, cx, cy, r, rot, fill, bg)
    img = img.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.float32)
    noise = np.random.default_rng(_seed_int(obj, seed))
    arr = arr + noise.normal(0.0, rng.uniform(4.0, 14.0), size=arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _seed_int(obj: str, seed: int) -> int:
    return (OBJECTS.index(obj) * 1_000_003 + seed * 7919) % (2**32)


# ----------------------------------------------------------------------------- typed words
#: side of one glyph cell; equal to the vision tower's patch size, so one word is one patch
GLYPH_CELL = 8
GLYPH_SIZE = 6  # the glyph's drawn square inside its cell (1-pixel margin all round)
SLOTS_PER_ROW = IMAGE_SIZE // GLYPH_CELL
MAX_TYPED_WORDS = SLOTS_PER_ROW * SLOTS_PER_ROW  # 16


def _make_font() -> dict[str, np.ndarray]:
    """word -> 6 x 6 boolean glyph, one per vocabulary word, all different.

    The organism's bitmap font is *logographic*: a word is one glyph, the way its
    tokenizer makes a word one token. A letter font does not fit: at 32 px a 3 x 5 letter
    font puts two letters in each 8 x 8 patch with words straddling patch borders, and a
    request of up to 29 letters would need most of the picture. One glyph per patch keeps
    reading a matter of what each patch shows, as legible at this resolution as the
    objects are.
    """
    rng = np.random.default_rng(20261204)
    font: dict[str, np.ndarray] = {}
    seen: set[bytes] = set()
    for word in all_words():
        while True:
            glyph = rng.random((GLYPH_SIZE, GLYPH_SIZE)) < 0.5
            key = glyph.tobytes()
            if 12 <= glyph.sum() <= 24 and key not in seen:
                break
        seen.add(key)
        font[word] = glyph
    return font


#: word -> its glyph (see :func:`_make_font`)
FONT: dict[str, np.ndarray] = _make_font()


def typed_layout(n_words: int) -> int:
    """The slot (0 .. 15, row-major) where a render of ``n_words`` words starts: always 0.

    Typed text starts at the top-left corner, as on a page and in FigStep's typographic
    images; only ink, background and noise vary with the seed. A first trial with a seeded
    start slot left the organism unable to read (docs/organism.md, "Typed requests"):
    with the words anywhere among 16 patches, reading them in order is an in-context
    search its four layers did not learn in the text stage's steps, while from a fixed
    start every word sits at a fixed offset from the image's first token.
    """
    if not 1 <= n_words <= MAX_TYPED_WORDS:
        raise ValueError(f"a typed image holds 1 to {MAX_TYPED_WORDS} words, not {n_words}")
    return 0


def render_typed(words: str, seed: int) -> Image.Image:
    """A 32 x 32 RGB image with ``words`` typed in the organism's font (one glyph per 8 x 8
    patch, row-major from the top-left slot), a jittered bright ink on a random dark
    background, with pixel noise; the same (words, seed) always gives the same pixels."""
    tokens = words.split()
    unknown = [w for w in tokens if w not in FONT]
    if unknown:
        raise ValueError(f"no glyph for {unknown[0]!r}: typed images use the organism's vocabulary only")
    start = typed_layout(len(tokens))
    rng = random.Random(f"typed/{words}/{seed}")
    bg = np.array([rng.randint(0, 70) for _ in range(3)], dtype=np.float32)
    ink = np.array([rng.randint(170, 255) for _ in range(3)], dtype=np.float32)
    arr = np.broadcast_to(bg, (IMAGE_SIZE, IMAGE_SIZE, 3)).copy()
    for k, word in enumerate(tokens):
        slot = start + k
        y0 = (slot // SLOTS_PER_ROW) * GLYPH_CELL + 1
        x0 = (slot % SLOTS_PER_ROW) * GLYPH_CELL + 1
        cell = arr[y0 : y0 + GLYPH_SIZE, x0 : x0 + GLYPH_SIZE]
        cell[FONT[word]] = ink
    noise = np.random.default_rng(random.Random(f"typed-noise/{words}/{seed}").getrandbits(32))
    arr = arr + noise.normal(0.0, rng.uniform(4.0, 14.0), size=arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def typed_slot_labels(words: str, seed: int) -> list[str | None]:
    """The word each of the 16 patches of ``render_typed(words, seed)`` shows (None: blank)."""
    tokens = words.split()
    start = typed_layout(len(tokens))
    labels: list[str | None] = [None] * MAX_TYPED_WORDS
    for k, w in enumerate(tokens):
        labels[start + k] = w
    return labels
