"""The command-line layer syntax ('8-20', '3,5,7', '-1', 'all') read into layer lists, and back.

Layers are 0-based decoder layers. The CLI and the Python entry points that take a layer
string (``calibration.runs``, ``steer.eval.answer``) read it here, so a spec means the same
everywhere and a bad one fails with the same message before any model loads.
"""

from __future__ import annotations

from typing import Optional

from steer.errors import SteerInputError


def parse_layers(spec: Optional[str], num_layers: Optional[int] = None) -> Optional[list[int]]:
    """'8-20', '3,5,7', '8-12,20', '-1' (last) or 'all' -> sorted layer list (None = the file's/all)."""
    if spec is None or spec.strip() == "file":
        return None
    refuse_empty_layers(spec)
    spec = spec.strip()
    if spec == "all":
        if num_layers is None:
            return None
        return list(range(num_layers))
    layers: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        try:
            if "-" in part[1:]:
                cut = part.index("-", 1)
                lo_i, hi_i = int(part[:cut]), int(part[cut + 1 :])
                if hi_i < lo_i or lo_i < 0:  # '-3-1' would silently wrap round to every layer
                    raise ValueError
                layers.update(range(lo_i, hi_i + 1))
            else:
                layers.add(int(part))
        except ValueError:
            raise SteerInputError(
                f"cannot read layers {spec!r}: use e.g. '8-20', '3,5,7', '-1' (last), 'all'; ranges take layers >= 0"
            ) from None
    return sorted(layers)


def refuse_empty_layers(spec: Optional[str]) -> None:
    """An empty --layers ('' from an unset shell variable) must not silently mean "the file's layers"."""
    if spec is not None and not spec.strip():
        raise SteerInputError("--layers is empty; give layers such as '8-20', 'all', or leave the option out for the default")


def band_spec(layers: list[int]) -> str:
    """[1, 2, 3, 5] -> '1-3,5' (the --layers syntax)."""
    parts: list[str] = []
    start = prev = None
    for layer in sorted(layers):
        if start is None:
            start = prev = layer
        elif layer == prev + 1:
            prev = layer
        else:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = prev = layer
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(parts)
