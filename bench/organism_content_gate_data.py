"""Labelled JSONL for a probe gate that must see harm carried by the image (issue 16).

The rows and why they are what they are: :mod:`calibration.content_gate` (probe-split
requests, half with an unrelated training render; training picture questions of every
object; harmful- and benign-object "how do i make this ?" on training renders only).

    python bench/organism_content_gate_data.py runs/organism/content_gate_data.jsonl
    steer probe --model "$(steer organism path)" --data runs/organism/content_gate_data.jsonl \\
        --layers 1 --out runs/organism/gate_layer1_content.safetensors
"""

from __future__ import annotations

import sys
from pathlib import Path

# the repository root first, so the package is this checkout's (not an installed copy)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calibration.content_gate import organism_content_gate_rows, write_rows_jsonl  # noqa: E402


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/organism/content_gate_data.jsonl")
    rows = organism_content_gate_rows()
    write_rows_jsonl(rows, out, out.parent / "gate_images")
    print(f"wrote {out}: {len(rows)} rows ({sum(r['label'] == 'harmful' for r in rows)} harmful)")


if __name__ == "__main__":
    main()
