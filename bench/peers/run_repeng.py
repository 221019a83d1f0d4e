"""Benchmark peer: `repeng` (PyPI) steering with steer's vectors.

Runs in its own venv (repeng pins ``numpy<2``)::

    python -m venv /tmp/venv-repeng
    /tmp/venv-repeng/bin/pip install torch==2.14.1 repeng
    /tmp/venv-repeng/bin/python bench/peers/run_repeng.py WORK_DIR

``bench/run.py --peer-venvs /tmp`` runs it for you. ``ControlModel(model, layer_ids)``
wraps the steered decoder layers; ``set_control(ControlVector(...), coeff=1.0)`` adds
``delta.{layer}`` to their output at every non-padding position (repeng masks left
padding from ``position_ids``), generated tokens included -- the work steer does with
``op="subtract"`` on a text-only model at ``after_image`` positions. ``ControlModel``
*replaces* the layers in the model; here it is built before and unwrapped after each
steered run (outside the timed region), so the unsteered baseline is the plain model, as
for every other contender. Prints one JSON object.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager, nullcontext
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import check, environment, load_model, load_work, main_args, per_call_us, time_interleaved  # noqa: E402


def main() -> None:
    work = main_args()
    from repeng import ControlModel, ControlVector

    model = load_model(work)
    spec, deltas, ref = load_work(work)
    layers = sorted(deltas)
    vector = ControlVector(
        model_type=model.config.model_type, directions={layer: deltas[layer].numpy() for layer in layers}
    )

    @contextmanager
    def steered():
        control_model = ControlModel(model, layers)
        control_model.set_control(vector, coeff=1.0)
        try:
            yield
        finally:
            control_model.reset()
            control_model.unwrap()

    result = {
        "library": "repeng",
        "env": environment({"repeng": version("repeng"), "numpy": version("numpy")}),
        "check": check(model, ref, spec, steered),
    }
    # the library's own cost per steered layer and decode step: ControlModule around an identity block
    import torch
    from repeng.control import BlockControlParams, ControlModule

    class Block(torch.nn.Module):  # a decoder layer that costs nothing: the wrapper's own cost remains
        def forward(self, hidden, **kwargs):
            return hidden

    layer = layers[len(layers) // 2]
    block = Block()
    wrapped = ControlModule(block)
    wrapped.set_control(BlockControlParams(deltas[layer]))
    overhead = {}
    for b in spec["batch_sizes"]:
        h = torch.randn(b, 1, deltas[layer].numel())
        pos = torch.full((b, 1), 40)
        with torch.inference_mode():
            overhead[str(b)] = per_call_us(lambda: wrapped(h, position_ids=pos)) - per_call_us(lambda: block(h, position_ids=pos))
    result["per_layer_hook_us"] = overhead
    if result["check"]["ok"]:
        result["timings"] = time_interleaved(model, spec, ref, {"unsteered": nullcontext, "steered": steered})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
