"""PyTorch sources: a batch-4 example input, --dynamic-batch, and export errors that name their cause."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="PyTorch (extra [torch]) is not installed")
pytest.importorskip("onnxscript", reason="onnxscript (needed by torch.onnx dynamo export) is not installed")

import torch  # noqa: E402

import edgeship  # noqa: E402
from edgeship.converters import convert  # noqa: E402
from edgeship.errors import ConversionError  # noqa: E402

from tests._onnx_helpers import image_batch, small_cnn  # noqa: E402

pytestmark = pytest.mark.slow


def _linear():
    torch.manual_seed(0)
    return torch.nn.Linear(64, 8).eval()


def test_batch4_example_input_converts_and_checks_in_batches_of_4(tmp_path):
    """Was: InputSpecError 'given shapes input_0:[1, 64] do not fit the model's inputs input_0:[4, 64]'."""
    res = convert(_linear(), to="onnx", example_inputs=torch.zeros(4, 64), out=str(tmp_path / "l.onnx"))
    rec = res.outputs[0]
    assert rec.parity["passed"], rec.parity["failures"]
    assert rec.parity["n_samples"] == 8     # 32 random rows checked as 8 batches of 4
    assert any("fixed batch of 4" in n for n in rec.notes)
    assert edgeship.load(rec.path).inputs[0].shape == (4, 64)


def test_batch4_cnn_classifier_top1_counts_every_row(tmp_path):
    net = small_cnn()
    x = image_batch(24, seed=5)
    res = convert(net, to="onnx", example_inputs=torch.from_numpy(x[:4]), validation=x,
                  labels=np.zeros(24, np.int64), out=str(tmp_path / "c.onnx"))
    p = res.outputs[0].parity
    assert p["passed"], p["failures"]
    assert p["n_samples"] == 6 and p["top1_agreement"] == 1.0 and p["accuracy_source"] is not None


@pytest.mark.parametrize("model,batch", [("linear", 4), ("linear", 1), ("cnn", 4), ("cnn", 1)])
def test_dynamic_batch_exports_a_symbolic_batch(tmp_path, model, batch):
    net = _linear() if model == "linear" else small_cnn()
    shape = (64,) if model == "linear" else (3, 32, 32)
    example = torch.from_numpy(np.random.default_rng(1).standard_normal((batch,) + shape).astype(np.float32))
    res = convert(net, to="onnx", example_inputs=example, out=str(tmp_path / "m.onnx"), dynamic_batch=True)
    rec = res.outputs[0]
    assert rec.parity["passed"], rec.parity["failures"]
    assert any(n.startswith("--dynamic-batch") for n in rec.notes)
    m = edgeship.load(rec.path)
    assert m.inputs[0].shape[0] == -1
    x3 = np.random.default_rng(2).standard_normal((3,) + shape).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x3)).numpy()
    got = m.predict(x3)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_static_and_dynamic_batch_together_is_a_user_error(tmp_path):
    with pytest.raises(ConversionError, match="contradict"):
        convert(_linear(), to="onnx", example_inputs=torch.zeros(1, 64), out=str(tmp_path / "x.onnx"),
                dynamic_batch=True, static_batch=True)


class _CumMax(torch.nn.Module):
    def forward(self, x):
        return torch.cummax(x, dim=-1).values


def test_unsupported_op_names_the_cause_first_in_plain_text(tmp_path):
    with pytest.raises(ConversionError) as info:
        convert(_CumMax(), to="onnx", example_inputs=torch.randn(1, 16), out=str(tmp_path / "x.onnx"))
    msg = str(info.value)
    assert "\x1b" not in msg
    assert msg.startswith("torch.onnx.export(dynamo=True) failed: PyTorch op aten.cummax has no ONNX equivalent")
    assert msg.index("aten.cummax") < msg.index("Next steps:")
    assert not msg.rstrip().endswith("Next steps:")


def test_check_parity_feeds_a_fixed_batch_model_whole_batches(tmp_path):
    """check_parity called directly with batch-1 rows on a batch-4 file (no precomputed reference)."""
    from edgeship.converters.onnx_fp32 import export_onnx_fp32
    from edgeship.converters.parity import check_parity
    from edgeship.converters.sources import load_source

    src = load_source(_linear(), example_inputs=torch.zeros(4, 64))
    path = tmp_path / "l4.onnx"
    path.write_bytes(export_onnx_fp32(src, {}))
    rows = [{"input_0": np.random.default_rng(i).standard_normal((1, 64)).astype(np.float32)} for i in range(9)]
    rep = check_parity(src, path, rows, fmt_key="onnx/fp32")
    assert rep.passed and rep.n_samples == 2
