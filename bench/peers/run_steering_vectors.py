"""Benchmark peer: the `steering-vectors` library (PyPI) applying steer's vectors.

Runs in its own venv (steering-vectors pins ``transformers<5``)::

    python -m venv /tmp/venv-sv
    /tmp/venv-sv/bin/pip install torch==2.14.1 steering-vectors
    /tmp/venv-sv/bin/python bench/peers/run_steering_vectors.py WORK_DIR

``bench/run.py --peer-venvs /tmp`` runs it for you. It adds ``delta.{layer}`` to the
output of every decoder layer (``SteeringVector(..., layer_type="decoder_block")``,
``apply(model, multiplier=1.0, min_token_index=0)``: every position, generated tokens
included), which is the work steer does with ``op="subtract"`` on a text-only model at
``after_image`` positions (= every non-padding position; the benchmark prompts have no
padding). Prints one JSON object.
"""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import check, environment, load_model, load_work, main_args, per_call_us, time_interleaved  # noqa: E402


def main() -> None:
    work = main_args()
    from steering_vectors import SteeringVector

    model = load_model(work)
    spec, deltas, ref = load_work(work)
    vector = SteeringVector(layer_activations=deltas, layer_type="decoder_block")

    def steered():
        return vector.apply(model, multiplier=1.0, min_token_index=0)

    result = {
        "library": "steering-vectors",
        "env": environment({"steering-vectors": version("steering-vectors")}),
        "check": check(model, ref, spec, steered),
    }
    # the library's own cost per steered layer and decode step: its forward hook on a (B, 1, d) output
    import torch
    from steering_vectors.steering_vector import _create_additive_hook

    layer = sorted(deltas)[len(deltas) // 2]
    hook = _create_additive_hook(deltas[layer].reshape(1, 1, -1), slice(0, None), None)
    result["per_layer_hook_us"] = {
        str(b): per_call_us(lambda h=torch.randn(b, 1, deltas[layer].numel()): hook(None, (), h)) for b in spec["batch_sizes"]
    }
    if result["check"]["ok"]:
        timings = time_interleaved(model, spec, ref, {"unsteered": nullcontext, "steered": steered})
        result["timings"] = timings
    print(json.dumps(result))


if __name__ == "__main__":
    main()
