"""The README's commands must keep working: the two set-up commands and every `steer ...` line.

A renamed command or option, a CI script that drifts from the documented test command, or a
demo that stops writing its result would otherwise only be noticed by a new user.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer

import cli
from tests.cli_runner import run_cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CI_RUN = ROOT / ".ci" / "run"

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def _setup_block() -> str:
    """The first shell block under the README's "Set-up" heading."""
    text = README.read_text(encoding="utf-8")
    heading = re.search(r"^## Set-up.*$", text, flags=re.M)
    assert heading, "README has no '## Set-up' section"
    block = _FENCE.search(text, heading.end())
    assert block and block.group(1) in ("bash", "sh", "shell"), "the Set-up section has no shell block"
    return block.group(2)


def _command_lines(block: str) -> list[list[str]]:
    """Shell lines of a block as words, comments dropped and backslash continuations joined."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [words for words in (shlex.split(line, comments=True) for line in joined.splitlines()) if words]


def _and_parts(words: list[str]) -> list[list[str]]:
    """``a && b`` -> [[a...], [b...]]: each part of a && chain is its own command."""
    parts: list[list[str]] = [[]]
    for word in words:
        if word == "&&":
            parts.append([])
        else:
            parts[-1].append(word)
    return [part for part in parts if part]


def _setup_commands() -> tuple[list[str], list[str]]:
    """(demo command, test command): the README promises exactly two."""
    lines = _command_lines(_setup_block())
    assert len(lines) == 2, f"the Set-up block should hold two commands, found {lines}"
    return lines[0], lines[1]


def _ci_command() -> list[str]:
    """The command .ci/run executes (its last line that is not a comment or shell set-up)."""
    body = [
        line.strip()
        for line in CI_RUN.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    commands = [line for line in body if not re.match(r"(set|cd|export)\b", line)]
    assert commands, ".ci/run runs nothing"
    return shlex.split(commands[-1])


def _readme_steer_lines() -> list[str]:
    """Every `steer ...` command shown in the README: fenced shell blocks and inline code spans."""
    text = README.read_text(encoding="utf-8")
    found: list[str] = []
    for lang, body in _FENCE.findall(text):
        if lang not in ("bash", "sh", "shell", "console", ""):
            continue
        for words in _command_lines(body):
            # "pip install ... && steer demo ...": look at every part of a && chain.
            for part in _and_parts(words):
                if part[0] == "steer":
                    found.append(shlex.join(part))
    for span in re.findall(r"(?<!`)`(steer [^`]+)`(?!`)", _FENCE.sub("", text)):
        found.append(span)
    return found


def test_readme_test_command_is_what_ci_runs() -> None:
    _, test_command = _setup_commands()
    assert test_command == _ci_command(), (
        f"README's test command {shlex.join(test_command)!r} differs from .ci/run's "
        f"{shlex.join(_ci_command())!r}; keep them identical"
    )


@pytest.mark.xdist_group("demo_cli")
def test_readme_demo_command_runs(cli_once, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo half of set-up command 1, run in-process on a few items per cell, its --out
    moved to a temporary folder (the run is shared with test_demo's table check)."""
    demo_command, _ = _setup_commands()
    parts = _and_parts(demo_command)
    assert len(parts) == 2, f"set-up command 1 should be `install && steer demo`, got {shlex.join(demo_command)!r}"
    install, words = parts
    assert install[:4] == ["python", "-m", "pip", "install"] and "-e" in install, shlex.join(install)
    assert words[:2] == ["steer", "demo"], f"set-up command 1 should run `steer demo`, got {shlex.join(words)!r}"
    args = words[1:]
    if "--out" in args:  # cli_once gives the run its own folder
        del args[args.index("--out") : args.index("--out") + 2]
    if "--limit" not in args:
        args += ["--limit", "4"]  # the README runs every item; 4 per cell keeps this test fast
    code, stdout, stderr, out = cli_once(args, capsys, monkeypatch)
    assert code == 0, stderr
    assert "unsafe, harmful text" in stdout
    summary = json.loads((out / "demo.json").read_text(encoding="utf-8"))
    assert 0.0 <= summary["image_unsafe_rate"] <= 1.0


def _resolve(words: list[str]) -> tuple[Any, Any, list[str]]:
    """(command, its context, remaining args) for `steer GROUP... COMMAND args`."""
    root = typer.main.get_command(cli.app)
    command, ctx = root, root.context_class(root, info_name="steer")
    rest = words[1:]
    while isinstance(getattr(command, "commands", None), dict) and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        sub = command.commands.get(name)
        assert sub is not None, f"`{' '.join(words)}`: no command {name!r} under `{ctx.command_path}`"
        command, ctx = sub, sub.context_class(sub, info_name=name, parent=ctx)
    return command, ctx, rest


@pytest.mark.parametrize("line", _readme_steer_lines())
def test_readme_steer_command_uses_real_options(line: str) -> None:
    """Parse each README command with the app's own click parser: unknown commands/options fail."""
    words = [w for w in shlex.split(line) if w != "..."]  # "..." marks elided options in the tour
    command, ctx, rest = _resolve(words)
    assert not isinstance(getattr(command, "commands", None), dict), f"`{line}` names a group, not a command"
    known = {opt for p in command.get_params(ctx) for opt in (*getattr(p, "opts", ()), *getattr(p, "secondary_opts", ()))}
    for word in rest:
        if word.startswith("-") and len(word) > 1 and not re.fullmatch(r"-\d+(\.\d+)?", word):
            name = word.split("=", 1)[0]
            assert name in known, f"`{line}`: `{ctx.command_path}` has no option {name}"
    # The click parser also checks that options that take a value get one.
    parser = command.make_parser(ctx)
    parser.parse_args(list(rest))


def test_readme_shows_steer_commands() -> None:
    """Guards the parser above: an empty list would make the parametrized test vacuous."""
    lines = _readme_steer_lines()
    assert any(line.startswith("steer demo") for line in lines)
    assert sum(line.startswith("steer calibrate") for line in lines) >= 1


def _tour_blocks() -> tuple[str, str]:
    """(shell block, python block) under the README's "Ten-line tour" heading."""
    text = README.read_text(encoding="utf-8")
    heading = re.search(r"^## Ten-line tour.*$", text, flags=re.M)
    assert heading, "README has no '## Ten-line tour' section"
    section = text[heading.end() : text.index("\n## ", heading.end())]
    blocks = dict((lang, body) for lang, body in _FENCE.findall(section))
    assert "bash" in blocks and "python" in blocks, "the tour needs a bash and a python block"
    return blocks["bash"], blocks["python"]


def test_readme_tour_runs_as_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every line of the tour, in order, from a copy of the repository's examples/, offline."""
    import shutil

    from steer.organism import ORGANISM_DIR

    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    shell, python = _tour_blocks()
    lines = _command_lines(shell)
    assert lines[0] == ["M=$(steer", "organism", "path)"], lines[0]  # the model is named once
    code, stdout, _ = run_cli(["organism", "path"], capsys, monkeypatch)
    assert code == 0 and stdout.strip() == str(ORGANISM_DIR)
    answers = []
    for words in lines[1:]:
        assert words[0] == "steer", words
        args = [str(ORGANISM_DIR) if w == "$M" else w for w in words[1:]]
        code, stdout, stderr = run_cli(args, capsys, monkeypatch)
        assert code == 0, (shlex.join(words), stderr)
        if args[0] == "generate":
            answers.append(stdout.strip())
    assert answers[0].startswith("sure") and answers[1].startswith("sorry")  # what the comments promise
    exec(compile(python, "README tour", "exec"), {})
