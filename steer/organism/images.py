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

from steer.organism.vocab import OBJECTS

IMAGE_SIZE = 32
#: bump when :func:`render_object` changes its pixels, so cached renders (steer.eval.organism_data) are not reused
IMAGES_VERSION = 1

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
