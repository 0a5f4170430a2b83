"""Core ML export through coremltools, validated by loading the .mlpackage spec on Linux."""
from __future__ import annotations

import io
import zipfile

import pytest

from edgeship.errors import InputSpecError

ct = pytest.importorskip("coremltools", reason="coremltools not installed (pip install coremltools==9.0)")
torch = pytest.importorskip("torch")

from edgeship.targets import coreml  # noqa: E402


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return torch.softmax(self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3))), dim=-1)


@pytest.mark.slow
def test_export_mlpackage_and_validate_spec(tmp_path):
    torch.manual_seed(0)
    out = tmp_path / "tiny.mlpackage"
    res = coreml.export_coreml(Tiny(), [torch.randn(1, 1, 12, 8)], out, input_names=["features"])
    assert out.is_dir() and (out / "Manifest.json").is_file()
    assert all(res.validated.values()) and res.validated["ml_program"]
    summary = coreml.spec_summary(out)
    assert summary["model_type"] == "mlProgram"
    assert summary["inputs"] == [{"name": "features", "type": "multiArrayType", "shape": [1, 1, 12, 8],
                                  "dtype": "float32"}]
    assert len(summary["outputs"]) == 1 and summary["outputs"][0]["shape"] == [1, 3]
    assert res.prediction_checked is False and res.notes  # no Core ML runtime on Linux: said so
    z = zipfile.ZipFile(io.BytesIO(coreml.zip_mlpackage(out)))
    assert "tiny.mlpackage/Manifest.json" in z.namelist()
    assert coreml.zip_mlpackage(out) == coreml.zip_mlpackage(out)  # deterministic
    # an iOS bundle can carry it
    from edgeship.targets.deploy import deploy
    from tests._mcu_helpers import tiny_models

    b = deploy(tiny_models()["float"], "ios", tmp_path / "ios", mlpackage=str(out))
    assert (b.bundle_dir / "tiny.mlpackage.zip").is_file()
    assert "tiny.mlpackage" in (b.bundle_dir / "README.md").read_text()


def test_bad_requests(tmp_path):
    with pytest.raises(InputSpecError, match=".mlpackage"):
        coreml.export_coreml(Tiny(), [torch.randn(1, 1, 4, 4)], tmp_path / "x.mlmodel")
    with pytest.raises(InputSpecError, match="torch.nn.Module"):
        coreml.export_coreml(object(), [torch.randn(1)], tmp_path / "x.mlpackage")
    with pytest.raises(InputSpecError, match="deployment_target"):
        coreml.export_coreml(Tiny(), [torch.randn(1, 1, 4, 4)], tmp_path / "x.mlpackage", deployment_target="iOS9")
    with pytest.raises(InputSpecError, match="not a .mlpackage"):
        coreml.zip_mlpackage(tmp_path)
    with pytest.raises(InputSpecError, match="does not exist"):
        coreml.spec_summary(tmp_path / "none.mlpackage")
