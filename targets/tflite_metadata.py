"""TFLite model metadata (``TFLITE_METADATA``) written and read without tflite-support.

Android's TFLite Support Library / Task Library (``MetadataExtractor``) reads a
``ModelMetadata`` flatbuffer (schema ``metadata_schema.fbs``, file identifier
``M001``) stored in a model buffer named ``TFLITE_METADATA``, and the
associated files (labels ...) from a zip archive appended to the model bytes.
tflite-support is abandoned and does not install on current Python/numpy, so
this module writes the same layout with the ``flatbuffers`` Builder and the
TFLite schema bindings that ship with ai-edge-litert, and reads it back with
edgeship's bounds-checked flatbuffer reader to verify what was written.

Fields written (all in schema 1.0.0, so ``min_parser_version`` is "1.0.0"):
model name/description/version/author/license; per input/output tensor: name,
description, content (feature or image with colour space), normalization
(``NormalizationOptions`` mean/std), min/max stats and associated files
(``TENSOR_AXIS_LABELS`` for a labels file).

Example:
    >>> from edgeship.targets.tflite_metadata import TensorInfo, ModelInfo, build_metadata, parse_metadata
    >>> info = ModelInfo("kws", "keyword spotter", inputs=[TensorInfo("mfcc", mean=(0.0,), std=(1.0,))],
    ...                  outputs=[TensorInfo("scores", labels_file="labels.txt")])
    >>> meta = parse_metadata(build_metadata(info))
    >>> meta["name"], meta["inputs"][0]["normalization"], meta["outputs"][0]["associated_files"][0]["type"]
    ('kws', {'mean': [0.0], 'std': [1.0]}, 'TENSOR_AXIS_LABELS')
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputSpecError, ModelFormatError

METADATA_NAME = "TFLITE_METADATA"
FILE_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"

# enum AssociatedFileType : byte
FILE_TYPES = {"UNKNOWN": 0, "DESCRIPTIONS": 1, "TENSOR_AXIS_LABELS": 2, "TENSOR_VALUE_LABELS": 3,
              "TENSOR_AXIS_SCORE_CALIBRATION": 4, "VOCABULARY": 5}
# enum ColorSpaceType : byte
COLOR_SPACES = {"UNKNOWN": 0, "RGB": 1, "GRAYSCALE": 2}
# union ContentProperties / ProcessUnitOptions type codes
_CONTENT_FEATURE, _CONTENT_IMAGE = 1, 2
_PROCESS_NORMALIZATION = 1


@dataclass(frozen=True)
class AssociatedFile:
    name: str
    description: str = ""
    type: str = "TENSOR_AXIS_LABELS"
    locale: str = ""


@dataclass
class TensorInfo:
    """What an app needs to know about one input or output.

    ``mean``/``std``: normalization ``(x - mean) / std`` applied *before* the model
    (per channel, or one value for all). ``content``: ``"feature"`` or ``"image"``
    (then ``color_space`` RGB/GRAYSCALE). ``labels_file``: name of the labels file
    associated with this tensor (its bytes go in ``associated_files`` of
    :func:`populate`).
    """

    name: str
    description: str = ""
    content: str = "feature"
    color_space: str = "UNKNOWN"
    mean: Optional[Sequence[float]] = None
    std: Optional[Sequence[float]] = None
    stats_min: Optional[Sequence[float]] = None
    stats_max: Optional[Sequence[float]] = None
    labels_file: Optional[str] = None
    files: Tuple[AssociatedFile, ...] = ()


@dataclass
class ModelInfo:
    name: str
    description: str = ""
    version: str = ""
    author: str = ""
    license: str = ""
    inputs: List[TensorInfo] = field(default_factory=list)
    outputs: List[TensorInfo] = field(default_factory=list)


def _validate(info: ModelInfo) -> None:
    if not info.name:
        raise InputSpecError("metadata needs a model name, got an empty string")
    for t in list(info.inputs) + list(info.outputs):
        if t.content not in ("feature", "image"):
            raise InputSpecError(f"tensor {t.name!r}: content must be 'feature' or 'image', got {t.content!r}")
        if t.color_space not in COLOR_SPACES:
            raise InputSpecError(f"tensor {t.name!r}: color_space must be one of {sorted(COLOR_SPACES)}, "
                                 f"got {t.color_space!r}")
        if (t.mean is None) != (t.std is None):
            raise InputSpecError(f"tensor {t.name!r}: give both mean and std for normalization, or neither")
        if t.std is not None:
            if len(t.mean) != len(t.std) or not len(t.std):
                raise InputSpecError(f"tensor {t.name!r}: mean {list(t.mean)} and std {list(t.std)} "
                                     f"must be non-empty and the same length")
            if any(not np.isfinite(v) for v in list(t.mean) + list(t.std)) or any(s == 0 for s in t.std):
                raise InputSpecError(f"tensor {t.name!r}: mean/std must be finite and std non-zero, "
                                     f"got mean={list(t.mean)} std={list(t.std)}")


# --- writing ------------------------------------------------------------------------
def _fb():
    try:  # a dependency of ai-edge-litert, so present wherever edgeship's core runtime is
        import flatbuffers
    except ImportError as exc:
        from ..errors import MissingDependencyError

        raise MissingDependencyError(f"'flatbuffers' is needed to write TFLite models ({exc}); "
                                     "install it with: pip install flatbuffers") from exc
    return flatbuffers


def _strings(b, values: Dict[str, str]) -> Dict[str, int]:
    return {k: b.CreateString(v) for k, v in values.items() if v}


def _offsets_vector(b, offsets: List[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _floats_vector(b, values: Sequence[float]) -> int:
    return b.CreateNumpyVector(np.asarray(values, dtype="<f4"))


def _associated_file(b, f: AssociatedFile) -> int:
    if f.type not in FILE_TYPES:
        raise InputSpecError(f"associated file {f.name!r}: type must be one of {sorted(FILE_TYPES)}, got {f.type!r}")
    s = _strings(b, {"name": f.name, "description": f.description, "locale": f.locale})
    b.StartObject(4)
    if "name" in s:
        b.PrependUOffsetTRelativeSlot(0, s["name"], 0)
    if "description" in s:
        b.PrependUOffsetTRelativeSlot(1, s["description"], 0)
    b.PrependInt8Slot(2, FILE_TYPES[f.type], 0)
    if "locale" in s:
        b.PrependUOffsetTRelativeSlot(3, s["locale"], 0)
    return b.EndObject()


def _tensor_files(t: TensorInfo) -> List[AssociatedFile]:
    files = list(t.files)
    if t.labels_file:
        files.insert(0, AssociatedFile(t.labels_file, "Labels for the classes of this output.",
                                       "TENSOR_AXIS_LABELS"))
    return files


def _tensor(b, t: TensorInfo) -> int:
    s = _strings(b, {"name": t.name, "description": t.description})
    # Content { content_properties (union), range }
    if t.content == "image":
        b.StartObject(2)                       # ImageProperties { color_space, default_size }
        b.PrependInt8Slot(0, COLOR_SPACES[t.color_space], 0)
        props, props_type = b.EndObject(), _CONTENT_IMAGE
    else:
        b.StartObject(0)                       # FeatureProperties {}
        props, props_type = b.EndObject(), _CONTENT_FEATURE
    b.StartObject(3)
    b.PrependUint8Slot(0, props_type, 0)
    b.PrependUOffsetTRelativeSlot(1, props, 0)
    content = b.EndObject()

    process_units = None
    if t.mean is not None:
        mean, std = _floats_vector(b, t.mean), _floats_vector(b, t.std)
        b.StartObject(2)                       # NormalizationOptions { mean, std }
        b.PrependUOffsetTRelativeSlot(0, mean, 0)
        b.PrependUOffsetTRelativeSlot(1, std, 0)
        norm = b.EndObject()
        b.StartObject(2)                       # ProcessUnit { options (union) }
        b.PrependUint8Slot(0, _PROCESS_NORMALIZATION, 0)
        b.PrependUOffsetTRelativeSlot(1, norm, 0)
        process_units = _offsets_vector(b, [b.EndObject()])

    stats = None
    if t.stats_min is not None or t.stats_max is not None:
        vmax = _floats_vector(b, t.stats_max) if t.stats_max is not None else None
        vmin = _floats_vector(b, t.stats_min) if t.stats_min is not None else None
        b.StartObject(2)                       # Stats { max, min }
        if vmax is not None:
            b.PrependUOffsetTRelativeSlot(0, vmax, 0)
        if vmin is not None:
            b.PrependUOffsetTRelativeSlot(1, vmin, 0)
        stats = b.EndObject()

    files = _tensor_files(t)
    files_vec = _offsets_vector(b, [_associated_file(b, f) for f in files]) if files else None

    b.StartObject(7)                           # TensorMetadata
    if "name" in s:
        b.PrependUOffsetTRelativeSlot(0, s["name"], 0)
    if "description" in s:
        b.PrependUOffsetTRelativeSlot(1, s["description"], 0)
    b.PrependUOffsetTRelativeSlot(3, content, 0)
    if process_units is not None:
        b.PrependUOffsetTRelativeSlot(4, process_units, 0)
    if stats is not None:
        b.PrependUOffsetTRelativeSlot(5, stats, 0)
    if files_vec is not None:
        b.PrependUOffsetTRelativeSlot(6, files_vec, 0)
    return b.EndObject()


def build_metadata(info: ModelInfo) -> bytes:
    """Serialise ``info`` as a ``ModelMetadata`` flatbuffer (identifier ``M001``)."""
    _validate(info)
    fb = _fb()
    b = fb.Builder(1024)
    inputs = _offsets_vector(b, [_tensor(b, t) for t in info.inputs])
    outputs = _offsets_vector(b, [_tensor(b, t) for t in info.outputs])
    s = _strings(b, {"name": info.name, "description": info.description})
    b.StartObject(7)                           # SubGraphMetadata
    if "name" in s:
        b.PrependUOffsetTRelativeSlot(0, s["name"], 0)
    if "description" in s:
        b.PrependUOffsetTRelativeSlot(1, s["description"], 0)
    b.PrependUOffsetTRelativeSlot(2, inputs, 0)
    b.PrependUOffsetTRelativeSlot(3, outputs, 0)
    subgraph = b.EndObject()
    subgraphs = _offsets_vector(b, [subgraph])
    m = _strings(b, {"name": info.name, "description": info.description, "version": info.version,
                     "author": info.author, "license": info.license,
                     "min_parser_version": MIN_PARSER_VERSION})
    b.StartObject(8)                           # ModelMetadata
    for slot, key in ((0, "name"), (1, "description"), (2, "version"), (4, "author"), (5, "license"),
                      (7, "min_parser_version")):
        if key in m:
            b.PrependUOffsetTRelativeSlot(slot, m[key], 0)
    b.PrependUOffsetTRelativeSlot(3, subgraphs, 0)
    b.Finish(b.EndObject(), file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())


# --- reading --------------------------------------------------------------------------
def _slot(i: int) -> int:
    return 4 + 2 * i


def _floats(t, i: int, what: str) -> Optional[List[float]]:
    v = t.vector(_slot(i), "f", what)
    return [float(x) for x in v] if v else None


def _read_files(t, i: int) -> List[dict]:
    names = {v: k for k, v in FILE_TYPES.items()}
    out = []
    for f in t.tables(_slot(i), "AssociatedFile"):
        out.append({"name": f.string(_slot(0), "file name"), "description": f.string(_slot(1), "file description"),
                    "type": names.get(f.scalar(_slot(2), "b", 0), "UNKNOWN"), "locale": f.string(_slot(3), "locale")})
    return out


def _read_tensor(t) -> dict:
    d = {"name": t.string(_slot(0), "tensor name"), "description": t.string(_slot(1), "tensor description"),
         "content": None, "color_space": None, "normalization": None, "stats": None,
         "associated_files": _read_files(t, 6)}
    c = t.table(_slot(3), "Content")
    if c is not None:
        kind = c.scalar(_slot(0), "B", 0)
        d["content"] = {_CONTENT_FEATURE: "feature", _CONTENT_IMAGE: "image", 3: "bounding_box"}.get(kind, "unknown")
        if kind == _CONTENT_IMAGE:
            props = c.table(_slot(1), "ImageProperties")
            cs = props.scalar(_slot(0), "b", 0) if props is not None else 0
            d["color_space"] = {v: k for k, v in COLOR_SPACES.items()}.get(cs, "UNKNOWN")
    for pu in t.tables(_slot(4), "ProcessUnit"):
        if pu.scalar(_slot(0), "B", 0) == _PROCESS_NORMALIZATION:
            n = pu.table(_slot(1), "NormalizationOptions")
            if n is not None:
                d["normalization"] = {"mean": _floats(n, 0, "mean"), "std": _floats(n, 1, "std")}
    st = t.table(_slot(5), "Stats")
    if st is not None:
        d["stats"] = {"max": _floats(st, 0, "stats max"), "min": _floats(st, 1, "stats min")}
    return d


def parse_metadata(data: bytes) -> dict:
    """Read a ``ModelMetadata`` flatbuffer into a plain dict (bounds-checked).

    Raises:
        ModelFormatError: not an M001 metadata flatbuffer, or damaged.
    """
    from ..tflite_schema import _Buf, _Table

    data = bytes(data)
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise ModelFormatError(f"not TFLite metadata: expected file identifier {FILE_IDENTIFIER!r} at bytes 4-8, "
                               f"got {data[4:8]!r}")
    buf = _Buf(data)
    root = _Table(buf, buf.u32(0, "root offset"), "ModelMetadata")
    sgs = []
    for sg in root.tables(_slot(3), "SubGraphMetadata"):
        sgs.append({"name": sg.string(_slot(0), "subgraph name"),
                    "description": sg.string(_slot(1), "subgraph description"),
                    "inputs": [_read_tensor(t) for t in sg.tables(_slot(2), "TensorMetadata")],
                    "outputs": [_read_tensor(t) for t in sg.tables(_slot(3), "TensorMetadata")],
                    "associated_files": _read_files(sg, 4)})
    main = sgs[0] if sgs else {"inputs": [], "outputs": []}
    return {"name": root.string(_slot(0), "name"), "description": root.string(_slot(1), "description"),
            "version": root.string(_slot(2), "version"), "author": root.string(_slot(4), "author"),
            "license": root.string(_slot(5), "license"), "associated_files": _read_files(root, 6),
            "min_parser_version": root.string(_slot(7), "min_parser_version"),
            "subgraphs": sgs, "inputs": main["inputs"], "outputs": main["outputs"]}


# --- the model file -------------------------------------------------------------------
def _strip_zip(model: bytes) -> bytes:
    """The flatbuffer part of a model that may carry an appended zip of associated files."""
    try:
        with zipfile.ZipFile(io.BytesIO(model)) as z:
            infos = z.infolist()
            if not infos:
                return model
            # the archive starts at the first local header; offsets are absolute in our files
            start = min(i.header_offset for i in infos)
            return model[:start] if model[start:start + 4] == b"PK\x03\x04" else model
    except zipfile.BadZipFile:
        return model


def populate(model: bytes, info: ModelInfo, associated_files: Optional[Dict[str, bytes]] = None) -> bytes:
    """Return ``model`` with ``info`` as ``TFLITE_METADATA`` and the files zipped at its end.

    Replaces metadata/associated files the model already carried. Every file named
    in ``info`` must be given in ``associated_files`` and vice versa, and the tensor
    lists must match the model's main subgraph inputs/outputs.

    Example:
        >>> # data = populate(open("m.tflite","rb").read(), info, {"labels.txt": b"yes\\nno\\n"})
    """
    from ..tflite_schema import read_tflite

    associated_files = dict(associated_files or {})
    base = _strip_zip(bytes(model))
    parsed = read_tflite(base)
    sg = parsed.main
    if len(info.inputs) != len(sg.inputs) or len(info.outputs) != len(sg.outputs):
        raise InputSpecError(f"metadata describes {len(info.inputs)} input(s)/{len(info.outputs)} output(s); "
                             f"the model has {len(sg.inputs)}/{len(sg.outputs)}")
    named = {f.name for t in list(info.inputs) + list(info.outputs) for f in _tensor_files(t)}
    if named != set(associated_files):
        raise InputSpecError(f"associated files named in metadata {sorted(named)} must match the files "
                             f"given {sorted(associated_files)}")
    meta = build_metadata(info)

    schema = __import__("ai_edge_litert.schema_py_generated", fromlist=["ModelT"])
    fb = _fb()
    obj = schema.ModelT.InitFromPackedBuf(bytearray(base), 0)
    obj.buffers = list(obj.buffers or [])
    obj.metadata = list(obj.metadata or [])
    old = [m for m in obj.metadata if m.name in (METADATA_NAME, METADATA_NAME.encode())]
    buf = schema.BufferT()
    buf.data = np.frombuffer(meta, dtype=np.uint8)
    if old:  # replace in place: the old buffer is owned by the metadata entry
        obj.buffers[old[0].buffer] = buf
    else:
        obj.buffers.append(buf)
        entry = schema.MetadataT()
        entry.name = METADATA_NAME
        entry.buffer = len(obj.buffers) - 1
        obj.metadata.append(entry)
    b = fb.Builder(len(base) + len(meta) + 1024)
    b.Finish(obj.Pack(b), file_identifier=b"TFL3")
    out = bytes(b.Output())
    if associated_files:
        bio = io.BytesIO()
        bio.write(out)
        with zipfile.ZipFile(bio, "a", compression=zipfile.ZIP_STORED) as z:  # STORED: what the
            for name in sorted(associated_files):                            # Java extractor reads
                zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # fixed: deterministic
                z.writestr(zi, associated_files[name])
        out = bio.getvalue()
    read_tflite(out)  # the result must still be a valid model
    return out


def read_model_metadata(model: bytes) -> Optional[dict]:
    """``TFLITE_METADATA`` of a model as a dict with ``files`` (name -> bytes), or None."""
    from ..tflite_schema import read_tflite

    model = bytes(model)
    parsed = read_tflite(model)
    raw = parsed.metadata.get(METADATA_NAME)
    if raw is None:
        return None
    meta = parse_metadata(bytes(raw))
    files: Dict[str, bytes] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(model)) as z:
            for zi in z.infolist():
                files[zi.filename] = z.read(zi)
    except zipfile.BadZipFile:
        pass
    meta["files"] = files
    return meta


def labels_bytes(labels: Sequence[str]) -> bytes:
    """One label per line (the TENSOR_AXIS_LABELS format), UTF-8."""
    bad = [l for l in labels if "\n" in str(l) or "\r" in str(l)]
    if bad:
        raise InputSpecError(f"labels cannot contain line breaks, got {bad[:3]}")
    return ("\n".join(str(l) for l in labels) + "\n").encode("utf-8")


__all__ = ["METADATA_NAME", "AssociatedFile", "TensorInfo", "ModelInfo", "build_metadata", "parse_metadata",
           "populate", "read_model_metadata", "labels_bytes"]
