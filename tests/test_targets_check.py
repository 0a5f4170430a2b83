"""generic_check: each declarative profile rule, model facts, and the report format."""
from __future__ import annotations

import json

import pytest

from edgeship.errors import ModelFormatError
from edgeship.targets import check
from edgeship.facts import peak_activation_bytes, read_facts
from edgeship.targets.rules import generic_check
from edgeship.targets.profile import TargetProfile

from tests._targets_helpers import session_small_models


@pytest.fixture(scope="module")
def small():
    return session_small_models()


def _profile(**kw):
    base = dict(name="tiny", title="test profile", formats=frozenset({"tflite"}),
                quantizations=frozenset({"int8"}), io_dtypes=frozenset({"int8"}), supported_ops=None)
    base.update(kw)
    return TargetProfile(**base)


def kinds(report):
    return [p.kind for p in report.problems if p.blocking]


def test_null_accepts_every_small_model(small):
    for name, path in small.items():
        r = check(path, "null")
        assert r.compatible, (name, r.problems)
        assert r.ops and all(o.placement == "cpu" for o in r.ops)


def test_quantization_mode_detection(small):
    assert read_facts(small["int8"]).quantization == "int8"
    assert read_facts(small["fp32"]).quantization == "fp32"


def test_quantization_rule_names_the_fix(small):
    r = generic_check(small["fp32"], _profile(io_dtypes=frozenset({"int8", "float32"})))
    assert kinds(r) == ["quantization"]
    assert r.problems[0].fix == "re-convert with --quantize int8"


def test_io_dtype_rule_names_the_tensor(small):
    r = generic_check(small["int8"], _profile(io_dtypes=frozenset({"uint8"})))
    facts = read_facts(small["int8"])
    assert kinds(r) == ["dtype", "dtype"]
    assert {p.subject for p in r.problems} == {facts.inputs[0].name, facts.outputs[0].name}


def test_dynamic_shape_rule(small):
    prof = _profile(static_shapes_required=True)
    assert generic_check(small["int8"], prof).compatible
    r = generic_check(small["dynamic_int8"], prof)
    assert kinds(r) == ["dynamic_shape"]
    assert "make input shape static" in r.problems[0].fix and "[1, 16, 16, 3]" in r.problems[0].fix
    assert not generic_check(small["dynamic_int8"], _profile()).problems   # not required -> fine


def test_rank_rule(small):
    r = generic_check(small["int8"], _profile(max_tensor_rank=3))
    assert set(kinds(r)) == {"rank"}
    assert all("rank 4" in p.message for p in r.problems)
    assert generic_check(small["int8"], _profile(max_tensor_rank=4)).compatible


def test_supported_ops_rule(small):
    r = generic_check(small["int8"], _profile(supported_ops=frozenset({"CONV_2D", "DEPTHWISE_CONV_2D"})))
    bad = {p.subject.split("#")[0] for p in r.problems}
    assert bad == {"MEAN", "FULLY_CONNECTED", "SOFTMAX"}
    assert all(p.fix.startswith("replace op") for p in r.problems)
    assert [o.placement for o in r.ops].count("unsupported") == 3


def test_op_version_limits(small):
    versions = {o.op: o.version for o in read_facts(small["int8"]).ops}
    v = versions["CONV_2D"]
    r = generic_check(small["int8"], _profile(op_limits={"CONV_2D": {"max_version": v - 1, "note": "old runtime"}}))
    assert set(kinds(r)) == {"op_version"} and "old runtime" in r.problems[0].message
    assert generic_check(small["int8"], _profile(op_limits={"CONV_2D": {"max_version": v}})).compatible


def test_memory_limit(small):
    facts = read_facts(small["int8"])
    need = facts.params_bytes + facts.peak_activation_bytes
    assert generic_check(small["int8"], _profile(memory_limit_bytes=need)).compatible
    r = generic_check(small["int8"], _profile(memory_limit_bytes=need - 1))
    assert kinds(r) == ["memory"]


def test_format_rule_skips_op_checks(small):
    r = generic_check(small["int8"], _profile(formats=frozenset({"onnx"}), supported_ops=frozenset()))
    assert kinds(r) == ["format"]
    assert {o.placement for o in r.ops} == {"unsupported"}


def test_peak_activation_is_bounded(small):
    facts = read_facts(small["int8"])
    acts = [t.nbytes for t in facts.tensors if not t.is_const]
    assert max(acts) <= peak_activation_bytes(facts) <= sum(acts)


def test_report_is_json_serializable(small):
    d = check(small["hardswish_int8"], "edgetpu").to_dict()
    text = json.dumps(d)
    assert {"target", "compatible", "problems", "ops", "cpu_fallback", "notes"} <= set(json.loads(text))


def test_bad_files_raise_model_format_error(tmp_path, small):
    with pytest.raises(ModelFormatError, match="not found"):
        check(tmp_path / "nope.tflite", "null")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelFormatError):
        check(junk, "null")
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(small["int8"].read_bytes()[:300])
    with pytest.raises(ModelFormatError):
        check(cut, "edgetpu")
    other = tmp_path / "model.bin"
    other.write_bytes(b"hello")
    with pytest.raises(ModelFormatError, match="format"):
        check(other, "null")


@pytest.mark.shared
def test_shared_models_quantization_modes(shared_dir):
    root = shared_dir / "models"
    assert read_facts(root / "mlperf_tiny_kws" / "kws_ref_model_float32.tflite").quantization == "dynamic"
    assert read_facts(root / "mlperf_tiny_kws" / "kws_ref_model.tflite").quantization == "int8"
    assert read_facts(root / "blazeface" / "face_detection_short_range.tflite").quantization == "fp16"


@pytest.mark.shared
def test_onnx_model_on_cpu_targets_and_rejected_by_edgetpu(shared_dir):
    onnx_path = shared_dir / "models" / "yunet" / "yunet_n_320_320.onnx"
    facts = read_facts(onnx_path)
    assert facts.format == "onnx" and facts.quantization == "fp32" and facts.params_bytes > 100_000
    assert check(onnx_path, "null").compatible
    r = check(onnx_path, "edgetpu")
    assert not r.compatible and r.problems[0].kind == "format"
    assert "--to tflite" in r.problems[0].fix
