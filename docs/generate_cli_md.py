"""Write docs/cli.md, the reference of every `steer` command and option, from the typer app.

The reference is generated rather than hand-written so that it cannot drift from cli.py:
``python docs/generate_cli_md.py`` rewrites the file, ``--check`` only compares and exits 1
when the file is stale (tests/test_docs_cli.py runs the same comparison).

The text is built from the click command tree (``typer.main.get_command(cli.app)``), never
from a rendered ``--help`` screen, so it does not depend on the terminal width, on colour
support or on the shell; rich markup in help strings is resolved to the plain text a user
would read in the terminal.
"""

from __future__ import annotations

import argparse
import enum
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
CLI_MD = ROOT / "docs" / "cli.md"
REGENERATE = "python docs/generate_cli_md.py"

# cli.py is a top-level module of the repository; make it importable when this script is
# run from anywhere (and when the editable install points elsewhere).
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class CommandNode:
    """One command of the tree with the context click needs to describe it."""

    path: tuple[str, ...]  # ("steer", "organism", "train")
    command: Any  # a click (or typer-vendored click) Command / Group
    ctx: Any  # its click Context, parented like a real invocation

    @property
    def name(self) -> str:
        """The command line a user types, e.g. ``steer organism train``."""
        return " ".join(self.path)

    @property
    def is_group(self) -> bool:
        """Groups have sub-commands; typer's groups are not click.Group subclasses, so duck-type."""
        return isinstance(getattr(self.command, "commands", None), dict)


def root_command() -> Any:
    """The click command typer builds from cli.app (imported here so --help stays fast)."""
    import typer

    import cli

    return typer.main.get_command(cli.app)


def walk(command: Any | None = None, prog: str = "steer") -> Iterator[CommandNode]:
    """Every visible command, depth first, in the order `steer --help` lists them."""
    command = command if command is not None else root_command()
    ctx = command.context_class(command, info_name=prog)
    yield from _walk(command, ctx, (prog,))


def _walk(command: Any, ctx: Any, path: tuple[str, ...]) -> Iterator[CommandNode]:
    """Recursive step of :func:`walk`; hidden commands are left out as `--help` leaves them out."""
    yield CommandNode(path, command, ctx)
    for name, sub in getattr(command, "commands", {}).items():
        if getattr(sub, "hidden", False):
            continue
        sub_ctx = sub.context_class(sub, info_name=name, parent=ctx)
        yield from _walk(sub, sub_ctx, (*path, name))


def plain(text: str | None, markup_mode: str | None) -> str:
    """Help text as the terminal shows it: rich markup resolved (``\\[`` -> ``[``, tags dropped).

    Typer parses help as rich markup only in "rich" mode; an unparseable string is shown
    raw by rich too, so fall back to unescaping brackets only.
    """
    if not text:
        return ""
    text = text.split("\f", 1)[0]  # click convention: anything after \f is not help
    if markup_mode != "rich":
        return text
    from rich.errors import MarkupError
    from rich.text import Text

    try:  # emoji=False: rich would turn e.g. "gated:V:PROBE" into an emoji
        return Text.from_markup(text, emoji=False).plain
    except MarkupError:
        return text.replace("\\[", "[")


def paragraphs(text: str) -> list[str]:
    """Docstring paragraphs with their hard line breaks joined, as typer's rich help reflows them."""
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [line.strip() for line in block.strip().splitlines()]
        joined = " ".join(line for line in lines if line and line != "\b")
        if joined:
            out.append(joined)
    return out


_CODE_SPAN = re.compile(r"(`[^`]*`)")


def md_escape(text: str, in_table: bool = False) -> str:
    """Escape what Markdown would swallow (``<tag>``, ``*``) outside code spans; ``|`` in tables.

    GFM needs ``\\|`` even inside code spans in a table row, and renders it as ``|``.
    """
    pieces = []
    for piece in _CODE_SPAN.split(text):
        if not (piece.startswith("`") and piece.endswith("`") and len(piece) > 1):
            piece = piece.replace("\\", "\\\\").replace("<", "\\<").replace("*", "\\*")
        if in_table:
            piece = piece.replace("|", "\\|")
        pieces.append(piece)
    return "".join(pieces)


def code(text: str, in_table: bool = True) -> str:
    """A code span that survives a table cell (and never contains a backtick it cannot hold)."""
    text = text.replace("`", "'")
    if in_table:
        text = text.replace("|", "\\|")
    return f"`{text}`"


def usage(node: CommandNode) -> str:
    """The usage line, joined from click's pieces rather than formatted to a terminal width."""
    pieces = node.command.collect_usage_pieces(node.ctx)
    return " ".join([node.ctx.command_path, *pieces])


def markup_mode(node: CommandNode) -> str | None:
    """The markup mode that applies to a command: its own, else the nearest group's."""
    ctx = node.ctx
    while ctx is not None:
        mode = getattr(ctx.command, "rich_markup_mode", None)
        if mode is not None:
            return mode
        ctx = ctx.parent
    return None


def param_type(param: Any, ctx: Any) -> str:
    """Type as shown by `--help` (``str``, ``path``, ``int``), plus the range typer checks."""
    if getattr(param, "is_flag", False):
        return "flag"
    if hasattr(param, "display_type"):  # typer parameters
        label = param.display_type(ctx).strip("<>")
    else:  # plain click parameters
        label = param.type.name
    label = label.replace(" range", "")
    listed = re.fullmatch(r"list\[(\w+)\]", label)
    if listed and getattr(param, "multiple", False):
        label = listed.group(1).lower()  # "list[Path]" reads better as "path, repeatable"
    lo, hi = getattr(param, "min", None), getattr(param, "max", None)
    bounds = [f">= {lo}" if lo is not None else "", f"<= {hi}" if hi is not None else ""]
    bounds = [b for b in bounds if b]
    if bounds:
        label += ", " + " and ".join(bounds)
    if getattr(param, "multiple", False):
        label += ", repeatable"
    return label


def _value_text(value: Any) -> str:
    """A default as the user would type it (enum values, paths, comma-joined lists)."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return ",".join(_value_text(v) for v in value)
    return str(value)


def param_default(param: Any) -> str:
    """``required``, the default value, the flag spelling that is on by default, or ``-``."""
    if getattr(param, "required", False):
        return "required"
    default = getattr(param, "default", None)
    if callable(default):
        return "computed"
    if getattr(param, "is_flag", False):
        if getattr(param, "secondary_opts", None):  # --resume / --no-resume
            chosen = param.opts[0] if default else param.secondary_opts[0]
            return code(chosen)
        return "off" if not default else "on"
    if default is None or default == ():
        return "-"
    # A default with a line break would end the table row: show it escaped, as Python would.
    return code(_value_text(default).replace("\n", "\\n"))


def param_names(param: Any, ctx: Any) -> str:
    """``--out``, ``-o`` / ``--resume``, ``--no-resume`` for options; arguments as the usage line names them."""
    if param.param_type_name == "argument":
        return code(" ".join(param.get_usage_pieces(ctx)) or param.name)
    names = sorted(param.opts, key=lambda o: (not o.startswith("--"), o)) + list(param.secondary_opts)
    return ", ".join(code(n) for n in names)


def param_rows(node: CommandNode) -> list[str]:
    """One Markdown table row per visible argument / option of the command."""
    mode = markup_mode(node)
    rows = []
    params = [p for p in node.command.params if not getattr(p, "hidden", False)]
    # Arguments first: they are what the usage line shows positionally.
    params.sort(key=lambda p: p.param_type_name != "argument")
    for param in params:
        kind = "argument" if param.param_type_name == "argument" else "option"
        help_text = " ".join(paragraphs(plain(getattr(param, "help", None), mode))) or "-"
        cells = [param_names(param, node.ctx), kind, code(param_type(param, node.ctx)), param_default(param), md_escape(help_text, True)]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def slug(title: str) -> str:
    """The anchor GitHub gives a heading, so the contents list links work."""
    text = re.sub(r"[^\w\- ]", "", title.lower())
    return text.replace(" ", "-")


def render(command: Any | None = None) -> str:
    """The whole of docs/cli.md as text (deterministic: no widths, dates or paths)."""
    nodes = list(walk(command))
    out = [
        "# `steer` command reference",
        "",
        f"<!-- Generated from cli.py by docs/generate_cli_md.py; do not edit by hand. Regenerate: {REGENERATE} -->",
        "",
        "Every command and option of the `steer` console script, generated from the typer app in "
        "`cli.py`. Every command also takes `--help`, which prints the same text in the terminal. "
        "A task-oriented start is [quickstart.md](quickstart.md); what the tools do is in "
        "[index.md](index.md).",
        "",
        "## Commands",
        "",
    ]
    for node in nodes[1:]:
        depth = len(node.path) - 2
        summary = paragraphs(plain(node.command.get_short_help_str(limit=10_000), markup_mode(node)))
        line = f"{'  ' * depth}- [`{node.name}`](#{slug(node.name)})"
        if summary:
            line += f": {md_escape(summary[0])}"
        out.append(line)
    out.append("")
    for node in nodes:
        level = "#" * min(2 + max(len(node.path) - 2, 0), 4)
        out += [f"{level} {node.name}", ""]
        for para in paragraphs(plain(node.command.help or node.command.short_help, markup_mode(node))):
            out += [md_escape(para), ""]
        out += ["```text", usage(node), "```", ""]
        rows = param_rows(node)
        if rows:
            out += ["| name | kind | type | default | help |", "|---|---|---|---|---|", *rows, ""]
        if node.is_group:
            subs = [n for n in nodes if n.path[:-1] == node.path]
            out += ["Commands: " + ", ".join(f"[`{n.path[-1]}`](#{slug(n.name)})" for n in subs) + ".", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    """Rewrite docs/cli.md, or with --check report (exit 1) whether it is stale."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if docs/cli.md differs from the app")
    parser.add_argument("--out", type=Path, default=CLI_MD, help="file to write or check (default: docs/cli.md)")
    args = parser.parse_args(argv)
    text = render()
    current = args.out.read_text(encoding="utf-8") if args.out.exists() else None
    if args.check:
        if current != text:
            print(f"{args.out} is stale: regenerate it with `{REGENERATE}`", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    if current != text:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        print(f"{args.out} already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
