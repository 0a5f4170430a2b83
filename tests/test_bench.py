"""Tests of edgeship.benchmark, the ``bench`` command and bench/predict_overhead.py helpers.

Test models are built once per session and kept tiny: a 16x16x3 Keras CNN as
fp32 and int8 TFLite (needs the ``convert`` extra, else those tests skip), and
an equivalent ONNX graph written with onnx.helper.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from edgeship.errors import EdgeshipError, InputSpecError, ModelFormatError

REPO = Path(__file__).resolve().parents[1]
SHAPE = (1, 16, 16, 3)


@pytest.fixture(scope="session")
def tiny_tflite(tmp_path_factory):
    """{"fp32": path, "int8": path} of a tiny CNN (conv-relu-gap-dense)."""
    pytest.importorskip("tensorflow", reason="building TFLite test models needs edgeship[convert]")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    inp = keras.Input(SHAPE[1:], batch_size=1)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(4)(x))
    out = tmp_path_factory.mktemp("bench_models")
    paths = {"fp32": out / "tiny_fp32.tflite", "int8": out / "tiny_int8.tflite"}
    paths["fp32"].write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())

    calib = np.random.default_rng(0).random((8, *SHAPE[1:]), dtype=np.float32)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([c[None]] for c in calib)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    with warnings.catch_warnings():  # TF notes that int8 I/O has no input statistics: expected
        warnings.filterwarnings("ignore", "Statistics for quantized inputs", UserWarning)
        paths["int8"].write_bytes(conv.convert())

    # the same layers with a dynamic batch dimension (shape signature [-1, 16, 16, 3])
    dyn_in = keras.Input(SHAPE[1:])
    dyn = keras.Model(dyn_in, model(dyn_in))
    paths["dyn"] = out / "tiny_dyn.tflite"
    paths["dyn"].write_bytes(tf.lite.TFLiteConverter.from_keras_model(dyn).convert())
    return paths


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    """A tiny NCHW CNN (Conv-Relu-GlobalAveragePool-Flatten-Gemm) written with onnx.helper."""
    onnx = pytest.importorskip("onnx", reason="writing the ONNX test model needs onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(8, 3, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.zeros(8, np.float32), "b")
    fw = numpy_helper.from_array(rng.normal(size=(8, 4)).astype(np.float32), "fw")
    fb = numpy_helper.from_array(np.zeros(4, np.float32), "fb")
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w, b, fw, fb])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("bench_onnx") / "tiny.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def _check_sane(r, runs, path):
    from edgeship.benchmark import BenchResult

    assert isinstance(r, BenchResult)
    lat = r.latency_ms
    assert r.runs == runs and len(r.samples_ms) == runs
    assert 0 < lat.min <= lat.p50 <= lat.p90 <= lat.p99 <= lat.max
    assert lat.mean == pytest.approx(np.mean(r.samples_ms))
    assert r.batch == 1
    assert r.throughput_ips == pytest.approx(1000.0 / lat.mean, rel=1e-9)
    assert r.init_ms is not None and r.init_ms > 0
    assert r.first_inference_ms > 0
    assert r.sha256 == hashlib.sha256(Path(path).read_bytes()).hexdigest()
    assert Path(r.model).resolve() == Path(path).resolve()
    assert r.versions["python"] and r.versions["numpy"] == np.__version__
    assert r.versions["runtime_version"]
    assert r.host["cpu_count"] >= 1
    if sys.platform.startswith("linux"):
        assert r.peak_rss_delta_bytes is not None and r.peak_rss_delta_bytes >= 0
    d = r.to_dict()
    assert "samples_ms" not in d and len(r.to_dict(samples=True)["samples_ms"]) == runs
    json.dumps(d)  # plain data only


def test_tflite_fp32_result_fields(tiny_tflite):
    from edgeship.benchmark import benchmark

    r = benchmark(tiny_tflite["fp32"], runs=25, warmup=2, threads=1)
    _check_sane(r, 25, tiny_tflite["fp32"])
    assert (r.format, r.threads, r.warmup) == ("tflite", 1, 2)
    assert r.backend in ("litert", "tflite-runtime")
    assert r.inputs == [{"name": r.inputs[0]["name"], "shape": list(SHAPE), "dtype": "float32", "fed_dtype": "float32",
                         "source": "random"}]


def test_tflite_int8_random_inputs_stay_in_quantized_range(tiny_tflite):
    import edgeship
    from edgeship.benchmark import benchmark, quantized_real_range, random_inputs

    r = benchmark(tiny_tflite["int8"], runs=10, warmup=0, threads=1)
    _check_sane(r, 10, tiny_tflite["int8"])
    spec = edgeship.load(tiny_tflite["int8"]).inputs[0]
    assert spec.is_quantized and spec.dtype == "int8"
    lo, hi = quantized_real_range(spec)
    x = random_inputs([spec], seed=3)[0]
    assert x.dtype == np.float32 and x.shape == SHAPE
    assert lo <= x.min() and x.max() <= hi and x.max() - x.min() > 0.5 * (hi - lo)
    # The range is what int8 can represent: quantizing back never saturates.
    (scale,), (zp,) = spec.quantization.scale, spec.quantization.zero_point
    assert lo == pytest.approx(scale * (-128 - zp)) and hi == pytest.approx(scale * (127 - zp))
    assert np.array_equal(x, random_inputs([spec], seed=3)[0])  # seeded


def test_onnx_backend(tiny_onnx):
    from edgeship.benchmark import benchmark

    r = benchmark(tiny_onnx, runs=15, warmup=1, backend="onnxruntime", threads=1)
    _check_sane(r, 15, tiny_onnx)
    assert (r.format, r.backend) == ("onnx", "onnxruntime")
    assert r.versions["runtime"] == "onnxruntime"


def test_loaded_model_and_user_inputs(tiny_onnx):
    import edgeship
    from edgeship.benchmark import benchmark

    m = edgeship.load(tiny_onnx, threads=1)
    x = np.full((1, 3, 16, 16), 0.25, np.float32)
    r = benchmark(m, runs=5, warmup=0, inputs=x)
    assert r.init_ms is None and r.runs == 5
    assert r.inputs[0]["source"] == "user" and r.inputs[0]["shape"] == [1, 3, 16, 16]
    with pytest.raises(EdgeshipError, match="threads"):
        benchmark(m, runs=5, threads=2)
    with pytest.raises(EdgeshipError, match="backend"):
        benchmark(m, runs=5, backend="litert")
    with pytest.raises(InputSpecError):
        benchmark(m, runs=5, inputs=np.zeros((1, 3, 8, 8), np.float32))


@pytest.mark.parametrize("kwargs, match", [
    ({"runs": 0}, "runs"), ({"runs": -3}, "runs"), ({"runs": 2.5}, "runs"),
    ({"warmup": -1}, "warmup"), ({"threads": 0}, "threads"),
    ({"backend": "cuda"}, "backend"), ({"seed": "x"}, "seed"),
])
def test_bad_arguments_raise(tiny_onnx, kwargs, match):
    from edgeship.benchmark import benchmark

    with pytest.raises(EdgeshipError, match=match):
        benchmark(tiny_onnx, **kwargs)


def test_missing_or_corrupt_model(tmp_path):
    from edgeship.benchmark import benchmark

    with pytest.raises(ModelFormatError, match="not found"):
        benchmark(tmp_path / "nope.tflite")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelFormatError):
        benchmark(bad, runs=1)


def test_random_inputs_dynamic_dims():
    from edgeship.benchmark import random_inputs
    from edgeship.spec import Quantization, TensorSpec

    batch_dynamic = TensorSpec("x", (-1, 4), "float32")
    assert random_inputs([batch_dynamic])[0].shape == (1, 4)
    with pytest.raises(InputSpecError, match="dynamic dimension 1"):
        random_inputs([TensorSpec("x", (1, -1), "float32")])
    u8 = TensorSpec("q", (2, 3), "uint8", Quantization((0.1,), (10,)))
    x = random_inputs([u8], seed=1)[0]
    assert x.min() >= 0.1 * (0 - 10) - 1e-6 and x.max() <= 0.1 * (255 - 10) + 1e-6
    with pytest.raises(InputSpecError, match="string"):
        random_inputs([TensorSpec("s", (1,), "string")])


def test_peak_rss_sees_an_allocation():
    from edgeship.benchmark import _PeakRSS

    if not Path("/proc/self/status").exists():
        pytest.skip("peak RSS through /proc is Linux-only")
    with _PeakRSS() as mem:
        block = np.ones(48 * 2**20 // 8)  # 48 MiB, touched
        del block
    assert mem.method.startswith("vmhwm")
    assert mem.delta is not None and mem.delta >= 40 * 2**20
    with _PeakRSS() as small:
        pass
    assert small.delta < 16 * 2**20  # a no-op block does not report the earlier peak


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "edgeship", *map(str, args)], capture_output=True,
                          text=True, timeout=120, cwd=REPO)


def test_cli_json_prints_exactly_one_object(tiny_onnx):
    p = _cli("bench", tiny_onnx, "--runs", "7", "--warmup", "1", "--threads", "1", "--json")
    assert p.returncode == 0, p.stderr
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1
    obj = json.loads(lines[0])
    assert obj["ok"] is True and obj["runs"] == 7 and obj["backend"] == "onnxruntime"
    assert set(obj["latency_ms"]) == {"p50", "p90", "p99", "mean", "min", "max", "std"}


def test_cli_table_and_bad_args(tiny_onnx):
    from typer.testing import CliRunner

    from edgeship.cli import app

    runner = CliRunner()
    ok = runner.invoke(app, ["bench", str(tiny_onnx), "--runs", "3", "--warmup", "0"])
    assert ok.exit_code == 0, ok.output
    for args in (["--runs", "0"], ["--backend", "tpu"], ["--warmup", "-2"]):
        res = runner.invoke(app, ["bench", str(tiny_onnx), *args, "--json"])
        assert res.exit_code == 2, (args, res.output)
        err = json.loads(res.stdout.strip().splitlines()[-1])
        assert err["ok"] is False and err["error"]["type"] == "EdgeshipError"
    res = runner.invoke(app, ["bench", str(tiny_onnx) + ".missing"])
    assert res.exit_code == 2


def test_overhead_script_helpers_agree(tiny_tflite):
    """bench/predict_overhead.measure runs end to end on a tiny model (speed is not asserted)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("predict_overhead", REPO / "bench" / "predict_overhead.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for kind in ("fp32", "int8"):
        r = mod.measure(tiny_tflite[kind], rounds=20, warmup=2)
        assert r["rounds"] == 20 and r["raw_invoke_median_ms"] > 0 and r["ratio"] > 0


def test_predict_fast_path_matches_general_path(tiny_tflite):
    """predict(one exact-shape ndarray) takes a shorter path; it must give the same answers and errors."""
    import edgeship

    rng = np.random.default_rng(5)
    for kind in ("fp32", "int8"):
        m = edgeship.load(tiny_tflite[kind], threads=1)
        assert m._fast is not None
        x = rng.uniform(-3, 3, SHAPE).astype(np.float32)  # beyond the int8 range too: saturates
        fast = m.predict(x)
        general = m.predict([x])  # a list goes through the general path
        assert fast.dtype == np.float32 and np.array_equal(fast, general)
        assert np.array_equal(m.predict(x.astype(np.float64)), fast)
        assert np.array_equal(m.predict(np.asfortranarray(x)), fast)
        assert list(m.predict(x, as_dict=True).values())[0].tolist() == fast.tolist()
        for bad in (np.nan, np.inf):
            y = x.copy()
            y[0, 1, 2, 0] = bad
            with pytest.raises(InputSpecError, match="NaN or inf"):
                m.predict(y)


def test_quantize_matches_reference_formula():
    """The in-place quantization equals clip(rint(x / scale + zp)) on every element."""
    from edgeship.runtime import _InputPlan
    from edgeship.spec import Quantization, TensorSpec

    rng = np.random.default_rng(2)
    wide = rng.normal(0, 80, (4, 1000)).astype(np.float32)  # saturates: the clip runs
    for dtype, scale, zp in (("int8", 0.37, -5), ("uint8", 0.5, 128), ("int16", 0.001, 0)):
        plan = _InputPlan(TensorSpec("x", (4, 1000), dtype, Quantization((scale,), (zp,))))
        info = np.iinfo(dtype)
        lo, hi = np.float32(scale) * (info.min - zp), np.float32(scale) * (info.max - zp)
        # in range up to the very edges (the clip is skipped), then half a step beyond them
        edge = rng.uniform(lo, hi, (4, 1000)).astype(np.float32)
        edge[0, :2] = lo, hi
        over = edge.copy()
        over[1, :2] = lo - np.float32(scale) * 0.6, hi + np.float32(scale) * 0.6
        for x in (wide, edge, over, edge.astype(np.float64)):
            ref = np.clip(np.rint(x.astype(np.float32) / np.float32(scale) + np.float32(zp)),
                          info.min, info.max).astype(dtype)
            assert np.array_equal(plan.prepare(x), ref)
            got = plan.prepare_exact(x)
            assert got.dtype == np.dtype(dtype) and np.array_equal(got, ref)


def test_predict_fast_path_with_dynamic_batch(tiny_tflite):
    """A dynamic-batch model is resized when the batch changes; the fast path follows the resizes."""
    import edgeship

    m = edgeship.load(tiny_tflite["dyn"], threads=1)
    assert m.inputs[0].shape[0] == -1
    x = np.random.default_rng(7).random((5, *SHAPE[1:]), dtype=np.float32)
    singles = np.concatenate([m.predict([x[i:i + 1]]) for i in range(5)])
    for batch in (1, 3, 3, 1, 5, 5, 2):
        got = m.predict(x[:batch])
        assert got.shape == (batch, 4)
        np.testing.assert_allclose(got, singles[:batch], rtol=1e-5, atol=1e-6)
    with pytest.raises(InputSpecError):
        m.predict(np.zeros((2, 16, 15, 3), np.float32))
