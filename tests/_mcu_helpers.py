"""Tiny TFLite models for the mcu / mobile / deploy tests, built once per test process.

They are built with TensorFlow from a seeded Keras model so the tests run without ../shared.
"""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np


def shared_kws_model():
    """Path of the MLPerf Tiny int8 DS-CNN in ../shared, or None when absent."""
    from tests.conftest import shared_path

    p = shared_path() / "models" / "mlperf_tiny_kws" / "kws_ref_model.tflite"
    return p if p.is_file() else None


def _keras_model():
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 8, 1), batch_size=1, name="features")
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(8, 1, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(4, activation="softmax", name="scores")(x)
    return keras.Model(inp, out)


@functools.lru_cache(maxsize=None)
def tiny_models() -> dict:
    """{"int8": path, "float": path}: a 4-class DS-CNN-like model, int8 I/O and float."""
    import tensorflow as tf

    model = _keras_model()
    out = Path(tempfile.mkdtemp(prefix="edgeship_t2_models_"))
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    (out / "tiny_float.tflite").write_bytes(conv.convert())

    rng = np.random.default_rng(0)
    calib = [rng.standard_normal((1, 12, 8, 1)).astype(np.float32) for _ in range(16)]
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([c] for c in calib)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    (out / "tiny_int8.tflite").write_bytes(conv.convert())
    return {"int8": out / "tiny_int8.tflite", "float": out / "tiny_float.tflite"}
