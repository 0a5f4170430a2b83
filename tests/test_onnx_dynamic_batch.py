"""--dynamic-batch on an ONNX source with a fixed batch: a symbolic dim 0, checked at batch 1 and 2."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
pytest.importorskip("onnx", reason="onnx (extra [convert]) is not installed")

import edgeship  # noqa: E402
from edgeship.converters import convert  # noqa: E402
from edgeship.converters.batching import with_dynamic_batch  # noqa: E402
from edgeship.converters.sources import load_source  # noqa: E402
from edgeship.errors import ConversionError  # noqa: E402

from tests._onnx_models import dense_relu  # noqa: E402


def test_onnx_fixed_batch_becomes_dynamic(tmp_path):
    p, w, b = dense_relu(tmp_path / "d.onnx", batch=1)
    res = convert(str(p), to="onnx", out=str(tmp_path / "o.onnx"), dynamic_batch=True)
    rec = res.outputs[0]
    assert rec.parity["passed"] and any("[[1, 8]] -> [[-1, 8]]" in n for n in rec.notes)
    m = edgeship.load(rec.path)
    x = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    np.testing.assert_allclose(m.predict(x), np.maximum(x @ w + b, 0), atol=1e-5)


def test_dynamic_batch_refuses_what_it_cannot_rebuild(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    shape = helper.make_tensor("s", TensorProto.INT64, [2], [2, 4])   # the batch is baked into a Reshape
    g = helper.make_graph([helper.make_node("Reshape", ["x", "s"], ["y"])], "r",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])], [shape])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(tmp_path / "r.onnx"))
    with pytest.raises(ConversionError, match="does not run at batch 1"):
        with_dynamic_batch(load_source(str(tmp_path / "r.onnx")))
