"""The one artifact reader (:mod:`steer.artifact`): every kind round-trips through it, and
every wrong, damaged, missing or too-new file is refused in one line that names the file
(and, for a file of another kind, the kind found and the kind expected), through each
kind's own loader as well as through :func:`read_artifact` itself.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from steer.artifact import ARTIFACT_KINDS, KIND_WHEN_UNRECORDED, check_artifact_path, read_artifact, write_artifact
from steer.errors import SteerInputError
from steer.gate import ProbeGate
from steer.projector import ProjectorArtifact
from steer.vectors import ShiftVectors

D = 6


def _vectors() -> ShiftVectors:
    return ShiftVectors({0: torch.arange(D, dtype=torch.float32), 2: -torch.ones(D)}, metadata={"method": "cmrm"})


def _probe() -> ProbeGate:
    return ProbeGate(layer=1, mean=torch.zeros(D), scale=torch.ones(D), coef=torch.linspace(-1, 1, D),
                     intercept=torch.tensor([0.25]), threshold=0.4)


def _projector() -> ProjectorArtifact:
    return ProjectorArtifact({"linear.weight": torch.eye(D), "linear.bias": torch.zeros(D)}, {"layers": [1, 2]})


#: kind -> (a small artifact of that kind, the loader of that kind)
MAKERS: dict[str, tuple[Callable[[], Any], Callable[[Path], Any]]] = {
    "vectors": (_vectors, ShiftVectors.load),
    "probe": (_probe, ProbeGate.load),
    "tga_projector": (_projector, ProjectorArtifact.load),
}


def _save(kind: str, folder: Path) -> Path:
    return MAKERS[kind][0]().save(folder / f"{kind}.safetensors")


def _rewrite_meta(src: Path, dst: Path, change: Callable[[dict], dict] | None = None, raw: str | None = None) -> Path:
    """A copy of ``src`` whose steer metadata is changed (or replaced by ``raw`` text)."""
    with safe_open(str(src), framework="pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        meta = json.loads(fh.metadata()["steer"])
    save_file(tensors, str(dst), metadata={"steer": raw if raw is not None else json.dumps(change(meta))})
    return dst


def _refusals(path: Path, kind: str) -> list[str]:
    """The messages of read_artifact and of the kind's loader for ``path`` (both must refuse)."""
    messages = []
    for read in (lambda p: read_artifact(p, kind), MAKERS[kind][1]):
        with pytest.raises(SteerInputError) as err:
            read(path)
        message = str(err.value)
        assert "\n" not in message
        messages.append(message)
    return messages


def test_every_kind_has_a_maker_here():
    assert set(MAKERS) == set(ARTIFACT_KINDS)


@pytest.mark.parametrize("kind", sorted(ARTIFACT_KINDS))
def test_each_kind_round_trips_through_read_artifact(tmp_path, kind):
    original = MAKERS[kind][0]()
    path = original.save(tmp_path / "a.safetensors")
    tensors, meta = read_artifact(path, kind)
    assert meta["kind"] == kind and meta["format_version"] == ARTIFACT_KINDS[kind].format_version
    assert meta["toolkit_version"] and meta["created"]
    assert meta == original.metadata  # save() keeps what it wrote
    loaded = MAKERS[kind][1](path)
    assert loaded.metadata == meta
    if kind == "vectors":
        assert sorted(tensors) == ["shift.0", "shift.2"]
        assert all(torch.equal(loaded.shifts[l], original.shifts[l]) for l in original.layers)
    elif kind == "probe":
        assert sorted(tensors) == ["coef", "intercept", "mean", "scale"] and loaded == original
    else:
        assert sorted(tensors) == ["projector.linear.bias", "projector.linear.weight"]
        assert all(torch.equal(loaded.projector[k], v) for k, v in original.projector.items())


def test_write_artifact_sets_kind_and_version_over_what_the_caller_passed(tmp_path):
    path = tmp_path / "w.safetensors"
    meta = write_artifact(path, {"shift.0": torch.ones(D)}, {"kind": "probe", "format_version": 99, "created": "then"}, "vectors")
    assert meta["kind"] == "vectors" and meta["format_version"] == 1 and meta["created"] == "then"
    assert read_artifact(path, "vectors")[1] == meta


@pytest.mark.parametrize("found,expected", list(itertools.permutations(sorted(ARTIFACT_KINDS), 2)))
def test_a_file_of_another_kind_is_refused_naming_file_and_both_kinds(tmp_path, found, expected):
    path = _save(found, tmp_path)
    for message in _refusals(path, expected):
        assert message.startswith(f"{path} is a {ARTIFACT_KINDS[found].noun} (kind {found!r})"), message
        assert f"not a {ARTIFACT_KINDS[expected].noun} (kind {expected!r})" in message
        assert f"`{ARTIFACT_KINDS[expected].make_with}`" in message


@pytest.mark.parametrize("expected", ["probe", "tga_projector"])
def test_a_file_without_kind_is_read_as_a_vector_file(tmp_path, expected):
    path = _rewrite_meta(_save("vectors", tmp_path), tmp_path / "nokind.safetensors",
                         lambda m: {k: v for k, v in m.items() if k != "kind"})
    assert read_artifact(path, KIND_WHEN_UNRECORDED)[1].get("kind") is None
    ShiftVectors.load(path)
    for message in _refusals(path, expected):
        assert f"{path} is a vector file (no kind recorded, so read as 'vectors'), not a" in message


@pytest.mark.parametrize("kind", sorted(ARTIFACT_KINDS))
def test_an_unknown_kind_is_refused(tmp_path, kind):
    path = _rewrite_meta(_save(kind, tmp_path), tmp_path / "odd.safetensors", lambda m: dict(m, kind="lora"))
    for message in _refusals(path, kind):
        assert message.startswith(f"{path} is a steer file of an unknown kind (kind 'lora'), not a")


@pytest.mark.parametrize("kind", sorted(ARTIFACT_KINDS))
def test_a_newer_format_version_is_refused(tmp_path, kind):
    supported = ARTIFACT_KINDS[kind].format_version
    path = _rewrite_meta(_save(kind, tmp_path), tmp_path / "future.safetensors",
                         lambda m: dict(m, format_version=supported + 1))
    for message in _refusals(path, kind):
        assert message.startswith(f"{path} is a {ARTIFACT_KINDS[kind].noun} of format version {supported + 1}")
        assert f"(up to {supported}): upgrade steer" in message


@pytest.mark.parametrize("kind", sorted(ARTIFACT_KINDS))
def test_a_kind_mismatch_is_reported_before_a_newer_version(tmp_path, kind):
    other = next(k for k in sorted(ARTIFACT_KINDS) if k != kind)
    path = _rewrite_meta(_save(other, tmp_path), tmp_path / "future.safetensors", lambda m: dict(m, format_version=9))
    assert all(f"(kind {other!r}), not a" in m for m in _refusals(path, kind))


@pytest.mark.parametrize("kind", sorted(ARTIFACT_KINDS))
def test_a_missing_file_or_a_folder_is_refused(tmp_path, kind):
    noun = ARTIFACT_KINDS[kind].noun
    missing = tmp_path / "missing.safetensors"
    for message in _refusals(missing, kind):
        assert message == f"{noun} not found: {missing} (make one with `{ARTIFACT_KINDS[kind].make_with}`)"
    for message in _refusals(tmp_path, kind):
        assert message == f"{noun} path is a folder, not a file: {tmp_path}"
    for bad in (missing, tmp_path):  # the early check (before a model loads) says the same as the reader
        with pytest.raises(SteerInputError) as early:
            check_artifact_path(str(bad), kind)
        assert str(early.value) == _refusals(bad, kind)[0]
    assert check_artifact_path(str(_save(kind, tmp_path)), kind) == tmp_path / f"{kind}.safetensors"


@pytest.mark.parametrize("kind", sorted(ARTIFACT_KINDS))
def test_a_truncated_or_foreign_file_is_refused(tmp_path, kind):
    whole = _save(kind, tmp_path).read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(whole[: len(whole) - 7])  # the header promises bytes that are not there
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    for path in (cut, junk):
        for message in _refusals(path, kind):
            assert message.startswith(f"{path} is not a readable safetensors {ARTIFACT_KINDS[kind].noun}")


@pytest.mark.parametrize("kind", sorted(ARTIFACT_KINDS))
def test_metadata_that_is_missing_not_json_or_not_an_object_is_refused(tmp_path, kind):
    src = _save(kind, tmp_path)
    bare = tmp_path / "bare.safetensors"
    save_file({"x": torch.ones(2)}, str(bare))
    for message in _refusals(bare, kind):
        assert message.startswith(f"{bare} has no steer metadata")
    broken = _rewrite_meta(src, tmp_path / "broken.safetensors", raw='{"kind": "vectors", ')
    for message in _refusals(broken, kind):
        assert re.match(rf"{re.escape(str(broken))}: the steer metadata is not JSON \(.*\); the file is damaged$", message)
    listed = _rewrite_meta(src, tmp_path / "list.safetensors", raw="[1, 2]")
    for message in _refusals(listed, kind):
        assert message == f"{listed}: the steer metadata is a JSON list, not an object; the file is damaged"


@pytest.mark.parametrize("kind", sorted(ARTIFACT_KINDS))
def test_non_finite_tensors_are_refused(tmp_path, kind):
    src = _save(kind, tmp_path)
    with safe_open(str(src), framework="pt") as fh:
        tensors = {k: fh.get_tensor(k).clone() for k in fh.keys()}
        meta = fh.metadata()
    first = sorted(tensors)[0]
    tensors[first].view(-1)[0] = float("inf")
    bad = tmp_path / "inf.safetensors"
    save_file(tensors, str(bad), metadata=meta)
    for message in _refusals(bad, kind):
        assert message.startswith(f"{bad}: tensor {first!r} holds NaN or infinite values")


def test_an_unknown_expected_kind_is_a_programming_error(tmp_path):
    with pytest.raises(ValueError, match="unknown artifact kind 'lora'") as err:
        read_artifact(_save("vectors", tmp_path), "lora")
    assert not isinstance(err.value, SteerInputError)  # a bug in steer, shown with its traceback
