"""Issue 12, speed: the work convert and load no longer repeat (counted, not timed: the timings
are in bench/convert_speed.py, bench/load_speed.py and bench/predict_overhead.py --kws)."""
from __future__ import annotations

import os

import numpy as np
import pytest

import edgeship


def test_cached_load_does_not_parse_again_and_first_load_still_checks(weights, tmp_path, monkeypatch):
    from edgeship import runtime

    monkeypatch.setenv("EDGESHIP_CACHE", str(tmp_path / "cache"))
    calls = []
    real = runtime._read_structure
    monkeypatch.setattr(runtime, "_read_structure", lambda *a: calls.append(1) or real(*a))
    path = weights / "shapes_cnn_int8.tflite"
    first = edgeship.load(path, threads=1)
    assert calls == [1]  # a new file: structure check (and the probe)
    again = edgeship.load(path, threads=1)
    assert calls == [1], "a file already checked by this edgeship and runtime was parsed again"
    x = np.random.default_rng(0).random((1, *first.inputs[0].shape[1:]), dtype=np.float32)
    assert np.array_equal(first.predict(x), again.predict(x))
    edgeship.load(path, threads=1, verify="structure")  # an explicit mode is honoured
    assert calls == [1, 1]


def test_predict_fast_path_agrees_with_the_general_path_on_static_and_float_models(weights):
    m = edgeship.load(weights / "shapes_cnn_int8.tflite", threads=1)
    rng = np.random.default_rng(3)
    shape = (1, *m.inputs[0].shape[1:])
    x = rng.uniform(-2, 2, shape).astype(np.float32)
    assert np.array_equal(m.predict(x), m.predict([x]))
    y = x.copy()
    y.flat[5] = np.nan
    with pytest.raises(edgeship.InputSpecError, match="NaN or inf"):
        m.predict(y)
    huge = np.full(shape, 3e38, np.float32)  # finite; the finite-check's sum of squares overflows
    assert np.array_equal(m.predict(huge), m.predict([huge]))


@pytest.mark.slow
def test_source_references_run_in_batches(monkeypatch):
    pytest.importorskip("keras", reason="needs edgeship[convert]")
    import keras

    from edgeship.converters.sources import load_source

    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((6,), name="x"), keras.layers.Dense(3)])
    src = load_source(m)
    samples = [{"x": np.random.default_rng(i).random((1, 6), dtype=np.float32)} for i in range(40)]
    calls = []
    real = src._runner
    src._runner = lambda feeds: calls.append(feeds["x"].shape[0]) or real(feeds)
    batched = src.run_many(samples, chunk=32)
    assert calls == [32, 8], "the Keras source ran once per sample"
    singles = [src.run(s) for s in samples]
    for b, s in zip(batched, singles):
        assert b[0].shape == s[0].shape == (1, 3)
        np.testing.assert_allclose(b[0], s[0], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.shared
def test_legacy_saved_model_is_loaded_once(shared_dir, monkeypatch):
    """The MLPerf KWS SavedModel: no doomed tf.saved_model.load, and the converter freezes the
    source's own session instead of loading the model twice more."""
    sm = shared_dir / "models" / "mlperf_tiny_kws" / "saved_model"
    if not sm.is_dir():
        pytest.skip(f"{sm} is absent")
    import tensorflow as tf

    from edgeship.converters.sources import load_source
    from edgeship.converters.tflite_common import make_converter, run_converter

    from tensorflow.python.saved_model import loader_impl

    tf2, tf1 = [], []  # tf.saved_model.load calls; TF1 loads (every TF1 loader goes through SavedModelLoader)
    real_tf2, real_tf1 = tf.saved_model.load, loader_impl.SavedModelLoader.load
    monkeypatch.setattr(tf.saved_model, "load", lambda *a, **k: tf2.append(a) or real_tf2(*a, **k))
    monkeypatch.setattr(loader_impl.SavedModelLoader, "load",
                        lambda self, *a, **k: tf1.append(a) or real_tf1(self, *a, **k))
    src = load_source(sm)
    assert src.legacy and not tf2 and len(tf1) == 1
    blob = run_converter(make_converter(src), "fp32")
    assert len(tf1) == 1 and not tf2, "the converter loaded the SavedModel again"
    m = edgeship.load(_write(blob), threads=1)
    x = np.random.default_rng(0).normal(0, 5, (2, 49, 10, 1)).astype(np.float32)
    ref = src.run({src.inputs[0].name: x})[0]
    np.testing.assert_allclose(m.predict(x), ref, rtol=1e-4, atol=1e-5)


def _write(blob: bytes):
    import tempfile
    from pathlib import Path

    p = Path(tempfile.mkdtemp()) / "kws_fp32.tflite"
    p.write_bytes(blob)
    return p


def _count_hashes(monkeypatch):
    from edgeship import runtime

    calls = []
    real = runtime.sha256_bytes
    monkeypatch.setattr(runtime, "sha256_bytes", lambda b: calls.append(len(b)) or real(b))
    return calls


def test_cached_load_of_an_unchanged_file_does_not_hash_it_again(weights, tmp_path, monkeypatch, forget_files):
    import shutil

    from edgeship import probe

    monkeypatch.setenv("EDGESHIP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(probe, "RACY_S", 0.0)  # the copy is brand new: let it count as settled
    path = tmp_path / "m.tflite"
    shutil.copy(weights / "shapes_cnn_int8.tflite", path)
    hashes = _count_hashes(monkeypatch)
    first = edgeship.load(path, threads=1)
    assert len(hashes) == 1
    forget_files()  # a new process: only the on-disk record is left
    again = edgeship.load(path, threads=1)
    assert len(hashes) == 1, "an unchanged, already checked file was hashed again"
    assert again.sha256 == first.sha256


def test_a_file_rewritten_in_place_is_hashed_and_checked_again(weights, tmp_path, monkeypatch):
    import shutil

    from edgeship import probe
    from edgeship._io import sha256_file

    monkeypatch.setenv("EDGESHIP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(probe, "RACY_S", 0.0)
    path = tmp_path / "m.tflite"
    shutil.copy(weights / "shapes_cnn_int8.tflite", path)
    edgeship.load(path, threads=1)
    edgeship.load(path, threads=1)  # leaves the in-process record a repeated load takes
    st = path.stat()
    other = (weights / "shapes_cnn_fp32.tflite").read_bytes()
    with open(path, "r+b") as f:  # same inode, new bytes, then the old mtime put back
        f.truncate(0)
        f.write(other)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    hashes = _count_hashes(monkeypatch)
    m = edgeship.load(path, threads=1)
    assert len(hashes) == 1 and m.sha256 == sha256_file(path) != sha256_file(weights / "shapes_cnn_int8.tflite")
    assert m.inputs[0].dtype == "float32"


def test_a_repeated_load_of_an_unchanged_file_skips_the_format_hash_and_backend_work(weights, tmp_path,
                                                                                      monkeypatch):
    import shutil

    from edgeship import probe, runtime

    monkeypatch.setenv("EDGESHIP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(probe, "RACY_S", 0.0)
    path = tmp_path / "m.tflite"
    shutil.copy(weights / "shapes_cnn_int8.tflite", path)
    first = edgeship.load(path, threads=1)
    edgeship.load(path, threads=1)
    calls = []
    for name in ("sniff_format", "known_sha256", "_choose_backend", "probed_ok", "sha256_bytes"):
        real = getattr(runtime, name)
        monkeypatch.setattr(runtime, name, lambda *a, _n=name, _f=real, **k: calls.append(_n) or _f(*a, **k))
    x = np.random.default_rng(0).standard_normal((2, *first.inputs[0].shape[1:])).astype(np.float32)
    again = edgeship.load(path, threads=1)
    assert calls == [] and again.sha256 == first.sha256 and again.backend == first.backend
    np.testing.assert_array_equal(again.predict(x), first.predict(x))
    edgeship.load(path, threads=2)  # other options: the full path
    assert "probed_ok" in calls
    calls.clear()
    shutil.copy(weights / "shapes_cnn_fp32.tflite", path)  # changed: the full path, hashed again
    m = edgeship.load(path, threads=1)
    assert "sha256_bytes" in calls and m.sha256 != first.sha256 and m.inputs[0].dtype == "float32"


def test_a_file_changed_just_before_it_was_read_is_hashed_on_every_load(weights, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("EDGESHIP_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "m.tflite"
    shutil.copy(weights / "shapes_cnn_int8.tflite", path)  # ctime: now (RACY_S not yet passed)
    hashes = _count_hashes(monkeypatch)
    for _ in range(3):
        edgeship.load(path, threads=1)
    assert len(hashes) == 3, "a fingerprint of a file changed within the clock's resolution was trusted"


@pytest.mark.slow
def test_keras_reference_runs_beside_the_export_and_its_errors_still_surface(tmp_path, monkeypatch):
    """The reference runs in its own thread, but the two never trace or run the model at once: both
    hold sources.KERAS_LOCK (a segfault in TensorFlow's op creation was seen when they did)."""
    pytest.importorskip("keras", reason="needs edgeship[convert]")
    import threading

    import keras

    from edgeship.converters import convert, sources
    from edgeship.converters.sources import Source
    from edgeship.errors import ConversionError

    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((8, 8, 1), name="x"), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                          keras.layers.Dense(3)])
    seen, graph_work = [], []
    real, real_outputs = Source.run_many, sources.keras_output_list
    monkeypatch.setattr(Source, "run_many", lambda self, *a, **k: seen.append(threading.current_thread().name)
                        or real(self, *a, **k))
    # called while the export traces the model and after each run of the reference
    monkeypatch.setattr(sources, "keras_output_list", lambda out: graph_work.append(
        (threading.current_thread().name, sources.KERAS_LOCK._is_owned())) or real_outputs(out))
    res = convert(m, to="tflite", out=tmp_path / "m.tflite")
    assert res.outputs[0].parity["passed"]
    assert seen == ["edgeship-source-reference"], "the Keras reference did not run beside the export"
    assert {name for name, _ in graph_work} == {"MainThread", "edgeship-source-reference"}
    assert all(owned for _, owned in graph_work), graph_work

    def broken(self, *a, **k):
        raise ConversionError("the source failed on the validation inputs")

    monkeypatch.setattr(Source, "run_many", broken)
    with pytest.raises(ConversionError, match="failed on the validation inputs"):
        convert(m, to="tflite", out=tmp_path / "m2.tflite")
    assert not (tmp_path / "m2.tflite").exists(), "an unchecked file was left behind"
    assert not any(t.name == "edgeship-source-reference" for t in threading.enumerate())


@pytest.mark.slow
def test_a_keras_model_is_converted_from_one_frozen_trace_with_a_signature(tmp_path, monkeypatch):
    """No round trip through a temporary SavedModel (what from_keras_model does: export, write, load
    twice); the file still has a serving_default signature, under the model's own names, and its
    signature runner and edgeship.load give the Keras outputs, in order, for a two-input two-output model."""
    pytest.importorskip("keras", reason="needs edgeship[convert]")
    import keras
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from edgeship.converters import convert

    def no_saved_model(*a, **k):
        raise AssertionError("the Keras conversion went through a temporary SavedModel")

    monkeypatch.setattr(keras.export.ExportArchive, "write_out", no_saved_model)
    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_keras_model", no_saved_model)
    keras.utils.set_random_seed(0)
    a, b = keras.Input((8,), name="feat"), keras.Input((4,), name="aux")
    h = keras.layers.Dense(16, activation="relu", name="trunk")(keras.layers.Concatenate()([a, b]))
    m = keras.Model([a, b], [keras.layers.Dense(3, name="scores")(h), keras.layers.Dense(2, name="boxes")(h)])
    res = convert(m, to="tflite", out=tmp_path / "m.tflite")
    assert res.outputs[0].parity["passed"]
    assert [o["name"] for o in res.outputs[0].parity["outputs"]] == ["scores", "boxes"]
    rng = np.random.default_rng(0)
    x = {"feat": rng.normal(size=(1, 8)).astype(np.float32), "aux": rng.normal(size=(1, 4)).astype(np.float32)}
    ref = [np.asarray(o) for o in m([x["feat"], x["aux"]], training=False)]
    it = Interpreter(model_path=str(tmp_path / "m.tflite"))
    assert it.get_signature_list() == {"serving_default": {"inputs": ["aux", "feat"], "outputs": ["boxes", "scores"]}}
    got = it.get_signature_runner("serving_default")(**x)
    np.testing.assert_allclose(got["scores"], ref[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["boxes"], ref[1], rtol=1e-5, atol=1e-6)
    loaded = edgeship.load(tmp_path / "m.tflite", threads=1)
    assert [s.name for s in loaded.inputs] == ["feat", "aux"]
    assert [s.name for s in loaded.outputs] == ["scores", "boxes"]
    out = loaded.predict([x["feat"], x["aux"]])
    np.testing.assert_allclose(out["scores"], ref[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["boxes"], ref[1], rtol=1e-5, atol=1e-6)
