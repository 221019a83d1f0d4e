"""Pictures inside the page: item thumbnails and ``data:`` URIs.

Why ``data:`` URIs: the report is one file that still shows its pictures when mailed,
attached to an issue or moved away from the run's folder.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any, Sequence

__all__ = ["CONTENT_FREE_MARKERS", "THUMBNAIL_PX", "data_uri", "item_thumbnail"]

#: Longest side of an embedded item thumbnail, in pixels: enough to recognise a FigStep
#: typographic image, small enough that a report of many items stays a few MB.
THUMBNAIL_PX = 192
#: Marker strings the runner writes for content-free images (see ``steer.eval.runner``).
CONTENT_FREE_MARKERS = {"<blank>": "blank", "<noise>": "noise"}


def data_uri(data: bytes, mime: str) -> str:
    """``data`` as a ``data:`` URI, for an ``<img src>`` that needs no file beside the page."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _content_free_thumbnail(kind: str) -> Any:
    """What the model saw for a content-free marker, drawn as the adapter draws it
    (black for blank, seeded uniform noise), at thumbnail size."""
    import numpy as np
    from PIL import Image

    if kind == "blank":
        return Image.new("RGB", (96, 96), (0, 0, 0))
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, size=(96, 96, 3), dtype=np.uint8), "RGB")


def item_thumbnail(image: Any, search_dirs: Sequence[Path] = ()) -> tuple[str | None, str]:
    """(data URI of a JPEG thumbnail or None, caption) for a result row's ``image`` field.

    The runner writes a path, ``<blank>`` / ``<noise>`` for content-free images, ``<pil>``
    for an in-memory image, or None for text-only items; each gets an honest caption.
    """
    from PIL import Image, UnidentifiedImageError

    if image is None:
        return None, "text only (no image)"
    text = str(image)
    if text in CONTENT_FREE_MARKERS:
        kind = CONTENT_FREE_MARKERS[text]
        picture = _content_free_thumbnail(kind)
        caption = f"content-free {kind} image"
    elif text == "<pil>":
        return None, "in-memory image (not stored in the results)"
    else:
        path = Path(text)
        candidates = [path] if path.is_absolute() else [path, *(d / path for d in search_dirs)]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            return None, f"image not found: {text}"
        try:
            with Image.open(found) as img:
                picture = img.convert("RGB")
        except (UnidentifiedImageError, OSError):
            return None, f"unreadable image: {text}"
        caption = found.name
    picture.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    if max(picture.size) < THUMBNAIL_PX // 2:
        # tiny images (the organism's are 32 px) are blown up with sharp pixels, not blurred
        factor = (THUMBNAIL_PX // 2) // max(picture.size)
        picture = picture.resize((picture.width * factor, picture.height * factor), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    picture.save(buf, format="JPEG", quality=82)
    return data_uri(buf.getvalue(), "image/jpeg"), caption
