"""``shapes_cnn``: the small image classifier edgeship ships and its training recipe.

The data set is synthetic and seeded (filled circles, squares and triangles of
random size, position and brightness on a noisy 32x32 grey background), so the
model can be rebuilt bit-for-bit anywhere with no download. It is the default
model of ``make demo`` and the small CNN of the tests and benchmarks.

Rebuild the shipped files (needs the ``[convert]`` extra)::

    python -m edgeship.models.shapes --out models/weights

Example:
    >>> from edgeship.models.shapes import make_dataset
    >>> x, y = make_dataset(6, seed=0)
    >>> x.shape, x.dtype, sorted(set(y.tolist()))
    ((6, 32, 32, 1), dtype('float32'), [0, 1, 2])
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

LABELS = ["circle", "square", "triangle"]
SIZE = 32
# pixel/255 in [0, 1], one grey channel (an edgeship.preprocessing.ImagePreprocessing dict)
PREPROCESSING = {"type": "image", "size": [SIZE, SIZE], "resize": "stretch", "color": "GRAY", "layout": "NHWC",
                 "mean": [0.0], "std": [255.0], "dtype": "float32"}


def _draw(kind: int, rng: np.random.Generator) -> np.ndarray:
    img = rng.normal(0.15, 0.05, (SIZE, SIZE)).astype(np.float32)
    r = rng.uniform(5, 11)
    cy, cx = rng.uniform(r + 1, SIZE - r - 1, size=2)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    if kind == 0:
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    elif kind == 1:
        mask = (np.abs(yy - cy) <= r * 0.85) & (np.abs(xx - cx) <= r * 0.85)
    else:  # triangle pointing up: inside three half-planes
        top, base = cy - r, cy + r * 0.8
        half = (yy - top) / (base - top) * r
        mask = (yy >= top) & (yy <= base) & (np.abs(xx - cx) <= half)
    img[mask] += rng.uniform(0.5, 0.8)
    return np.clip(img, 0.0, 1.0)


def make_dataset(n: int, seed: int = 0):
    """``n`` images (N, 32, 32, 1) float32 in [0, 1] and labels (N,) int64, balanced and seeded."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(LABELS)
    rng.shuffle(y)
    x = np.stack([_draw(int(k), rng) for k in y])[..., None]
    return x, y.astype(np.int64)


def build_model():
    """A small CNN: 3 conv blocks + global pooling + dense (about 22 k parameters)."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((SIZE, SIZE, 1), name="image")
    x = inp
    for ch in (16, 32, 48):
        x = keras.layers.Conv2D(ch, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(len(LABELS), activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name="shapes_cnn")


def train(epochs: int = 6, n_train: int = 3000, seed: int = 0):
    """Train the model; returns (model, validation accuracy on 600 held-out images)."""
    import keras

    model = build_model()
    x, y = make_dataset(n_train, seed=seed)
    xv, yv = make_dataset(600, seed=seed + 1)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0, shuffle=True)
    acc = float(model.evaluate(xv, yv, verbose=0)[1])
    return model, acc


def main(argv=None) -> None:
    import json

    import tensorflow as tf

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).parent / "weights"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model, acc = train()
    model.save(out / "shapes_cnn.keras")
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    (out / "shapes_cnn_fp32.tflite").write_bytes(conv.convert())
    calib, _ = make_dataset(200, seed=7)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(len(calib)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    (out / "shapes_cnn_int8.tflite").write_bytes(conv.convert())
    print(json.dumps({"val_accuracy": acc, "files": sorted(p.name for p in out.iterdir())}))


if __name__ == "__main__":
    main()
