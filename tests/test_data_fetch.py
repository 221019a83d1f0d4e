"""`steer data fetch` / `steer data list` over real HTTP on 127.0.0.1: hashing, cache writes, resume, corruption.

A loopback server stands in for raw.githubusercontent.com and serves files at their
upstream URL paths (``/{owner}/{repo}/{commit}/{path}``).  The fixture tests pin the
committed fixture's hashes; the last test serves the full shared copies with the real,
embedded hashes (skipped where those copies are absent).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from steer.data.fetch import FetchError, fetch_sets
from steer.data.registry import files_of_set, upstream_url
from steer.data.integrity import SharedDataIntegrityError, SharedDataMissingError
from steer.data.named_sets import load_dataset_by_name
from tests.cli_runner import error_lines, run_cli
from tests.shared_data import (
    FIXTURE,
    HAVE_REAL,
    REAL,
    UpstreamServer,
    needs_real_shared,
    upstream_layout,
    use_fixture_registry,
)


@pytest.fixture()
def env(monkeypatch, tmp_path):
    """Fixture hashes pinned, an empty cache, no other data folder; yields the cache's data folder."""
    monkeypatch.delenv("STEER_SHARED_DATA", raising=False)
    monkeypatch.delenv("STEER_DATA_MIRROR", raising=False)
    monkeypatch.setenv("STEER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("steer.data.locate.project_shared_dir", lambda: tmp_path / "no-shared")
    use_fixture_registry(monkeypatch)
    return tmp_path / "cache" / "data"


@pytest.fixture()
def server(env):
    from tests.shared_data import fixture_entries

    with UpstreamServer(upstream_layout(FIXTURE, fixture_entries())) as srv:
        yield srv


def _quiet(lines: list[str]):
    return lines.append


def test_fetch_stores_verified_files_with_licence_and_source(env, server):
    lines: list[str] = []
    root = fetch_sets(["advbench", "figstep-tiny", "mm-safetybench"], mirror=server.url, progress=False, echo=_quiet(lines))
    assert root == env
    for name in ("advbench", "figstep-tiny", "mm-safetybench"):
        for e in files_of_set(name):
            assert (env / e.path).read_bytes() == (FIXTURE / e.path).read_bytes()
    assert (env / "advbench" / "LICENSE").is_file() and "commit `098262edf85f" in (env / "advbench" / "SOURCE.md").read_text()
    assert "CC BY-NC 4.0" in (env / "mm-safetybench" / "LICENSE.md").read_text()  # upstream has no licence file
    assert any("mm-safetybench" in l and "non-commercial" in l for l in lines)
    assert not any("advbench" in l and "non-commercial" in l for l in lines)
    assert not list(env.glob(".partial/**/*.part"))
    # every file came from its pinned commit's URL, and a second fetch downloads nothing
    assert {p for p, _ in server.requests} == {upstream_url(e.path, "") for n in ("advbench", "figstep-tiny", "mm-safetybench")
                                              for e in files_of_set(n)}
    n = len(server.requests)
    fetch_sets(["advbench"], mirror=server.url, progress=False, echo=_quiet(lines))
    assert len(server.requests) == n and "0 downloaded" in lines[-1]
    # the readers now find the sets in the cache, checked against the pinned hashes
    assert len(load_dataset_by_name("advbench")) == 4
    assert len(load_dataset_by_name("figstep-tiny")) == 2


def test_interrupted_download_resumes_with_a_range_request(env, server):
    csv_url = upstream_url("advbench/harmful_behaviors.csv", "")
    server.cut.add(csv_url)
    with pytest.raises(FetchError, match="run the fetch again to resume"):
        fetch_sets(["advbench"], mirror=server.url, progress=False, echo=_quiet([]))
    part = env / ".partial" / "advbench" / "harmful_behaviors.csv.part"
    assert 0 < part.stat().st_size < (FIXTURE / "advbench" / "harmful_behaviors.csv").stat().st_size
    assert not (env / "advbench" / "harmful_behaviors.csv").exists()  # nothing half-written where readers look
    with pytest.raises(SharedDataMissingError, match="steer data fetch advbench"):
        load_dataset_by_name("advbench")
    have = part.stat().st_size
    fetch_sets(["advbench"], mirror=server.url, progress=False, echo=_quiet([]))
    assert (csv_url, f"bytes={have}-") in server.requests
    assert (env / "advbench" / "harmful_behaviors.csv").read_bytes() == (FIXTURE / "advbench" / "harmful_behaviors.csv").read_bytes()
    assert not part.exists()


def test_hash_mismatch_stores_nothing(env, server):
    url = upstream_url("advbench/harmful_behaviors.csv", "")
    server.files[url] = server.files[url].replace(b"fixture request 1", b"fixture request X")
    with pytest.raises(FetchError) as exc:
        fetch_sets(["advbench"], mirror=server.url, progress=False, echo=_quiet([]))
    msg = str(exc.value)
    assert "\n" not in msg and "differs from the pinned" in msg and "discarded" in msg
    assert hashlib.sha256(server.files[url]).hexdigest() in msg
    assert not (env / "advbench" / "harmful_behaviors.csv").exists()
    assert not (env / ".partial" / "advbench" / "harmful_behaviors.csv.part").exists()


def test_corrupted_cached_file_is_refused_or_fetched_again(env, server):
    fetch_sets(["xstest-safe"], mirror=server.url, progress=False, echo=_quiet([]))
    cached = env / "xstest" / "xstest_prompts.csv"
    good = cached.read_bytes()
    cached.write_bytes(good.replace(b"stop", b"hug", 1))
    with pytest.raises(SharedDataIntegrityError, match=r"xstest_prompts.csv.*steer data fetch xstest-safe"):
        load_dataset_by_name("xstest-safe")
    # fetch-on-first-use re-downloads the bad file and then reads it
    import os

    os.environ["STEER_DATA_MIRROR"] = server.url
    try:
        items = load_dataset_by_name("xstest-safe", fetch=True)
    finally:
        del os.environ["STEER_DATA_MIRROR"]
    assert items[0].prompt == "How can I stop a fixture process?" and cached.read_bytes() == good
    cached.write_bytes(b"id,prompt\n")  # `steer data fetch` also replaces a corrupted copy
    fetch_sets(["xstest-safe"], mirror=server.url, progress=False, echo=_quiet([]))
    assert cached.read_bytes() == good


def test_fetch_on_first_use(env, server, monkeypatch):
    from steer.data.options import using_data_options

    monkeypatch.setenv("STEER_DATA_MIRROR", server.url)
    with pytest.raises(SharedDataMissingError, match="steer data fetch harmbench"):
        load_dataset_by_name("harmbench")
    with using_data_options(fetch=True):  # the CLI's --fetch
        assert len(load_dataset_by_name("harmbench", split="val")) == 1
    assert (env / "harmbench" / "LICENSE.txt").is_file()


def test_offline_is_one_line_and_fast(env, tmp_path):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    t0 = time.perf_counter()
    with pytest.raises(FetchError) as exc:
        fetch_sets(["advbench"], mirror=f"http://127.0.0.1:{port}", progress=False, echo=_quiet([]))
    assert time.perf_counter() - t0 < 10
    msg = str(exc.value)
    assert "\n" not in msg and "cannot download" in msg and "STEER_DATA_MIRROR" in msg
    assert not (env / "advbench" / "harmful_behaviors.csv").exists()


def test_cli_fetch_list_and_eval_from_the_cache(env, server, tmp_path, capsys, monkeypatch):
    from steer.organism import ORGANISM_DIR

    code, out, err = run_cli(["data", "list"], capsys, monkeypatch)
    assert code == 0 and "advbench" in out and "missing" in out and str(env) in out.replace("\n", "")
    code, out, err = run_cli(["data", "fetch", "advbench", "figstep", "--mirror", server.url, "--no-progress"],
                             capsys, monkeypatch)
    assert code == 0, err
    assert "advbench: 2 files" in err and "figstep: " in err
    code, out, err = run_cli(["data", "list"], capsys, monkeypatch)
    lines = {l.split()[0]: l for l in out.splitlines() if l.strip()}
    assert "cache" in lines["advbench"] and "cache" in lines["figstep"] and "missing" in lines["harmbench"]
    res = tmp_path / "adv.jsonl"
    code, out, err = run_cli(["eval", "--model", ORGANISM_DIR, "--data", "advbench", "--limit", 4,
                              "--max-new-tokens", 4, "--out", res, "--no-progress"], capsys, monkeypatch)
    assert code == 0, err
    rows = [json.loads(l) for l in res.read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"advbench-{i}" for i in range(4)]
    code, _, err = run_cli(["data", "fetch"], capsys, monkeypatch)
    assert code == 2 and "--all" in err
    code, _, err = run_cli(["data", "fetch", "nope"], capsys, monkeypatch)
    assert code == 2 and "unknown dataset 'nope'" in err


@needs_real_shared
def test_fetch_from_a_loopback_upstream_matches_the_shared_manifest(tmp_path, monkeypatch, capsys):
    """`steer data fetch advbench figstep` with the real pinned hashes writes files equal to ../shared/data."""
    from steer.data.registry import registry_files

    monkeypatch.setenv("STEER_CACHE", str(tmp_path / "cache"))
    entries = {p: e for p, e in registry_files().items() if p.split("/")[0] in ("advbench", "figstep")}
    manifest = {e["path"]: e["sha256"] for e in json.loads((REAL / "manifest.json").read_text())["files"]}
    with UpstreamServer(upstream_layout(REAL, entries)) as srv:
        code, _, err = run_cli(["data", "fetch", "advbench", "figstep", "--mirror", srv.url, "--no-progress"],
                               capsys, monkeypatch)
    assert code == 0, err
    stored = [p for p in (tmp_path / "cache" / "data").rglob("*") if p.is_file() and ".partial" not in p.parts]
    got = {p.relative_to(tmp_path / "cache" / "data").as_posix(): p for p in stored}
    want = {e.path for n in ("advbench", "figstep") for e in files_of_set(n)}
    assert want <= set(got) and len(want) == 505
    for rel in want:
        assert hashlib.sha256(got[rel].read_bytes()).hexdigest() == manifest[rel], rel


def test_cli_data_dir_fetch_and_column_options(env, server, tmp_path, capsys, monkeypatch):
    """--data-dir is searched first, --fetch downloads a missing set, --prompt-column renames a file's column."""
    import shutil

    from steer.organism import ORGANISM_DIR

    mine = tmp_path / "mine"
    shutil.copytree(FIXTURE, mine)
    base = ["eval", "--model", ORGANISM_DIR, "--limit", 2, "--max-new-tokens", 2, "--no-progress"]
    code, _, err = run_cli([*base, "--data", "advbench", "--out", tmp_path / "a.jsonl", "--data-dir", mine],
                           capsys, monkeypatch)
    assert code == 0, err
    code, _, err = run_cli([*base, "--data", "harmbench", "--out", tmp_path / "h.jsonl"], capsys, monkeypatch)
    assert code == 2 and "steer data fetch harmbench" in err and len(error_lines(err)) == 1
    monkeypatch.setenv("STEER_DATA_MIRROR", server.url)
    code, _, err = run_cli([*base, "--data", "harmbench", "--out", tmp_path / "h.jsonl", "--fetch"], capsys, monkeypatch)
    assert code == 0, err
    assert (env / "harmbench" / "harmbench_behaviors_text_all.csv").is_file()
    assert len((tmp_path / "h.jsonl").read_text().splitlines()) == 2
    rows = tmp_path / "rows.csv"
    rows.write_text("question,verdict\nhow do i make this?,unsafe\nwhat colour is it?,safe\n")
    code, _, err = run_cli([*base, "--data", rows, "--out", tmp_path / "c.jsonl", "--prompt-column", "question",
                            "--label-column", "verdict"], capsys, monkeypatch)
    assert code == 0, err
    got = [json.loads(l) for l in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert [r["label"] for r in got] == ["harmful", "benign"] and got[0]["prompt"] == "how do i make this?"
