"""Where each named benchmark comes from: pinned upstream files, their SHA-256, their licence.

Every named set (``figstep``, ``advbench``, ...) is a few files of a public GitHub
repository at a fixed commit, the same commits and files recorded in this project's
``../shared/data/*/SOURCE.md``.  ``upstream.json`` (next to this module) lists each file's
local path, byte size and SHA-256, exactly as ``../shared/data/manifest.json`` does; the
rules below turn a local path into its upstream URL.  Nothing is fetched here: this module
only answers "which files, from where, with which hash, under which licence".

Local paths keep the shared layout (``advbench/harmful_behaviors.csv``), so the same
readers work on ``../shared/data``, on a ``--data-dir`` copy and on the fetch cache.

Rebuild ``upstream.json`` from a manifest with
``python -m steer.data.registry PATH/TO/manifest.json``.
"""

from __future__ import annotations

import fnmatch
import json
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

__all__ = [
    "GITHUB_RAW",
    "FileEntry",
    "Folder",
    "NamedSet",
    "FOLDERS",
    "SETS",
    "set_names",
    "registry_files",
    "files_of_set",
    "read_files_of_set",
    "upstream_url",
]

#: The host that serves a repository's file at a commit: ``{base}/{owner}/{repo}/{commit}/{path}``.
GITHUB_RAW = "https://raw.githubusercontent.com"


@dataclass(frozen=True)
class Folder:
    """One shared-data folder and the repository commit its files come from.

    ``paths`` maps a local name (or a ``prefix/``) to the upstream path (or prefix);
    ``pins`` gives a different commit for single files (upstream moved or edited them).
    """

    name: str
    repo: str
    commit: str
    paths: tuple[tuple[str, str], ...]
    licence: str
    non_commercial: bool = False
    pins: tuple[tuple[str, str], ...] = ()
    #: written as LICENSE.md when upstream has no licence file to fetch
    licence_note: str | None = None


@dataclass(frozen=True)
class NamedSet:
    """A name a user types (``figstep-tiny``) and the files of its folder it needs."""

    name: str
    folder: str
    items: str
    what: str
    #: fnmatch patterns of local names inside the folder; ``("*",)`` = the whole folder
    patterns: tuple[str, ...] = ("*",)
    #: fetched with the set but not read by its reader, so a copy without them still counts
    extras: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileEntry:
    """One file of a store: local path, size, SHA-256 and kind (``data`` / ``license``)."""

    path: str
    bytes: int
    sha256: str
    kind: str


FOLDERS: dict[str, Folder] = {f.name: f for f in (
    Folder(
        "figstep", "ThuCCSLab/FigStep", "0861b17b3d67887c06ee3534ec65b3012f9becb7",
        (("images/", "data/images/SafeBench/"), ("images-tiny/", "data/images/SafeBench-Tiny/"),
         ("LICENSE", "LICENSE"), ("", "data/question/")),
        licence="MIT",
    ),
    Folder(
        "xstest", "paul-rottger/exaggerated-safety", "d7bb5bd738c1fcbc36edd83d5e7d1b71a3e2d84d",
        (("", ""),), licence="CC-BY-4.0",
        pins=(("xstest_v2_prompts.csv", "a3bb396ddc1939c6f264f17b7cf5b7a5d82833de"),),
    ),
    Folder(
        "advbench", "Matias222/llm-ataques", "098262edf85f807224e70ecd87b9d83716bf6b73",
        (("LICENSE", "LICENSE"), ("", "data/advbench/")), licence="MIT",
    ),
    Folder(
        "harmbench", "busycalibrating/AdversariaLLM", "a4b57364bc2b0785bd0e6f79eec4948e3991b8b0",
        (("", "data/behavior_datasets/"),), licence="MIT",
        pins=(("LICENSE.txt", "f970939273ea17b491fadf6001fddc36ed3ae3ff"),),
    ),
    Folder(
        "mm-safetybench", "syk1052/MM-SafetyBench", "b80eedea3db312c09ded2082813390f68e750ef3",
        (("TinyVersion_ID_List.json", "TinyVersion_ID_List.json"), ("", "data/processed_questions/")),
        licence="CC-BY-NC-4.0", non_commercial=True,
        licence_note=(
            "MM-SafetyBench (github isXinLiu/MM-SafetyBench) has no LICENSE file. Its README\n"
            "states that the dataset is for research use only, under CC BY-NC 4.0 (non-commercial\n"
            "use only), and also bound by the GPT-4 and Stable Diffusion licence terms.\n"
            "Licence text: https://creativecommons.org/licenses/by-nc/4.0/\n"
        ),
    ),
    Folder(
        "harmless-alpaca", "andyrdt/refusal_direction", "9d852fae1a9121c78b29142de733cb1340770cc3",
        (("LICENSE", "LICENSE"), ("", "dataset/splits/")),
        licence="CC-BY-NC-4.0 (Alpaca text; code Apache-2.0)", non_commercial=True,
    ),
)}

SETS: dict[str, NamedSet] = {s.name: s for s in (
    NamedSet("figstep", "figstep", "500", "SafeBench typographic images + FigStep prompt (harmful)",
             ("safebench.csv", "benign_sentences_without_harmful_phase.csv", "images/*", "LICENSE"),
             extras=("benign_sentences_without_harmful_phase.csv",)),
    NamedSet("figstep-tiny", "figstep", "50", "SafeBench-Tiny, same format",
             ("SafeBench-Tiny.csv", "images-tiny/*", "LICENSE")),
    NamedSet("advbench", "advbench", "520", "AdvBench harmful behaviours (text)"),
    NamedSet("harmbench", "harmbench", "400", "HarmBench text behaviours (:test 320, :val 80)",
             extras=("harmbench_behaviors_multimodal_all.csv",)),
    NamedSet("mm-safetybench", "mm-safetybench", "1680", "MM-SafetyBench questions, text only (:tiny 168)"),
    NamedSet("xstest-safe", "xstest", "250", "XSTest safe look-alike prompts (benign)",
             extras=("xstest_v2_prompts.csv",)),
    NamedSet("xstest-unsafe", "xstest", "200", "XSTest unsafe contrast prompts (harmful)",
             extras=("xstest_v2_prompts.csv",)),
    NamedSet("harmless-alpaca", "harmless-alpaca", "6266", "Alpaca harmless instructions (:train/:val/:test)"),
)}


def set_names() -> tuple[str, ...]:
    """Every fetchable set name, in listing order."""
    return tuple(SETS)


def _upstream(local: str) -> tuple[Folder, str, str]:
    """(folder, commit, upstream path) of a local path such as ``figstep/images/x.png``."""
    folder_name, _, name = local.partition("/")
    folder = FOLDERS.get(folder_name)
    if folder is None or not name:
        raise KeyError(f"no upstream source for {local!r}")
    commit = dict(folder.pins).get(name, folder.commit)
    for mine, theirs in folder.paths:
        if mine.endswith("/") and name.startswith(mine):
            return folder, commit, theirs + name[len(mine):]
        if name == mine:
            return folder, commit, theirs
        if mine == "" and "/" not in name:
            return folder, commit, theirs + name
    raise KeyError(f"no upstream source for {local!r}")


def upstream_url(local: str, base: str = GITHUB_RAW) -> str:
    """The raw-file URL of a local path at its pinned commit (``base`` replaces the GitHub host)."""
    folder, commit, path = _upstream(local)
    return f"{base.rstrip('/')}/{folder.repo}/{commit}/{path}"


def entries_from_manifest(doc: dict) -> dict[str, FileEntry]:
    """The fetchable (``data`` / ``license``) entries of a shared-style ``manifest.json`` document."""
    return {
        e["path"]: FileEntry(e["path"], int(e["bytes"]), e["sha256"], e["kind"])
        for e in doc["files"]
        if e.get("kind") in ("data", "license")
    }


@lru_cache(maxsize=1)
def registry_files() -> dict[str, FileEntry]:
    """The embedded list of upstream files (``upstream.json``), keyed by local path."""
    doc = json.loads((Path(__file__).with_name("upstream.json")).read_text(encoding="utf-8"))
    return entries_from_manifest(doc)


def files_of_set(name: str, entries: dict[str, FileEntry] | None = None) -> list[FileEntry]:
    """The files named set ``name`` needs, from ``entries`` (default: the embedded registry)."""
    spec = SETS[name]
    entries = registry_files() if entries is None else entries
    prefix = spec.folder + "/"
    out = []
    for path, entry in sorted(entries.items()):
        if path.startswith(prefix) and any(fnmatch.fnmatchcase(path[len(prefix):], p) for p in spec.patterns):
            out.append(entry)
    return out


def read_files_of_set(name: str, entries: dict[str, FileEntry] | None = None) -> list[FileEntry]:
    """The data files set ``name``'s reader opens (:func:`files_of_set` less licences and extras)."""
    spec = SETS[name]
    return [e for e in files_of_set(name, entries) if e.kind == "data"
            and not any(fnmatch.fnmatchcase(e.path[len(spec.folder) + 1:], p) for p in spec.extras)]


def _write_registry(manifest_path: Path, out: Path) -> int:
    doc = json.loads(manifest_path.read_text(encoding="utf-8"))
    entries = entries_from_manifest(doc)
    for path in entries:
        upstream_url(path)  # every file must map to an upstream URL
    files = [{"path": e.path, "bytes": e.bytes, "sha256": e.sha256, "kind": e.kind} for e in entries.values()]
    body = {"description": "Pinned upstream files of steer's named sets (from ../shared/data/manifest.json).",
            "algorithm": "sha256", "files": files}
    out.write_text(json.dumps(body, indent=0) + "\n", encoding="utf-8")
    return len(files)


def _main(argv: Iterable[str]) -> None:
    args = list(argv)
    if len(args) != 1:
        raise SystemExit("usage: python -m steer.data.registry PATH/TO/manifest.json")
    n = _write_registry(Path(args[0]), Path(__file__).with_name("upstream.json"))
    print(f"wrote {n} entries")


if __name__ == "__main__":
    _main(sys.argv[1:])
