"""docs/cli.md is generated from the typer app; these tests fail as soon as it drifts from cli.py.

Fix a failure by regenerating: ``python docs/generate_cli_md.py`` (then commit docs/cli.md).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import pytest
import typer

import cli

ROOT = Path(__file__).resolve().parents[1]
CLI_MD = ROOT / "docs" / "cli.md"
REGENERATE = "python docs/generate_cli_md.py"


def _load_generator() -> ModuleType:
    """docs/ is not a package, so load the generator script by path."""
    spec = importlib.util.spec_from_file_location("generate_cli_md", ROOT / "docs" / "generate_cli_md.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _commands(command: Any, path: tuple[str, ...] = ("steer",)) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(command path, command) for every visible command, walked independently of the generator."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        if not getattr(sub, "hidden", False):
            yield from _commands(sub, (*path, name))


@pytest.fixture(scope="module")
def cli_md() -> str:
    """The committed file; a missing one fails with the command that creates it."""
    if not CLI_MD.exists():
        pytest.fail(f"docs/cli.md is missing: create it with `{REGENERATE}`")
    return CLI_MD.read_text(encoding="utf-8")


def test_cli_md_is_up_to_date(cli_md: str) -> None:
    generated = _load_generator().render()
    if generated != cli_md:
        # Name the first differing line so the failure says what changed, not just "stale".
        gen_lines, file_lines = generated.splitlines(), cli_md.splitlines()
        for i, (a, b) in enumerate(zip(gen_lines, file_lines)):
            if a != b:
                where = f"line {i + 1}: file has {b!r}, the app gives {a!r}"
                break
        else:
            where = f"file has {len(file_lines)} lines, the app gives {len(gen_lines)}"
        pytest.fail(f"docs/cli.md is stale ({where}); regenerate it with `{REGENERATE}`")


def test_every_command_and_option_is_in_cli_md(cli_md: str) -> None:
    root = typer.main.get_command(cli.app)
    headings = set(re.findall(r"^#{2,4} (steer(?: [\w-]+)*)$", cli_md, flags=re.M))
    missing_commands, missing_options = [], []
    sections = re.split(r"^#{2,4} ", cli_md, flags=re.M)
    by_name = {s.splitlines()[0]: s for s in sections[1:]}
    for path, command in _commands(root):
        name = " ".join(path)
        if name not in headings:
            missing_commands.append(name)
            continue
        for param in command.params:
            if getattr(param, "hidden", False) or param.param_type_name != "option":
                continue
            for opt in [*param.opts, *param.secondary_opts]:
                if f"`{opt}`" not in by_name[name]:
                    missing_options.append(f"{name} {opt}")
    assert not missing_commands, f"commands missing from docs/cli.md: {missing_commands}; run `{REGENERATE}`"
    assert not missing_options, f"options missing from docs/cli.md: {missing_options}; run `{REGENERATE}`"


def test_check_flag_reports_a_stale_file(tmp_path: Path) -> None:
    """`--check` is what a pre-commit hook or CI step would call: 1 on stale, 0 once rewritten."""
    generator = _load_generator()
    target = tmp_path / "cli.md"
    target.write_text("# stale\n", encoding="utf-8")
    assert generator.main(["--check", "--out", str(target)]) == 1
    assert generator.main(["--out", str(target)]) == 0
    assert generator.main(["--check", "--out", str(target)]) == 0
    text = target.read_text(encoding="utf-8")
    assert "\\[" not in text, "rich markup escapes leaked into the Markdown"
