"""TensorFlow-side sources -> ONNX through tf2onnx: Keras, a Keras-exported SavedModel, a float
TFLite file, and the legacy MLPerf Tiny KWS SavedModel (TF1 loader + frozen GraphDef path)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="tensorflow (extra [convert]) is not installed")
pytest.importorskip("tf2onnx", reason="tf2onnx (extra [convert]) is not installed")

import onnx  # noqa: E402

from edgeship.converters.onnx_fp32 import export_onnx_fp32  # noqa: E402
from edgeship.converters.onnx_quant import export_onnx_dynamic, export_onnx_int8  # noqa: E402
from edgeship.converters.parity import check_parity  # noqa: E402
from edgeship.converters.sources import load_source  # noqa: E402
from edgeship.errors import ConversionError  # noqa: E402

from tests._onnx_helpers import image_batch, kws_features, samples, write  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def keras_model():
    import keras

    keras.utils.set_random_seed(0)
    L = keras.layers
    inp = keras.Input((16, 16, 3), name="image")
    x = L.Conv2D(8, 3, padding="same", name="conv")(inp)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(name="relu")(x)
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    out = L.Dense(4, name="logits")(x)
    model = keras.Model(inp, out)
    bn = model.get_layer("bn")  # non-trivial statistics, so a wrong BN shows
    g, b, m, v = bn.get_weights()
    bn.set_weights([g * 1.3, b + 0.1, m + 0.2, v * 1.5])
    return model


@pytest.fixture(scope="module")
def images():
    # smooth images (NHWC): white noise would average out to near-zero logits after pooling
    return np.ascontiguousarray(image_batch(16, seed=3, shape=(3, 16, 16)).transpose(0, 2, 3, 1))


def test_keras_to_onnx_fp32(keras_model, images, tmp_path):
    src = load_source(keras_model)
    data = export_onnx_fp32(src, {})
    model = onnx.load_from_string(data)
    assert [i.name for i in model.graph.input] == [s.name for s in src.inputs]
    assert [o.name for o in model.graph.output] == [s.name for s in src.outputs]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["edgeship.source_sha256"] == src.sha256 and meta["edgeship.source_kind"] == "keras"
    rep = check_parity(src, write(tmp_path, "k.onnx", data), samples(src.inputs[0].name, images[:6]),
                       fmt_key="onnx/fp32")
    print(f"\nkeras -> onnx: {rep.summary()}")
    assert rep.passed, rep.failures


def test_keras_to_onnx_int8(keras_model, images, tmp_path):
    src = load_source(keras_model)
    name = src.inputs[0].name
    data = export_onnx_int8(src, {"calibration": samples(name, images[:10])})
    # An untrained net: logits peak at ~0.17, so the relative max-abs error is a harsh measure
    # here (measured 0.275 at cosine 0.998); cosine and top-1 keep their defaults.
    rep = check_parity(src, write(tmp_path, "k8.onnx", data), samples(name, images[10:]), fmt_key="onnx/int8",
                       tolerance={"rel_max_abs": 0.4})
    print(f"\nkeras -> onnx int8: {rep.summary()}")
    assert rep.passed, rep.failures


def test_tf_opset_above_18_is_refused(keras_model):
    with pytest.raises(ConversionError, match="opset 19 .*13..18"):
        export_onnx_fp32(load_source(keras_model), {"opset": 19})


def test_keras_exported_saved_model_to_onnx(keras_model, images, tmp_path):
    keras_model.export(str(tmp_path / "sm"), verbose=False)
    src = load_source(tmp_path / "sm")
    assert src.kind == "saved_model" and not src.legacy
    data = export_onnx_fp32(src, {})
    rep = check_parity(src, write(tmp_path, "sm.onnx", data), samples(src.inputs[0].name, images[:6]),
                       fmt_key="onnx/fp32")
    print(f"\nsaved_model -> onnx: {rep.summary()}")
    assert rep.passed, rep.failures


def test_float_tflite_to_onnx(keras_model, images, tmp_path):
    import tensorflow as tf

    tfl = tf.lite.TFLiteConverter.from_keras_model(keras_model).convert()
    src = load_source(write(tmp_path, "k.tflite", tfl))
    data = export_onnx_fp32(src, {})
    rep = check_parity(src, write(tmp_path, "tfl.onnx", data), samples(src.inputs[0].name, images[:1]),
                       fmt_key="onnx/fp32")
    print(f"\ntflite -> onnx: {rep.summary()}")
    assert rep.passed, rep.failures


@pytest.fixture(scope="module")
def legacy(shared_dir):
    path = shared_dir / "models" / "mlperf_tiny_kws" / "saved_model"
    if not (path / "saved_model.pb").is_file():
        pytest.skip(f"{path} is absent")
    src = load_source(path)
    x, y = kws_features(shared_dir)
    return src, x, y


def test_legacy_mlperf_saved_model_to_every_onnx_format(legacy, tmp_path):
    """The SavedModel tf.saved_model.load cannot read: fp32, dynamic and int8 ONNX, each checked."""
    src, x, y = legacy
    # With tf_keras installed (onnx2tf needs it) tf.saved_model.load can read this model and
    # legacy is False; without it only the TF1 loader can. The ONNX route is the TF1 one either way.
    print(f"\nlegacy={src.legacy}")
    name = src.inputs[0].name
    cal, val, val_y = samples(name, x[:30]), samples(name, x[30:]), y[30:]
    figures = {}
    # Three of the 20 held-out clips have a top-2 margin < 0.07 in the float model, so one flip
    # costs 5 % of top-1 agreement: quantized outputs get top1_min 0.85 and an accuracy budget.
    relaxed = {"top1_min": 0.85, "acc_drop": 0.10}
    for quant, fn, opts in (("fp32", export_onnx_fp32, {}), ("dynamic", export_onnx_dynamic, {}),
                            ("int8", export_onnx_int8, {"calibration": cal})):
        out = write(tmp_path, f"kws_{quant}.onnx", fn(src, opts))
        rep = check_parity(src, out, val, labels=val_y, fmt_key=f"onnx/{quant}",
                           tolerance=None if quant == "fp32" else relaxed)
        figures[quant] = rep
        print(f"\nlegacy KWS -> onnx/{quant}: {rep.summary()} rel_max_abs={rep.rel_max_abs:.4g}")
        assert rep.passed, rep.failures
    assert figures["fp32"].max_abs < 1e-5
    # real speech features: the float model is right on 15 of these 20 (43 of all 50 clips, 86 %)
    assert figures["fp32"].accuracy_source >= 0.7
