"""PyTorch -> ONNX fp32 / dynamic / static int8 (QDQ, per-channel) and -> TFLite via litert-torch.

Every file is loaded with edgeship.load and checked against the torch model with check_parity.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("torch", reason="PyTorch (extra [torch]) is not installed")
pytest.importorskip("onnxscript", reason="onnxscript (needed by torch.onnx dynamo export) is not installed")

import onnx  # noqa: E402

import edgeship  # noqa: E402
from edgeship.converters.calibration import resolve_calibration  # noqa: E402
from edgeship.converters.onnx_fp32 import export_onnx_fp32  # noqa: E402
from edgeship.converters.onnx_quant import export_onnx_dynamic, export_onnx_int8  # noqa: E402
from edgeship.converters.parity import check_parity  # noqa: E402
from edgeship.converters.sources import load_source  # noqa: E402
from edgeship.errors import ConversionError, MissingDependencyError  # noqa: E402

from tests._onnx_helpers import image_batch, small_cnn, write  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def torch_src():
    import torch

    return load_source(small_cnn(), example_inputs=torch.from_numpy(image_batch(1, seed=99)))


@pytest.fixture(scope="session")
def cnn_calib(torch_src):
    return resolve_calibration(image_batch(16, seed=1), torch_src.inputs, seed=0)


@pytest.fixture(scope="session")
def cnn_valid(torch_src):
    return resolve_calibration(image_batch(8, seed=2), torch_src.inputs, seed=0).samples


def _parity(src, path, samples, key):
    rep = check_parity(src, path, samples, fmt_key=key)
    print(f"\n{key}: {rep.summary()} rel_max_abs={rep.rel_max_abs:.4g} top1={rep.top1_agreement}")
    return rep


def test_torch_to_onnx_fp32_matches(torch_src, cnn_valid, tmp_path):
    data = export_onnx_fp32(torch_src, {})
    model = onnx.load_from_string(data)
    assert [i.name for i in model.graph.input] == ["input_0"]
    assert [o.name for o in model.graph.output] == ["output_0"]
    opset = {o.domain: o.version for o in model.opset_import}[""]
    assert opset == 18
    assert not any(n.metadata_props for n in model.graph.node)  # no stack traces with local paths
    path = write(tmp_path, "cnn.onnx", data)
    m = edgeship.load(path)
    assert m.format == "onnx" and m.backend == "onnxruntime"
    rep = _parity(torch_src, path, cnn_valid, "onnx/fp32")
    assert rep.passed, rep.failures
    assert rep.max_abs < 1e-4


def test_torch_to_onnx_dynamic_within_tolerance(torch_src, cnn_valid, tmp_path):
    data = export_onnx_dynamic(torch_src, {})
    ops = {n.op_type for n in onnx.load_from_string(data).graph.node}
    assert "DynamicQuantizeLinear" in ops and ({"ConvInteger", "MatMulInteger"} & ops)
    path = write(tmp_path, "cnn_dyn.onnx", data)
    rep = _parity(torch_src, path, cnn_valid, "onnx/dynamic")
    assert rep.passed, rep.failures


def test_torch_to_onnx_static_int8_per_channel(torch_src, cnn_calib, cnn_valid, tmp_path):
    data = export_onnx_int8(torch_src, {"calibration": cnn_calib, "per_channel": True})
    model = onnx.load_from_string(data)
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert "BatchNormalization" not in ops  # folded by the pre-processing
    # per-channel: every conv weight is dequantized with one scale per output channel
    inits = {i.name: i for i in model.graph.initializer}
    conv_w = [n.input[1] for n in model.graph.node if n.op_type == "Conv"]
    dq = {n.output[0]: n for n in model.graph.node if n.op_type == "DequantizeLinear"}
    scales = [onnx.numpy_helper.to_array(inits[dq[w].input[1]]) for w in conv_w]
    assert len(scales) == 3 and all(s.size > 1 for s in scales)
    path = write(tmp_path, "cnn_int8.onnx", data)
    m = edgeship.load(path)
    assert m.inputs[0].dtype == "float32"  # QDQ keeps float I/O
    rep = _parity(torch_src, path, cnn_valid, "onnx/int8")
    assert rep.passed, rep.failures


def test_convert_pipeline_picks_these_exporters(tmp_path):
    import torch

    from edgeship.converters import convert

    x = image_batch(20, seed=5)
    res = convert(small_cnn(), to="onnx", quantize="int8", calibration=x, example_inputs=torch.from_numpy(x[:1]),
                  out=tmp_path, per_channel=True, calibration_method="minmax")
    (rec,) = res.outputs
    print("\nconvert():", rec.exporter, rec.parity)
    assert rec.exporter == "onnx-qdq-int8" and rec.parity["passed"]
    assert edgeship.load(rec.path).format == "onnx"


def test_torch_opset_below_18_is_refused(torch_src):
    with pytest.raises(ConversionError, match="opset 17 .*18"):
        export_onnx_fp32(torch_src, {"opset": 17})


def test_tflite_exporter_names_the_torch_extra_when_litert_torch_is_missing(torch_src, monkeypatch):
    from edgeship.converters.torch_tflite import export_tflite_from_torch

    monkeypatch.setitem(sys.modules, "litert_torch", None)  # makes `import litert_torch` fail
    with pytest.raises(MissingDependencyError, match=r"edgeship\[torch\]"):
        export_tflite_from_torch(torch_src, {})


def test_torch_to_tflite_via_litert_torch(torch_src, cnn_valid, tmp_path):
    pytest.importorskip("litert_torch", reason="litert-torch is not installed (it conflicts with this "
                                               "environment's typing-extensions; see converters/torch_tflite.py); "
                                               "tests/test_overlay_exporters.py runs it from .overlay-litert-torch/")
    from edgeship.converters.torch_tflite import export_tflite_from_torch

    path = write(tmp_path, "cnn.tflite", export_tflite_from_torch(torch_src, {}))
    assert edgeship.load(path).format == "tflite"
    rep = _parity(torch_src, path, cnn_valid, "tflite/fp32")
    assert rep.passed, rep.failures
