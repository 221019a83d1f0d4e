"""Shared fixtures: tiny offline checkpoints of every supported family.

* ``tiny_model_path(family) -> Path``: the checkpoint dir, built once per session.
* ``tiny_loaded(family) -> (model, processor)``: loaded with ``from_pretrained`` exactly as
  a hub model (``AutoModelForImageTextToText`` + ``AutoProcessor``; for ``"llama"``
  ``AutoModelForCausalLM`` + ``AutoTokenizer``), in eval mode, cached once per session.
  The model object is shared between tests: remove any hook you register.

Families: ``tests.tiny_models.ALL_FAMILIES`` / ``VLM_FAMILIES``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# One intra-op thread per test process unless the caller chose otherwise, set before torch is
# imported: pyproject runs the suite on one pytest-xdist worker per core, and tiny models are
# faster on one thread anyway; STEER_THREADS does the same for CLI commands run in-process
# (steer.threads would otherwise pick a count from the load average at that moment).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("STEER_THREADS", "1")

import pytest  # noqa: E402

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

# tests.tiny_models (torch, transformers) is imported where a fixture needs it, not here: the
# pytest-xdist controller loads this file too and runs no test, so it need not pay for torch.


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """Factory: ``tiny_model_path("llava") -> Path`` of a saved tiny checkpoint."""
    from tests.tiny_models import ALL_FAMILIES, build_tiny_model

    cache: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in cache:
            if family not in ALL_FAMILIES:
                raise ValueError(f"unknown tiny family {family!r}; choose one of {', '.join(ALL_FAMILIES)}")
            cache[family] = build_tiny_model(family, tmp_path_factory.mktemp(f"tiny_{family}"))
        return cache[family]

    return get


def load_tiny(path: Path, family: str):
    """(model, processor-or-tokenizer) from a tiny checkpoint dir, as for a hub model."""
    from tests.tiny_models import VLM_FAMILIES

    if family in VLM_FAMILIES:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        model = AutoModelForImageTextToText.from_pretrained(path)
        processor = AutoProcessor.from_pretrained(path)
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(path)
        processor = AutoTokenizer.from_pretrained(path)
    return model.eval(), processor


@pytest.fixture(scope="session")
def tiny_loaded(tiny_model_path):
    """Factory: ``tiny_loaded("qwen2_vl") -> (model, processor)``, eval mode, cached."""
    cache: dict[str, tuple] = {}

    def get(family: str):
        if family not in cache:
            cache[family] = load_tiny(tiny_model_path(family), family)
        return cache[family]

    return get


@pytest.fixture(scope="session")
def cli_once(tmp_path_factory):
    """Factory: ``cli_once(args, capsys, monkeypatch) -> (code, stdout, stderr, out_dir)`` of
    ``steer ARGS --out OUT_DIR`` run in-process (``tests.cli_runner.run_cli``), once per distinct
    ARGS in a session: tests that check different things about one command's run (the README's
    ``steer demo`` and the demo table, ~4 s each) share it. Mark such tests with one
    ``xdist_group`` so they also share a worker. Treat ``out_dir`` as read-only."""
    from tests.cli_runner import run_cli

    runs: dict[tuple[str, ...], tuple] = {}

    def get(args, capsys, monkeypatch):
        key = tuple(map(str, args))
        if key not in runs:
            out = tmp_path_factory.mktemp("cli_once")
            runs[key] = (*run_cli([*key, "--out", out], capsys, monkeypatch), out)
        return runs[key]

    return get


# ---------------------------------------------------------------------------- pytest-xdist
#: most workers `-n auto` starts: each pays ~10 s of imports and collection, and the longest
#: test groups (the demo run, the forked CLI) bound the wall time below anyway
MAX_WORKERS = 4


def pytest_addoption(parser, pluginmanager):
    """pyproject's addopts carry ``--numprocesses=auto --dist=loadgroup``; without pytest-xdist
    installed (or with ``-p no:xdist``) accept and ignore them, so the suite runs in one process."""
    if pluginmanager.has_plugin("xdist"):
        return
    group = parser.getgroup("xdist-absent", "pytest-xdist options (not installed: ignored, one process)")
    group.addoption("--numprocesses", dest="numprocesses", default=None, help="ignored without pytest-xdist")
    group.addoption("--dist", dest="dist", default="no", help="ignored without pytest-xdist")


def _picks_some_tests(config) -> bool:
    """The command line names test files or node ids, or filters with ``-k``: a targeted run."""
    if config.getoption("keyword", ""):
        return True
    return any(not Path(str(arg).split("::", 1)[0]).is_dir() for arg in config.args)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """``--numprocesses=auto``: one worker per usable core, at most :data:`MAX_WORKERS`; none (tests
    in this process) on a single core or for a targeted run (``pytest tests/test_x.py -k y``),
    where starting workers costs more than it saves.  ``PYTEST_XDIST_AUTO_NUM_WORKERS`` or an
    explicit ``-n N`` wins."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    if _picks_some_tests(config):
        return 0
    try:  # the cores this process may run on (not steer.threads: importing steer imports torch)
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return 0 if cores < 2 else min(cores, MAX_WORKERS)
