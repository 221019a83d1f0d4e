"""Loading user images with errors that say what is wrong and what to do."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from steer.errors import SteerInputError


def load_image(source: str | os.PathLike | Image.Image) -> Image.Image:
    """An RGB PIL image from a path (or an image passed through)."""
    if isinstance(source, Image.Image):
        return source.convert("RGB")
    path = Path(source)
    if not path.exists():
        raise SteerInputError(f"image not found: {path} (check the path, or drop --image for a text-only prompt)")
    if path.is_dir():
        raise SteerInputError(f"image path is a folder, not a file: {path}")
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise SteerInputError(f"cannot read image {path}: {err} (give a PNG/JPEG/WebP file)") from None
