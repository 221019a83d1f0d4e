"""`steer export --format gguf`: llama.cpp control-vector files, read back with gguf."""

from __future__ import annotations

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")

from tests.cli_runner import run_cli  # noqa: E402
from steer import ShiftVectors  # noqa: E402
from steer.errors import SteerInputError  # noqa: E402
from steer.export_gguf import ExportWarning, export_gguf, read_gguf_directions  # noqa: E402

# every default vector file steers after_image positions, which llama.cpp cannot express
pytestmark = pytest.mark.filterwarnings("ignore:the vector file steers positions")

D = 24
LAYERS = [0, 1, 2, 3, 4]


def _model_meta():
    return {"family": "llava", "model_type": "llava", "hidden_size": D, "num_layers": 6,
            "name_or_path": "tiny-llava", "weights_sha256": "abc"}


@pytest.fixture
def vec_file(tmp_path):
    gen = torch.Generator().manual_seed(0)
    shifts = {l: torch.randn(D, generator=gen) for l in LAYERS}
    path = ShiftVectors(shifts, None, {"method": "cmrm", "model": _model_meta()}).save(tmp_path / "shift.safetensors")
    return path, shifts


def _field(reader, key):
    field = reader.get_field(key)
    assert field is not None, key
    return field.contents()


def test_subtract_is_exported_negated_one_tensor_per_layer(vec_file, tmp_path):
    path, shifts = vec_file
    out = tmp_path / "shift.gguf"
    with pytest.warns(ExportWarning, match="layer 0"):
        summary = export_gguf(path, out, alpha=0.5)
    reader = gguf.GGUFReader(str(out))
    names = [t.name for t in reader.tensors]
    assert names == [f"direction.{l}" for l in LAYERS if l >= 1]  # llama.cpp rejects direction.0
    for tensor in reader.tensors:
        assert tensor.tensor_type == gguf.GGMLQuantizationType.F32
        assert tensor.n_elements == D and len(tensor.shape) == 1
    got = read_gguf_directions(out)
    for layer in LAYERS[1:]:
        np.testing.assert_array_equal(got[layer], (-0.5 * shifts[layer]).numpy())
    assert summary["layers"] == LAYERS[1:] and summary["dropped_layers"] == [0]
    assert _field(reader, "general.architecture") == "controlvector"
    assert _field(reader, "controlvector.model_hint") == "llava"
    assert _field(reader, "controlvector.layer_count") == len(LAYERS) - 1
    assert _field(reader, "steer.op") == "subtract"
    assert _field(reader, "steer.method") == "cmrm"
    assert _field(reader, "steer.alpha") == pytest.approx(0.5)
    assert _field(reader, "steer.schedule") == "cumulative"


def test_add_keeps_sign_and_incremental_schedule_is_applied(vec_file, tmp_path):
    path, shifts = vec_file
    out = tmp_path / "add.gguf"
    export_gguf(path, out, alpha=2.0, op="add", layers=[2, 3, 4], schedule="incremental")
    got = read_gguf_directions(out)
    assert sorted(got) == [2, 3, 4]
    np.testing.assert_allclose(got[2], (2.0 * shifts[2]).numpy(), rtol=0, atol=0)
    np.testing.assert_allclose(got[3], (2.0 * (shifts[3] - shifts[2])).numpy(), rtol=1e-6, atol=1e-6)


def test_shiftdc_exports_the_projected_shift(tmp_path):
    gen = torch.Generator().manual_seed(1)
    shifts = {l: torch.randn(D, generator=gen) for l in (1, 2)}
    dirs = {l: (v := torch.randn(D, generator=gen)) / v.norm() for l in (1, 2)}
    path = ShiftVectors(shifts, dirs, {"method": "shiftdc", "model": _model_meta()}).save(tmp_path / "dc.safetensors")
    export_gguf(path, tmp_path / "dc.gguf")
    got = read_gguf_directions(tmp_path / "dc.gguf")
    for l in (1, 2):
        expected = -((shifts[l] @ dirs[l]) * dirs[l])
        np.testing.assert_allclose(got[l], expected.numpy(), rtol=1e-6, atol=1e-6)


def test_bad_requests_are_clear_errors(vec_file, tmp_path):
    path, _ = vec_file
    with pytest.raises(SteerInputError, match="cannot be exported"):
        export_gguf(path, tmp_path / "x.gguf", op="project_out")
    with pytest.raises(SteerInputError, match="layers >= 1"):
        with pytest.warns(ExportWarning):
            export_gguf(path, tmp_path / "x.gguf", layers=[0])
    with pytest.raises(SteerInputError, match="not in this vector file"):
        export_gguf(path, tmp_path / "x.gguf", layers=[9])
    assert not (tmp_path / "x.gguf").exists()


def test_cli_export(vec_file, tmp_path, capsys, monkeypatch):
    path, shifts = vec_file
    out = tmp_path / "cli.gguf"
    code, stdout, stderr = run_cli(["export", "--format", "gguf", path, out, "--alpha", "1.5"], capsys, monkeypatch)
    assert code == 0, stderr
    assert "wrote" in stdout and "layer 0" in stderr
    got = read_gguf_directions(out)
    np.testing.assert_array_equal(got[4], (-1.5 * shifts[4]).numpy())
    code, _, stderr = run_cli(["export", "--format", "onnx", path, out], capsys, monkeypatch)
    assert code == 2 and "unknown export format" in stderr
    code, _, stderr = run_cli(["export", tmp_path / "missing.safetensors", out], capsys, monkeypatch)
    assert code == 2 and "not found" in stderr


def test_a_sample_level_recipe_is_said_to_export_its_dataset_shift(vec_file, tmp_path):
    """ShiftDC's measured recipe is sample level; a fixed control vector cannot be, and the export says so."""
    vecs = ShiftVectors.load(vec_file)
    vecs.metadata["level"] = "sample"
    sample_file = vecs.save(tmp_path / "sample.safetensors")
    with pytest.warns(ExportWarning, match="sample level"):
        export_gguf(sample_file, tmp_path / "sample.gguf", alpha=1.0)
