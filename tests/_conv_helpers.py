"""Small models and data shared by the tests/test_conv_*.py files (built once per session)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def shared_dir() -> Path:
    from tests.conftest import shared_path

    return shared_path()


def build_ds_cnn(seed: int = 0):
    """A small DS-CNN keyword spotter (49x10x1 MFCC in, 12 logits out), trained a few steps."""
    import keras

    keras.utils.set_random_seed(seed)
    L = keras.layers
    x = inp = keras.Input((49, 10, 1), name="mfcc")
    x = L.Conv2D(32, (10, 4), strides=(2, 2), padding="same", name="conv0")(x)
    x = L.BatchNormalization(momentum=0.7, name="bn0")(x)
    x = L.ReLU(name="relu0")(x)
    for i, ch in enumerate((32, 48, 48, 64)):
        x = L.DepthwiseConv2D(3, padding="same", name=f"dw{i}")(x)
        x = L.BatchNormalization(momentum=0.7, name=f"dw{i}_bn")(x)
        x = L.ReLU(name=f"dw{i}_relu")(x)
        x = L.Conv2D(ch, 1, name=f"pw{i}")(x)
        x = L.BatchNormalization(momentum=0.7, name=f"pw{i}_bn")(x)
        x = L.ReLU(name=f"pw{i}_relu")(x)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    out = L.Dense(12, name="logits")(x)
    model = keras.Model(inp, out, name="ds_cnn")
    x_train, y_train = kws_like_data(256, seed)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train, y_train, batch_size=32, epochs=3, verbose=0)
    return model


def kws_like_data(n: int, seed: int):
    """Random MFCC-like inputs whose class is encoded in a per-class pattern (learnable)."""
    rng = np.random.default_rng(seed)
    patterns = np.random.default_rng(1234).standard_normal((12, 49, 10, 1)).astype(np.float32) * 4.0
    y = rng.integers(0, 12, n)
    x = patterns[y] + rng.standard_normal((n, 49, 10, 1)).astype(np.float32) * 2.0
    return x.astype(np.float32), y


def build_outlier_model(seed: int = 0):
    """A classifier whose 'spiky' layer emits one huge-range channel next to 32 useful ones.

    In int8 the spiky tensor shares one per-tensor scale, so the outlier channel (~thousands)
    crushes the useful channels (~1) to zero and the head sees nothing: plain int8 loses the
    classifier, keeping 'spiky' (and the layer reading it) in float restores it.
    """
    import keras

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    L = keras.layers
    inp = keras.Input((16,), name="x")
    feat = L.Dense(32, activation="relu", name="feat")(inp)
    spiky = L.Dense(33, name="spiky")(feat)
    out = L.Dense(10, name="head")(spiky)
    model = keras.Model(inp, out, name="outlier_net")
    model.get_layer("feat").set_weights([rng.standard_normal((16, 32)).astype(np.float32) * 0.5,
                                         np.zeros(32, np.float32)])
    w = np.zeros((32, 33), np.float32)
    w[:, :32] = np.eye(32)
    w[:, 32] = 300.0  # the outlier channel: a huge sum of all features
    model.get_layer("spiky").set_weights([w, np.zeros(33, np.float32)])
    wh = rng.standard_normal((33, 10)).astype(np.float32)
    wh[32] = 0.0  # the head ignores the outlier channel entirely
    model.get_layer("head").set_weights([wh, np.zeros(10, np.float32)])
    return model
