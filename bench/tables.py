"""Markdown tables for docs/benchmarks.md from a ``bench/run.py`` results file.

    python bench/tables.py bench/results/quick/benchmarks.json

Every figure the doc quotes from a run is printed here from the committed JSON, so the doc
and the file cannot disagree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _contenders(block: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(k, v) for k, v in block.items() if isinstance(v, dict) and "median_s" in v]


def generation_table(models: dict[str, Any]) -> list[str]:
    out = [_row(["model", "batch", "contender", "tokens/s", "ratio", "paired ratio", "CPU-time ratio", "reps"]),
           _row(["---"] * 8)]
    for name, entry in models.items():
        for batch, block in (entry.get("generation") or {}).items():
            for contender, v in _contenders(block):
                out.append(_row([name, batch, f"`{contender}`", f"{v['tokens_per_s']:.1f}", f"{v['ratio']:.3f}",
                                 f"{v['paired_ratio']:.3f}", f"{v.get('cpu_ratio', float('nan')):.3f}", len(v["seconds"])]))
            for contender, v in block.items():
                if isinstance(v, dict) and "skipped" in v:
                    out.append(_row([name, batch, f"`{contender}`", "skipped", "-", "-", "-", "-"]))
    return out


def sample_tables(models: dict[str, Any]) -> list[str]:
    out = [_row(["model", "batch", "tokens a row (image)", "contender", "median ms", "latency ratio", "paired",
                 "CPU-time ratio", "reps"]), _row(["---"] * 9)]
    for name, entry in models.items():
        for batch, block in (entry.get("sample_prefill") or {}).items():
            for contender, v in _contenders(block):
                paired = 1.0 / v["paired_ratio"]
                out.append(_row([name, batch, f"{block['prompt_tokens']} ({block['image_tokens']})", f"`{contender}`",
                                 f"{v['median_s'] * 1000:.1f}", f"{v['latency_ratio']:.3f}", f"{paired:.3f}",
                                 f"{1.0 / v['cpu_ratio']:.3f}", len(v["seconds"])]))
    out.append("")
    out += [_row(["model", "batch x new tokens", "contender", "tokens/s", "ratio", "paired ratio", "CPU-time ratio", "reps"]),
            _row(["---"] * 8)]
    for name, entry in models.items():
        block = entry.get("sample_generation")
        if not block:
            continue
        for contender, v in _contenders(block):
            out.append(_row([name, f"{block['batch']} x {block['new_tokens']}", f"`{contender}`",
                             f"{v['tokens_per_s']:.1f}", f"{v['ratio']:.3f}", f"{v['paired_ratio']:.3f}",
                             f"{v['cpu_ratio']:.3f}", len(v["seconds"])]))
    return out


def prefill_table(models: dict[str, Any]) -> list[str]:
    out = [_row(["model", "tokens", "contender", "median ms", "latency ratio", "CPU-time ratio", "reps"]),
           _row(["---"] * 7)]
    for name, entry in models.items():
        block = entry.get("prefill")
        if not block:
            continue
        for contender, v in _contenders(block):
            out.append(_row([name, block["prompt_tokens"], f"`{contender}`", f"{v['median_s'] * 1000:.0f}",
                             f"{v['latency_ratio']:.3f}", f"{1.0 / v['cpu_ratio']:.3f}", len(v["seconds"])]))
    return out


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results/quick/benchmarks.json")
    data = json.loads(path.read_text())
    meta = data["meta"]
    start, end = meta.get("machine_start", {}), meta.get("machine_end", {})
    print(f"command: {meta.get('command')}; wall {meta.get('wall_s', 0):.0f} s; threads {start.get('torch_threads')}; "
          f"load average at start {start.get('load_average')}, at end {end.get('load_average')}\n")
    models = data["models"]
    print("\n".join(generation_table(models)) + "\n")
    print("\n".join(sample_tables(models)) + "\n")
    print("\n".join(prefill_table(models)))


if __name__ == "__main__":
    main()
