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
            check_image_size(path, img.size)  # from the header, before decoding gigabytes of pixels
            return img.convert("RGB")
    except Image.DecompressionBombError as err:  # not an OSError: PIL's own guard, > 2x the pixel limit
        raise SteerInputError(f"image {path} is too large to load safely: {err}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:  # SyntaxError: some broken PNG headers
        raise SteerInputError(f"cannot read image {path}: {err} (give a PNG/JPEG/WebP file)") from None


def max_image_pixels() -> int:
    """The pixel limit: PIL's ``Image.MAX_IMAGE_PIXELS`` (about 89 million), or that default when a user set it to None."""
    return int(Image.MAX_IMAGE_PIXELS or 89_478_485)


def check_image_size(path: str | os.PathLike, size: tuple[int, int]) -> None:
    """Refuse an image over :func:`max_image_pixels` (a decompression bomb or a mistaken scan)."""
    width, height = size
    if width * height > max_image_pixels():
        raise SteerInputError(
            f"image {path} is too large: {width}x{height} = {width * height} pixels, over the limit of {max_image_pixels()}; "
            "shrink it (models resize to a few hundred pixels anyway)"
        )
