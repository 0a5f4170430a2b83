"""Coral Edge TPU: compiler rules, single partition, compiled twins, fake compiler, delegate."""
from __future__ import annotations

import pytest

from edgeship.errors import TargetError
from edgeship.targets import check
from edgeship.targets import edgetpu
from edgeship.facts import read_facts

from tests._targets_helpers import FAKE_COMPILER_LOG, install_fake_compiler, session_small_models

CORAL = ("mobilenet_v1_0.25_128_quant", "split_concat", "keras_lstm_mnist_ptq")


@pytest.fixture(scope="module")
def small():
    return session_small_models()


@pytest.fixture
def no_compiler(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))


@pytest.fixture
def no_delegate(monkeypatch):
    monkeypatch.setattr(edgetpu, "delegate_available", lambda: False)


@pytest.mark.shared
@pytest.mark.parametrize("name", CORAL)
def test_coral_cpu_models_fully_mapped(name, no_compiler, shared_dir):
    path = shared_dir / "models" / "edgetpu" / f"{name}.tflite"
    r = check(path, "edgetpu")
    assert r.compatible, r.problems
    assert r.ops and all(o.placement == "tpu" for o in r.ops)
    assert r.cpu_fallback == [] and r.details["partition_ends_at"] is None
    assert r.details["params_fit_on_chip"] is True
    assert not edgetpu.is_compiled(path)


@pytest.mark.shared
@pytest.mark.parametrize("name", CORAL)
def test_compiled_twins_are_recognised(name, no_delegate, shared_dir):
    path = shared_dir / "models" / "edgetpu" / f"{name}_edgetpu.tflite"
    assert edgetpu.is_compiled(path) and edgetpu.is_compiled(path.read_bytes())
    r = check(path, "edgetpu")
    assert r.compatible and r.details["compiled"] is True and r.details["segments"] >= 1
    assert [o.placement for o in r.ops if o.op == edgetpu.CUSTOM_OP] == ["tpu"] * r.details["segments"]
    twin_ops = len(read_facts(path.with_name(f"{name}.tflite")).ops)
    assert len(r.details["mapped_inside"]) == twin_ops
    runtime = [p for p in r.problems if p.kind == "runtime"]
    assert runtime and not runtime[0].blocking and "libedgetpu.so.1" in runtime[0].message
    if not edgetpu.delegate_available():   # edgeship.load says why a compiled model cannot run here
        import edgeship

        with pytest.raises(TargetError, match="libedgetpu.so.1"):
            edgeship.load(path)


def test_float_model_rejected(small, no_compiler):
    r = check(small["fp32"], "edgetpu")
    assert not r.compatible
    assert [p.kind for p in r.blocking] == ["quantization"]
    assert "float" in r.problems[0].message and "--quantize int8" in r.problems[0].fix
    assert all(o.placement == "cpu" for o in r.ops)


def test_dynamic_input_rejected(small, no_compiler):
    r = check(small["dynamic_int8"], "edgetpu")
    assert not r.compatible
    assert [p.kind for p in r.blocking] == ["dynamic_shape"]
    assert "static" in r.problems[0].fix


def test_unsupported_op_ends_the_partition(small, no_compiler):
    r = check(small["hardswish_int8"], "edgetpu")
    assert not r.compatible
    (p,) = r.blocking
    assert p.kind == "unsupported_op" and p.subject.startswith("HARD_SWISH#")
    assert "ReLU6" in p.fix and "partition ends here" in p.message
    placements = [(o.op, o.placement) for o in r.ops]
    cut = [op for op, _ in placements].index("HARD_SWISH")
    assert all(pl == "tpu" for _, pl in placements[:cut])
    assert all(pl == "cpu" for _, pl in placements[cut:])
    assert "already ended" in r.ops[cut + 1].reason       # supported, but after the cut
    assert len(r.cpu_fallback) == len(placements) - cut
    assert r.details["partition_ends_at"] == p.subject


def test_param_cache_overflow_is_a_warning(small, monkeypatch, no_compiler):
    monkeypatch.setattr(edgetpu, "PARAM_CACHE_BYTES", 64)
    r = check(small["int8"], "edgetpu")
    mem = [p for p in r.problems if p.kind == "memory"]
    assert r.compatible and mem and not mem[0].blocking and "streams from host memory" in mem[0].message
    assert r.details["params_fit_on_chip"] is False


def test_three_innermost_dims_rule():
    assert edgetpu._dims_ok((1, 8, 8, 3)) and edgetpu._dims_ok((8, 3)) and edgetpu._dims_ok((1, 1, 4, 4, 4))
    assert not edgetpu._dims_ok((2, 8, 8, 3)) and not edgetpu._dims_ok((1, 2, 3, 4, 5))


def test_parse_compiler_log():
    log = edgetpu.parse_compiler_log(FAKE_COMPILER_LOG)
    assert log.version == "16.0.384591198" and log.ok
    assert (log.tpu_ops, log.cpu_ops, log.subgraphs) == (2, 5, 1)
    assert log.on_chip_bytes == 1536 and log.off_chip_bytes == 0
    assert len(log.rows) == 7 and ("HARD_SWISH", 1, "Operation not supported") in log.rows
    assert len(log.unmapped) == 5


def test_parse_old_style_table_only_log():
    text = ("Edge TPU Compiler version 14.1.317412892\nInput: m.tflite\nOutput: m_edgetpu.tflite\n"
            "Operator Count Status\nCONV_2D 11 Mapped to Edge TPU\n"
            "RESIZE_NEAREST_NEIGHBOR 1 Operation version not supported\n")
    log = edgetpu.parse_compiler_log(text)
    assert (log.tpu_ops, log.cpu_ops) == (11, 1) and log.version == "14.1.317412892"


def test_fake_compiler_on_path(small, tmp_path, monkeypatch):
    install_fake_compiler(tmp_path / "bin")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert edgetpu.compiler_path() == str(tmp_path / "bin" / "edgetpu_compiler")
    out, log = edgetpu.compile_model(small["hardswish_int8"], tmp_path / "out")
    assert out.name == "small_hardswish_int8_edgetpu.tflite" and out.is_file() and log.tpu_ops == 2
    r = check(small["hardswish_int8"], "edgetpu")
    comp = r.details["compiler"]
    assert comp["version"] == "16.0.384591198" and comp["tpu_ops"] == r.details["tpu_ops"] == 2
    assert not any("edgeship predicted" in n for n in r.notes)     # prediction agrees with the compiler
    assert any(p.kind == "compiler" and p.subject == "HARD_SWISH" for p in r.problems)


def test_fake_compiler_failure_is_a_target_error(small, tmp_path, monkeypatch):
    install_fake_compiler(tmp_path / "bin", exit_code=1)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(TargetError, match="failed"):
        edgetpu.compile_model(small["int8"], tmp_path / "out")


def test_no_compiler_says_so(small, no_compiler):
    with pytest.raises(TargetError, match="not on PATH"):
        edgetpu.compile_model(small["int8"])
    assert any("not on PATH" in n for n in check(small["int8"], "edgetpu").notes)


def test_delegate_detection_matches_the_system():
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL("libedgetpu.so.1")
        loadable = True
    except OSError:
        loadable = False
    if loadable:
        assert edgetpu.delegate_available()
    elif ctypes.util.find_library("edgetpu") is None:
        assert not edgetpu.delegate_available()


def test_models_converted_by_edgeship(tmp_path, no_compiler):
    import numpy as np

    keras = pytest.importorskip("keras", reason="converting needs edgeship[convert]")
    from edgeship.converters import convert

    keras.utils.set_random_seed(0)
    inp = keras.Input(shape=(16, 16, 3), batch_size=1)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(4, activation="softmax")(x))
    cal = np.random.default_rng(0).uniform(-1, 1, (20, 16, 16, 3)).astype(np.float32)
    int8 = tmp_path / "m_int8.tflite"
    convert(model, to="tflite", quantize="int8", calibration=cal, out=int8)
    r = check(int8, "edgetpu")
    assert r.compatible and {o.placement for o in r.ops} == {"tpu"}
    fp32 = tmp_path / "m_fp32.tflite"
    convert(model, to="tflite", out=fp32)
    r = check(fp32, "edgetpu")
    assert [p.kind for p in r.blocking] == ["quantization"]
    f_io = tmp_path / "m_int8_float_io.tflite"
    convert(model, to="tflite", quantize="int8", calibration=cal, out=f_io, io_dtype="float32")
    r = check(f_io, "edgetpu")
    assert r.compatible, r.problems
    ops = [(o.op, o.placement) for o in r.ops]
    assert ops[0] == ("QUANTIZE", "cpu") and ops[-1] == ("DEQUANTIZE", "cpu")
    assert all(pl == "tpu" for _, pl in ops[1:-1])
    warn = [p for p in r.problems if p.kind == "dtype"]
    assert len(warn) == 2 and not any(p.blocking for p in warn) and "--io-dtype int8" in warn[0].fix
