"""The ONNX pre-check agrees with the runtime and never lets a crafted file escape untyped (issue 11, defect 8)."""
from __future__ import annotations

import random
import tracemalloc

import pytest

import edgeship
from edgeship.errors import EdgeshipError, ModelFormatError
from edgeship.onnx_proto import read_onnx
from tests import _fuzz_onnx as fz
from tests._onnx_models import dense_relu


@pytest.fixture(scope="module")
def onnx_bytes(tmp_path_factory):
    p, _, _ = dense_relu(tmp_path_factory.mktemp("o") / "d.onnx", batch="N", n_in=16, n_out=8)
    return p.read_bytes()


def test_encoder_round_trips(onnx_bytes):
    assert fz.encode(fz.decode(onnx_bytes)) == onnx_bytes


def test_small_file_cannot_make_the_check_allocate(onnx_bytes):
    """A varint where a node's input name belongs made the check call bytes(<huge int>)."""
    tree = fz.decode(onnx_bytes)
    graph = next(v for n, w, v in tree if n == 7)[1]
    node = next(v for n, w, v in graph if n == 1)[1]
    node.insert(0, [1, 0, 1 << 28])  # input "name" as a 256 MB varint
    data = fz.encode(tree)
    tracemalloc.start()
    try:
        with pytest.raises(ModelFormatError):
            read_onnx(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"the check allocated {peak >> 20} MB for a {len(data)}-byte file"


def test_two_graphs_are_refused(onnx_bytes, tmp_path):
    tree = fz.decode(onnx_bytes)
    g = next(f for f in tree if f[0] == 7)
    tree.append([7, 2, g[2]])
    p = tmp_path / "two.onnx"
    p.write_bytes(fz.encode(tree))
    with pytest.raises(ModelFormatError, match="appears 2 times"):
        read_onnx(p.read_bytes())
    with pytest.raises(ModelFormatError):
        edgeship.load(p)


def test_initializer_without_its_data_is_refused(onnx_bytes):
    tree = fz.decode(onnx_bytes)
    graph = next(v for n, w, v in tree if n == 7)[1]
    tensor = next(v for n, w, v in graph if n == 5)[1]
    tensor[:] = [f for f in tensor if f[0] not in (1, 9)] + [[1, 0, 1 << 30]]  # dims [2^30], no data
    with pytest.raises(ModelFormatError, match="declares"):
        read_onnx(fz.encode(tree))


def test_every_wire_type_variant_is_typed(onnx_bytes, tmp_path):
    """Each field of the file re-encoded with each other wire type: read_onnx raises only
    ModelFormatError, and load (check, probe, session) only EdgeshipError subclasses."""
    tree = fz.decode(onnx_bytes)
    total, untyped, loaded = 0, [], 0
    rng = random.Random(7)
    for idx, (holder, i) in enumerate(fz._nodes(tree)):
        for wt in range(8):
            if wt == holder[i][1]:
                continue
            t2 = fz._copy(tree)
            h2, j = fz._nodes(t2)[idx]
            h2[j] = [h2[j][0], wt, fz._scalar(rng, wt)]
            data = fz.encode(t2)
            total += 1
            try:
                read_onnx(data)
            except ModelFormatError:
                continue
            except Exception as exc:  # noqa: BLE001
                untyped.append(f"read_onnx {idx}/{wt}: {type(exc).__name__}: {exc}"[:200])
                continue
            p = tmp_path / f"v{idx}_{wt}.onnx"
            p.write_bytes(data)
            try:
                edgeship.load(p, verify="structure").predict
                loaded += 1
            except EdgeshipError:
                pass
            except Exception as exc:  # noqa: BLE001
                untyped.append(f"load {idx}/{wt}: {type(exc).__name__}: {exc}"[:200])
    assert total > 300
    assert untyped == [], untyped[:5]


def _external_model(folder, location="w.bin"):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.arange(64 * 8, dtype=np.float32).reshape(64, 8), "W")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(folder / "ext.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location=location, size_threshold=0)
    return folder / "ext.onnx", numpy_helper.to_array(w)


def test_external_data_is_read_beside_the_model(tmp_path, monkeypatch):
    """Defect 11: external data was looked up relative to the current folder."""
    import numpy as np

    model, w = _external_model(tmp_path / "models")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    m = edgeship.load(model)
    x = np.ones((2, 64), np.float32)
    np.testing.assert_allclose(m.predict(x), x @ w, rtol=1e-5)
    (tmp_path / "models" / "w.bin").unlink()
    with pytest.raises(ModelFormatError, match="missing"):
        edgeship.load(model)


def test_external_data_outside_the_model_folder_is_refused(tmp_path):
    import onnx

    model, _ = _external_model(tmp_path / "a" / "models")
    m = onnx.load_model_from_string(model.read_bytes())  # external data not loaded from a string
    for t in m.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "../x.bin"
    (tmp_path / "a" / "x.bin").write_bytes((tmp_path / "a" / "models" / "w.bin").read_bytes())
    bad = tmp_path / "a" / "models" / "bad.onnx"
    bad.write_bytes(m.SerializeToString())
    with pytest.raises(ModelFormatError, match="outside the model's folder"):
        edgeship.load(bad)


def test_names_that_are_not_utf8_are_refused_by_the_check(onnx_bytes, tmp_path):
    """Found by `make fuzz` (50,000 ONNX mutants): a symbolic dimension name that is not UTF-8 passed
    the check and made onnxruntime's Python API raise UnicodeDecodeError from load."""
    data = onnx_bytes.replace(b"\x12\x01N", b"\x12\x01\xd3")  # dim_param "N" -> a lone UTF-8 lead byte
    assert data != onnx_bytes
    with pytest.raises(ModelFormatError, match="UTF-8"):
        read_onnx(data)
    p = tmp_path / "bad_name.onnx"
    p.write_bytes(data)
    with pytest.raises(ModelFormatError):
        edgeship.load(p, verify="structure")
