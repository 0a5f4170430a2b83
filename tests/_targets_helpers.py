"""Build the MobileNet anchor models for the Pi cost-model tests (once per session, cached on disk).

Keras MobileNet / MobileNetV2 (alpha 1.0, 224x224, weights=None) converted with
tf.lite.TFLiteConverter.from_keras_model to fp32 and full-int8 TFLite (calibrated
with a few seeded random samples: enough for op counts and latency, not accuracy).
"""
from __future__ import annotations

import os
from pathlib import Path

ANCHOR_MODELS = ("mobilenet_v1", "mobilenet_v2")


def cache_dir() -> Path:
    d = Path(os.environ.get("EDGESHIP_TEST_CACHE", Path.home() / ".cache" / "edgeship-tests")) / "targets"
    d.mkdir(parents=True, exist_ok=True)
    return d


def build_anchor_models(out_dir=None) -> dict:
    """Return {"mobilenet_v1": {"fp32": path, "int8": path}, "mobilenet_v2": {...}}; builds what is missing."""
    out = Path(out_dir) if out_dir else cache_dir()
    paths = {m: {q: out / f"{m}_224_{q}.tflite" for q in ("fp32", "int8")} for m in ANCHOR_MODELS}
    if all(p.is_file() for d in paths.values() for p in d.values()):
        return paths
    import numpy as np
    import tensorflow as tf
    import keras

    makers = {"mobilenet_v1": keras.applications.MobileNet, "mobilenet_v2": keras.applications.MobileNetV2}
    for name, make in makers.items():
        if all(p.is_file() for p in paths[name].values()):
            continue
        keras.utils.set_random_seed(0)
        model = make(input_shape=(224, 224, 3), alpha=1.0, weights=None, classes=1000)
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        _write(paths[name]["fp32"], conv.convert())
        rng = np.random.default_rng(0)

        def rep():
            for _ in range(4):
                yield [rng.uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)]

        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        _write(paths[name]["int8"], conv.convert())
    return paths


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


if __name__ == "__main__":
    import sys

    print(build_anchor_models(sys.argv[1] if len(sys.argv) > 1 else None))


SMALL_MODELS = ("int8", "fp32", "dynamic_int8", "hardswish_int8")


def build_small_models(out_dir) -> dict:
    """Tiny conv nets (16x16x3) for target checks: {variant: path}.

    int8: full-integer, static batch 1 (Edge TPU friendly); fp32: same net unquantized;
    dynamic_int8: full-integer with a dynamic batch dimension; hardswish_int8: int8 with a
    HARD_SWISH activation in the middle (an op the Edge TPU lacks).
    """
    import numpy as np
    import tensorflow as tf
    import keras

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def net(batch, act):
        keras.utils.set_random_seed(0)
        inp = keras.Input(shape=(16, 16, 3), batch_size=batch)
        x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
        x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
        x = keras.layers.Activation(act)(x)
        x = keras.layers.Conv2D(16, 1, activation="relu")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        x = keras.layers.Dense(4, activation="softmax")(x)
        return keras.Model(inp, x)

    def convert(model, int8):
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        if int8:
            rng = np.random.default_rng(0)

            def rep():
                for _ in range(8):
                    yield [rng.uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)]

            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = rep
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
        return conv.convert()

    specs = {"int8": (1, "relu", True), "fp32": (1, "relu", False), "dynamic_int8": (None, "relu", True),
             "hardswish_int8": (1, "hard_swish", True)}
    paths = {}
    for name, (batch, act, int8) in specs.items():
        p = out / f"small_{name}.tflite"
        if not p.is_file():
            _write(p, convert(net(batch, act), int8))
        paths[name] = p
    return paths


_SESSION = {}


def session_small_models() -> dict:
    """build_small_models into one temporary folder per test session (process)."""
    if "small" not in _SESSION:
        import tempfile

        _SESSION["small"] = build_small_models(tempfile.mkdtemp(prefix="edgeship-targets-"))
    return _SESSION["small"]


def session_anchor_models() -> dict:
    """build_anchor_models into one temporary folder per test session (process)."""
    if "anchors" not in _SESSION:
        import tempfile

        _SESSION["anchors"] = build_anchor_models(tempfile.mkdtemp(prefix="edgeship-anchors-"))
    return _SESSION["anchors"]


# A log in the exact format edgetpu_compiler 16 prints (Coral docs, "Edge TPU Compiler"),
# for the small HARD_SWISH model: the partition ends at HARD_SWISH.
FAKE_COMPILER_LOG = """Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 152 ms.

Input model: small_hardswish_int8.tflite
Input size: 8.20KiB
Output model: small_hardswish_int8_edgetpu.tflite
Output size: 41.05KiB
On-chip memory used for caching model parameters: 1.50KiB
On-chip memory remaining for caching model parameters: 7.93MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: 7
Operation log: small_hardswish_int8_edgetpu.log

Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model will instead run on the CPU, which is slower. If possible, consider updating your model to use only operations supported by the Edge TPU. For details, visit g.co/coral/model-reqs.
Number of operations that will run on Edge TPU: 2
Number of operations that will run on CPU: 5

Operator                       Count      Status

CONV_2D                        1          Mapped to Edge TPU
CONV_2D                        1          More than one subgraph is not supported
DEPTHWISE_CONV_2D              1          Mapped to Edge TPU
HARD_SWISH                     1          Operation not supported
MEAN                           1          More than one subgraph is not supported
FULLY_CONNECTED                1          More than one subgraph is not supported
SOFTMAX                        1          More than one subgraph is not supported
"""


def install_fake_compiler(bin_dir, log_text: str = FAKE_COMPILER_LOG, exit_code: int = 0) -> Path:
    """Write an honest fake ``edgetpu_compiler`` into bin_dir: it prints ``log_text`` and, when
    exit_code is 0, copies the input to ``<out>/<stem>_edgetpu.tflite`` (no real compilation)."""
    import stat
    import sys

    bin_dir = Path(bin_dir)
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "fake_log.txt").write_text(log_text)
    script = bin_dir / "edgetpu_compiler"
    script.write_text(f"""#!{sys.executable}
# Fake edgetpu_compiler for tests: prints a recorded log, copies the model (no compilation).
import shutil, sys
from pathlib import Path
args = sys.argv[1:]
out = Path(args[args.index("-o") + 1]) if "-o" in args else Path(".")
src = Path([a for a in args if a.endswith(".tflite")][-1])
print(Path({str(bin_dir / "fake_log.txt")!r}).read_text())
if {exit_code} == 0:
    shutil.copy(src, out / (src.stem + "_edgetpu.tflite"))
else:
    print("ERROR: fake failure", file=sys.stderr)
sys.exit({exit_code})
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script
