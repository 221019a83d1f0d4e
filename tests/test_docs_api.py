"""The Python examples of the documentation are executed, so they cannot rot.

Every fenced block whose info string is ``python`` (```` ```python ````) in a page listed in
:data:`PAGES` runs, in page order, in one namespace per page, with a fresh temporary
folder as the working directory (files the examples write land there). Each block is
compiled under the page's own file name with its Markdown line numbers, so a failing
example's traceback points at ``docs/<page>.md:<line>``.

Other fences (``bash``, ``text``, plain ````` ``` `````) are prose and are not run.
A ``# -> text`` comment in a block documents a printed line: the block must print it
(lines must appear in that order; other printed lines may come between), so the shown
outputs cannot go stale either.

Run: ``OMP_NUM_THREADS=1 python -m pytest tests/test_docs_api.py``.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: pages whose ``python`` blocks are executed (paths relative to the project root)
PAGES = ("docs/api.md",)

_FENCE = re.compile(r"^(?P<indent>[ ]{0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")


@dataclass(frozen=True)
class CodeBlock:
    """One ``python`` fenced block: its source and the Markdown line its code starts on (1-based)."""

    source: str
    first_line: int


def python_blocks(markdown: str) -> list[CodeBlock]:
    """The ``python`` fenced blocks of ``markdown``, in order.

    A block opens with a fence of three or more backticks (or tildes) whose info string's
    first word is exactly ``python`` and closes with a fence of the same character at
    least as long, as in CommonMark. Blocks of other languages are skipped. An unclosed
    ``python`` block is an error rather than silently ignored.
    """
    lines = markdown.splitlines()
    blocks: list[CodeBlock] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence = opening.group("fence")
        info = opening.group("info").strip().split()
        body: list[str] = []
        j = i + 1
        closed = False
        while j < len(lines):
            closing = _FENCE.match(lines[j])
            if (
                closing is not None
                and closing.group("fence")[0] == fence[0]
                and len(closing.group("fence")) >= len(fence)
                and not closing.group("info").strip()
            ):
                closed = True
                break
            body.append(lines[j])
            j += 1
        is_python = bool(info) and info[0] == "python"
        if is_python and not closed:
            raise ValueError(f"the python block opened on line {i + 1} is never closed")
        if is_python:
            blocks.append(CodeBlock("\n".join(body) + "\n", i + 2))
        i = j + 1
    return blocks


def expected_output(source: str) -> list[str]:
    """The printed lines a block documents: its ``# -> text`` comments, in order."""
    return [m.group(1).rstrip() for m in re.finditer(r"^# -> (.*)$", source, flags=re.M)]


def check_output(expected: list[str], printed: str, where: str) -> None:
    """Every documented line must be printed, in order (other printed lines may come between)."""
    lines = [line.rstrip() for line in printed.splitlines()]
    pos = 0
    for want in expected:
        try:
            pos = lines.index(want, pos) + 1
        except ValueError:
            shown = "\n".join(f"    {line}" for line in lines) or "    (nothing)"
            raise AssertionError(
                f"{where}: the documented output line\n    {want}\nwas not printed (in this order); "
                f"the block printed:\n{shown}"
            ) from None


def run_page(page: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, float]]:
    """Execute every ``python`` block of ``page`` in order in one fresh namespace, inside ``workdir``.

    Each block is compiled with blank lines in front of it so that its line numbers are
    the page's. What a block prints is captured (and echoed) and must contain the block's
    ``# -> ...`` comments, in order. Returns ``(first line, seconds)`` per block.
    """
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("STEER_CACHE", str(workdir / "cache"))  # organism renders stay in the temp folder
    namespace: dict[str, Any] = {"__name__": f"docs_page_{page.stem}"}
    timings: list[tuple[int, float]] = []
    for block in python_blocks(page.read_text(encoding="utf-8")):
        padded = "\n" * (block.first_line - 1) + block.source
        code = compile(padded, str(page), "exec")
        printed = io.StringIO()
        start = time.perf_counter()
        try:
            with contextlib.redirect_stdout(printed):
                exec(code, namespace)  # noqa: S102 - the documentation's own examples
        finally:
            sys.stdout.write(printed.getvalue())  # shown by pytest -s, or with a failure
        timings.append((block.first_line, time.perf_counter() - start))
        check_output(expected_output(block.source), printed.getvalue(), f"{page.name}:{block.first_line}")
    return timings


def test_python_blocks_parser() -> None:
    """Only ``python`` fences are collected, with the line number of their first code line."""
    page = "\n".join(
        [
            "# title",  # 1
            "```bash",  # 2
            "steer demo",  # 3
            "```",  # 4
            "```python",  # 5
            "x = 1",  # 6
            "````",  # 7: a longer fence closes too
            "````python",  # 8
            "s = '''",  # 9
            "```",  # 10: shorter than the opening fence: content
            "'''",  # 11
            "````",  # 12
            "```pycon",  # 13
            ">>> 1",  # 14
            "```",  # 15
        ]
    )
    blocks = python_blocks(page)
    assert [b.first_line for b in blocks] == [6, 9]
    assert blocks[0].source == "x = 1\n"
    assert "```" in blocks[1].source
    with pytest.raises(ValueError, match="never closed"):
        python_blocks("```python\nx = 1\n")


def test_documented_output_check() -> None:
    """``# -> `` comments must be printed in order; undocumented printed lines are allowed."""
    source = 'print("a")\n# -> a\nprint("b")\n# -> c\n'
    assert expected_output(source) == ["a", "c"]
    check_output(["a", "c"], "a\nb\nc\n", "page:1")
    with pytest.raises(AssertionError, match="was not printed"):
        check_output(["c", "a"], "a\nb\nc\n", "page:1")


@pytest.mark.parametrize("page", PAGES)
def test_doc_examples_run(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``python`` example of ``page`` runs, top to bottom, offline, on the shipped organism."""
    path = ROOT / page
    blocks = python_blocks(path.read_text(encoding="utf-8"))
    assert blocks, f"{page} has no python examples"
    timings = run_page(path, tmp_path, monkeypatch)
    slowest = ", ".join(f"line {line}: {sec:.1f} s" for line, sec in sorted(timings, key=lambda t: -t[1])[:3])
    print(f"{page}: {len(timings)} python blocks ran in {sum(t for _, t in timings):.1f} s (slowest {slowest})")
