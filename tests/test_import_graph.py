"""The package layering stated in docs/index.md ("Data flow") holds in the code.

Imports are read with :mod:`ast`, every one of them, including those inside functions: a
lazy import is still a dependency (the old ``steer/eval/datasets.py`` <->
``organism_data.py`` circle was half lazy), so the graph is the one a reader of the code sees.

* the runtime never imports the offline side: nothing under ``steer/`` imports ``calibration``;
* the data layer sits below evaluation: no module in ``steer/data`` imports ``steer.eval``;
* inside ``steer/data`` the imports form no circle;
* each ``steer.data`` module imports on its own, with no other data or evaluation module
  loaded first, and pulls in neither ``steer.eval`` nor ``calibration`` (run in a fresh
  interpreter, so modules the test session already imported cannot hide an ordering bug).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "steer" / "data"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in the file; ``from pkg import sub`` counts as
    ``pkg.sub`` when ``sub`` is a module of this project."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            for alias in node.names:
                sub = ROOT.joinpath(*f"{module}.{alias.name}".split("."))
                if sub.with_suffix(".py").is_file() or (sub / "__init__.py").is_file():
                    found.add(f"{module}.{alias.name}")
    return found


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _data_modules() -> list[str]:
    return sorted(_module_name(p) for p in DATA.glob("*.py"))


def test_the_runtime_never_imports_calibration():
    offenders = [
        f"{_module_name(p)} imports {m}"
        for p in sorted((ROOT / "steer").rglob("*.py"))
        for m in sorted(_imports(p))
        if _within(m, "calibration")
    ]
    assert not offenders, offenders


def test_the_data_layer_never_imports_evaluation():
    offenders = [
        f"{_module_name(p)} imports {m}" for p in sorted(DATA.glob("*.py")) for m in sorted(_imports(p)) if _within(m, "steer.eval")
    ]
    assert not offenders, offenders


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_data_package_has_no_import_circle():
    modules = set(_data_modules())
    graph = {_module_name(p): {m for m in _imports(p) if m in modules and m != _module_name(p)} for p in DATA.glob("*.py")}
    assert graph["steer.data.named_sets"] >= {"steer.data.items", "steer.data.integrity"}  # the graph is really read
    cycle = _find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_cycle_finder_reports_a_circle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


_ISOLATED = """
import importlib, json, sys
import steer  # the runtime package itself; it loads no data, evaluation or calibration module
out = {}
for name in json.loads(sys.argv[1]):
    for loaded in [m for m in sys.modules if m.startswith(("steer.data", "steer.eval", "calibration"))]:
        del sys.modules[loaded]
    importlib.import_module(name)
    out[name] = sorted(m for m in sys.modules if m.startswith(("steer.eval", "calibration")))
print(json.dumps(out))
"""


def test_each_data_module_imports_alone_without_evaluation_or_calibration():
    names = _data_modules()
    # one fresh interpreter (importing torch once per module would cost seconds each); inside it,
    # every data / evaluation / calibration module is dropped before the next import
    proc = subprocess.run([sys.executable, "-c", _ISOLATED, json.dumps(names)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    pulled = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(pulled) == names
    assert {name: mods for name, mods in pulled.items() if mods} == {}


def _stated_graph() -> dict[str, set[str]]:
    """The table in docs/index.md's "Data flow" section: package -> the packages it imports."""
    lines = (ROOT / "docs" / "index.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| package | what it is | imports"))
    stated = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        stated[cells[0].strip("`")] = {c.strip("` ") for c in cells[2].split(",")} if "`" in cells[2] else set()
    return stated


def _package_of(module: str, packages: list[str]) -> str | None:
    """The longest package in ``packages`` that holds ``module``."""
    holders = [p for p in packages if _within(module, p)]
    return max(holders, key=len) if holders else None


def test_the_import_graph_in_docs_index_is_the_code_s():
    stated = _stated_graph()
    assert {"steer", "steer.data", "calibration", "steer.eval", "cli", "cli_options", "cli_groups"} <= set(stated)
    packages = sorted(stated)
    files = sorted((ROOT / "steer").rglob("*.py")) + sorted((ROOT / "calibration").rglob("*.py")) + [ROOT / "cli.py", ROOT / "cli_options.py", ROOT / "cli_groups.py"]
    actual: dict[str, set[str]] = {p: set() for p in packages}
    where: dict[tuple[str, str], str] = {}
    for path in files:
        mine = _package_of(_module_name(path), packages)
        for module in _imports(path):
            theirs = _package_of(module, packages)
            if theirs is not None and theirs != mine:
                actual[mine].add(theirs)
                where.setdefault((mine, theirs), f"{_module_name(path)} imports {module}")
    unstated = [where[(a, b)] for a in packages for b in sorted(actual[a] - stated[a])]
    stale = [f"{a} -> {b}" for a in packages for b in sorted(stated[a] - actual[a])]
    assert not unstated, f"imports docs/index.md does not state (move the import, or update the table): {unstated}"
    assert not stale, f"docs/index.md states imports the code no longer has: {stale}"
