"""Small models and real data shared by tests/test_onnx_*.py and tests/test_torch_*.py."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def small_cnn(seed: int = 0):
    """conv-bn-relu x3 + linear, 1x3x32x32 -> 10 logits, with non-trivial BatchNorm statistics."""
    import torch

    torch.manual_seed(seed)
    nn = torch.nn

    def cbr(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]

    net = nn.Sequential(*cbr(3, 8), nn.MaxPool2d(2), *cbr(8, 16), nn.MaxPool2d(2), *cbr(16, 16),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    with torch.no_grad():  # BN folding must matter: give every BN real statistics
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net.eval()


def image_batch(n: int, seed: int, shape=(3, 32, 32)) -> np.ndarray:
    """Smooth random images (N, C, H, W) in about [-1, 1]: closer to real inputs than white noise."""
    rng = np.random.default_rng(seed)
    c, h, w = shape
    small = rng.uniform(-1, 1, (n, c, h // 4, w // 4)).astype(np.float32)
    big = np.repeat(np.repeat(small, 4, axis=2), 4, axis=3)
    return (big + rng.normal(0, 0.1, big.shape)).astype(np.float32)


def samples(name: str, batch: np.ndarray) -> list:
    return [{name: batch[i:i + 1]} for i in range(len(batch))]


def face_images(shared: Path, n: int, size_wh, offset: int = 0) -> np.ndarray:
    """``n`` LFW faces (grayscale, repeated to 3 channels), resized to ``size_wh``, as (N, 3, H, W) 0..255."""
    import cv2

    files = sorted((shared / "data" / "faces" / "lfw_dev").rglob("*.jpg"))[offset::97][:n]
    out = []
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
        img = cv2.resize(img, tuple(size_wh), interpolation=cv2.INTER_AREA)
        out.append(np.repeat(img[None].astype(np.float32), 3, axis=0))
    return np.stack(out)


def kws_features(shared: Path):
    """The 50 kws01 reference MFCC fingerprints as float (N, 49, 10, 1) and their labels.

    The .bin files are the reference front end's int8 features; the reference int8 model's
    input quantization (scale 0.5847, zero point 83) turns them back into float MFCCs.
    """
    root = shared / "data" / "kws01_parity"
    xs, ys = [], []
    with open(root / "y_labels.csv") as fh:
        for row in csv.reader(fh):
            q = np.frombuffer((root / "mfcc" / row[0].strip()).read_bytes(), dtype=np.int8)
            xs.append(((q.astype(np.float32) - 83.0) * 0.5847).reshape(49, 10, 1))
            ys.append(int(row[2]))
    return np.stack(xs), np.array(ys)


def write(tmp: Path, name: str, data: bytes) -> Path:
    p = tmp / name
    p.write_bytes(data)
    return p


def onnx_cnn(seed: int = 0, opset: int = 13):
    """A tiny float ONNX CNN built with the onnx helper API (no torch/TF needed):
    Conv-BatchNorm-Relu-Conv-Relu-GlobalAveragePool-Flatten-Gemm, input "image" 1x3x16x16 -> "logits" 1x5."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    f = lambda *s: rng.normal(0, 0.3, s).astype(np.float32)  # noqa: E731
    inits = [numpy_helper.from_array(a, n) for n, a in [
        ("w1", f(8, 3, 3, 3)), ("b1", f(8)), ("bn_scale", rng.uniform(0.5, 1.5, 8).astype(np.float32)),
        ("bn_bias", f(8)), ("bn_mean", f(8)), ("bn_var", rng.uniform(0.5, 2, 8).astype(np.float32)),
        ("w2", f(8, 8, 3, 3)), ("b2", f(8)), ("wf", f(5, 8)), ("bf", f(5))]]
    nodes = [
        helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "bn_scale", "bn_bias", "bn_mean", "bn_var"], ["n1"], name="bn1"),
        helper.make_node("Relu", ["n1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["fl"], name="flatten"),
        helper.make_node("Gemm", ["fl", "wf", "bf"], ["logits"], name="fc", transB=1),
    ]
    g = helper.make_graph(nodes, "tiny_cnn", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 16, 16])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 5])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="edgeship-tests")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def onnx_two_head(seed: int = 0, opset: int = 13):
    """A tiny two-output ONNX detector head (onnx helper API): input "image" 1x3x16x16 ->
    "scores" 1x1x8x8 (Sigmoid) and "boxes" 1x4x8x8 (linear), sharing a Conv-Relu trunk."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    f = lambda *s: rng.normal(0, 0.3, s).astype(np.float32)  # noqa: E731
    inits = [numpy_helper.from_array(a, n) for n, a in [
        ("w1", f(8, 3, 3, 3)), ("b1", f(8)), ("ws", f(1, 8, 1, 1)), ("bs", f(1)), ("wb", f(4, 8, 1, 1)), ("bb", f(4))]]
    nodes = [
        helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "ws", "bs"], ["s_logit"], name="score_conv"),
        helper.make_node("Sigmoid", ["s_logit"], ["scores"], name="score_sigmoid"),
        helper.make_node("Conv", ["r1", "wb", "bb"], ["boxes"], name="box_conv"),
    ]
    g = helper.make_graph(nodes, "two_head", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 16, 16])],
                          [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1, 8, 8]),
                           helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="edgeship-tests")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m
