"""Android phones: LiteRT (TFLite) with metadata, an fp16 variant for the GPU delegate,
a GPU-delegate compatibility check and an ``assets/`` folder an app can drop in.

GPU compatibility is decided per op from the rules of LiteRT's own checker
(``tensorflow/lite/tools/versioning/gpu_compatibility.cc``), kept here as data.
LiteRT's analyzer (``ai_edge_litert._pywrap_analyzer_wrapper.ModelAnalyzer(...,
gpu_compatibility=True)``, what ``tf.lite.experimental.Analyzer.analyze`` calls) is
run as well and its verdict reported, but in ai-edge-litert 2.3.0 and TF 2.21 it
reported TOPK_V2, 3-input ADD_N and SYMMETRIC MIRROR_PAD as compatible although
the checker rejects them, so the op table decides.

Example:
    >>> from edgeship.targets.android import gpu_op_problem
    >>> gpu_op_problem("TOPK_V2", n_inputs=2)
    'GPU delegate has no kernel for TOPK_V2'
    >>> gpu_op_problem("CONV_2D", n_inputs=3) is None
    True
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from .._io import atomic_write_bytes, atomic_write_json, atomic_write_text, sha256_bytes
from ..errors import InputSpecError, ModelFormatError, ParityError
from ..facts import QuantMode

from .profile import DeviceSpec, Staged, TargetProfile, register_target

PathOrBytes = Union[str, os.PathLike, bytes]

# Builtin ops LiteRT's GPU delegate accepts (the cases of CheckGpuDelegateCompatibility).
GPU_DELEGATE_OPS = frozenset({
    "ADD", "ADD_N", "AVERAGE_POOL_2D", "BATCH_MATMUL", "CAST", "CONCATENATION", "CONV_2D", "CUMSUM",
    "DENSIFY", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE", "DEQUANTIZE", "EMBEDDING_LOOKUP",
    "DYNAMIC_UPDATE_SLICE", "FULLY_CONNECTED", "GATHER", "HARD_SWISH", "LSTM", "MAX_POOL_2D", "MEAN",
    "MUL", "PACK", "ONE_HOT", "QUANTIZE", "RELU_N1_TO_1", "PRELU", "RESHAPE", "SELECT", "SELECT_V2",
    "SLICE", "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SPLIT_V", "STRIDED_SLICE", "TILE", "TRANSPOSE",
    "TRANSPOSE_CONV", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RELU", "RELU6", "LEAKY_RELU",
    "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "SUM", "PAD", "PADV2", "MIRROR_PAD", "ABS", "CEIL",
    "COS", "ELU", "EXP", "FLOOR", "GELU", "LOG", "LOGISTIC", "NEG", "RSQRT", "SIGN", "SIN", "SQRT",
    "SQUARE", "TANH", "ATAN2", "DIV", "EQUAL", "FLOOR_DIV", "FLOOR_MOD", "GREATER", "GREATER_EQUAL",
    "LOGICAL_AND", "LESS", "LESS_EQUAL", "MAXIMUM", "MINIMUM", "NOT_EQUAL", "POW",
    "SQUARED_DIFFERENCE", "SUB", "STABLEHLO_CLAMP",
})
GPU_DELEGATE_CUSTOM_OPS = frozenset({"Convolution2DTransposeBias", "MaxPoolingWithArgmax2D",
                                     "MaxUnpooling2D", "Resampler"})
# Structural limits the checker enforces that the model file alone can show.
_GPU_RANK_3_OR_4 = frozenset({"SLICE", "STRIDED_SLICE"})

NNAPI_NOTES = (
    "NNAPI is deprecated from Android 15; LiteRT recommends the GPU accelerator or a vendor NPU "
    "accelerator instead. Keep NNAPI only for older devices and always keep a CPU fallback.",
    "NNAPI accelerators (DSP/NPU) are built mainly for int8 models; float support depends on the "
    "vendor driver, and so do op coverage and accuracy: test on the phones you ship to.",
    "Dynamic shapes and ops the driver lacks split the graph; every split costs a CPU round trip.",
)

ANDROID_PROFILE = TargetProfile(
    name="android",
    title="Android phone (LiteRT: CPU/XNNPACK, GPU delegate, NNAPI)",
    formats=frozenset({"tflite"}),
    quantizations=frozenset({QuantMode.FP32, QuantMode.FP16, QuantMode.DYNAMIC, QuantMode.INT8}),
    io_dtypes=frozenset({"float32", "int8", "uint8", "int32", "int64", "bool"}),
    supported_ops=None,
    runtimes=("litert",),
    delegates=("xnnpack", "gpu", "nnapi"),
    device=DeviceSpec(cpu="arm64-v8a", cores=8),
    install=(
        'implementation("com.google.ai.edge.litert:litert:2.3.0")      // app/build.gradle.kts',
        'implementation("com.google.ai.edge.litert:litert-gpu:2.3.0")  // GPU accelerator',
    ),
    notes=("fp16 model variant: half the size; the GPU delegate computes in fp16 anyway",) + NNAPI_NOTES,
)


# --- model helpers -------------------------------------------------------------------
from .._io import model_bytes as _bytes  # noqa: E402  (shared with the other targets)
from ..tflite_schema import read_tflite as _read  # noqa: E402


# --- GPU delegate compatibility ---------------------------------------------------------
def gpu_op_problem(op: str, *, n_inputs: int, input_rank: Optional[int] = None,
                   first_input_const: bool = False) -> Optional[str]:
    """Why the GPU delegate rejects one op (None when it takes it)."""
    if op in GPU_DELEGATE_CUSTOM_OPS:
        return None
    if op not in GPU_DELEGATE_OPS:
        return f"GPU delegate has no kernel for {op}"
    if op == "ADD_N" and n_inputs != 2:
        return f"ADD_N runs on the GPU with exactly 2 inputs, this one has {n_inputs}"
    if op in _GPU_RANK_3_OR_4 and input_rank is not None and input_rank not in (3, 4):
        return f"{op} runs on the GPU for 3-D or 4-D tensors only, this input is {input_rank}-D"
    if op == "FULLY_CONNECTED" and first_input_const:
        return "FULLY_CONNECTED with a constant first input is not supported on the GPU"
    return None


@dataclass
class GpuOp:
    index: int
    op: str
    gpu: bool
    reason: str = ""


@dataclass
class GpuReport:
    compatible: bool
    ops: List[GpuOp]
    gpu_ops: int
    cpu_fallback_ops: int
    analyzer: dict = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _run_analyzer(data: bytes) -> dict:
    """LiteRT's ModelAnalyzer with gpu_compatibility=True: its verdict and warnings."""
    try:
        from ai_edge_litert import _pywrap_analyzer_wrapper as analyzer
    except ImportError as exc:
        return {"available": False, "reason": f"ai_edge_litert analyzer not importable ({exc})"}
    try:
        text = analyzer.ModelAnalyzer(data, False, True)
    except Exception as exc:  # the wrapper raises plain RuntimeError/ValueError on bad input
        return {"available": True, "error": str(exc)}
    warnings = [l.strip() for l in text.splitlines() if "GPU COMPATIBILITY WARNING" in l]
    return {"available": True, "says_compatible": "looks compatible with GPU delegate" in text,
            "warnings": warnings}


def gpu_compatibility(model: PathOrBytes) -> GpuReport:
    """Which ops of a .tflite run on LiteRT's GPU delegate, and which fall back to the CPU.

    Example:
        >>> # r = gpu_compatibility("model_fp16.tflite"); r.compatible, r.cpu_fallback_ops
    """
    data = _bytes(model)
    m = _read(data)
    sg = m.main
    consts = {t.index for t in sg.tensors if t.has_data}
    ops: List[GpuOp] = []
    for i, o in enumerate(sg.operators):
        ins = [x for x in o.inputs if x >= 0]
        rank = len(sg.tensors[ins[0]].shape) if ins else None
        why = gpu_op_problem(o.op, n_inputs=len(ins), input_rank=rank,
                             first_input_const=bool(ins) and ins[0] in consts)
        ops.append(GpuOp(i, o.op, why is None, why or ""))
    notes = []
    dyn = [sg.tensors[i].name for i in sg.inputs if sg.tensors[i].is_dynamic]
    if dyn:
        notes.append(f"inputs {dyn} have dynamic dimensions: the GPU delegate needs shapes fixed before "
                     "ModifyGraphWithDelegate (resize, then apply the delegate)")
    if len(m.subgraphs) > 1:
        notes.append(f"{len(m.subgraphs)} subgraphs: only the main one was checked")
    analyzer = _run_analyzer(data)
    n_gpu = sum(o.gpu for o in ops)
    if analyzer.get("says_compatible") and n_gpu < len(ops):
        notes.append("LiteRT's analyzer calls this model GPU-compatible but the delegate's op rules "
                     "reject some ops: the analyzer shipped in ai-edge-litert does not apply them")
    return GpuReport(n_gpu == len(ops), ops, n_gpu, len(ops) - n_gpu, analyzer, notes)


# --- fp16 variant --------------------------------------------------------------------
_DEQUANTIZE = 6
_FLOAT32, _FLOAT16 = 0, 1


def make_fp16(model: PathOrBytes) -> bytes:
    """Float16 weights + DEQUANTIZE ops, the layout TFLite's fp16 converter writes.

    Every float32 constant tensor of a float model is stored as float16 and
    dequantized at load (CPU) or consumed as fp16 (GPU delegate). I/O stays float32.

    Raises:
        InputSpecError: the model has no float32 weights (already quantized or fp16).
    """
    from ai_edge_litert import schema_py_generated as schema

    from .tflite_metadata import _fb, _strip_zip

    data = _strip_zip(_bytes(model))
    _read(data)
    obj = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    codes = obj.operatorCodes or []
    deq = next((i for i, c in enumerate(codes)
                if max(c.builtinCode, c.deprecatedBuiltinCode) == _DEQUANTIZE and c.version >= 3), None)
    converted = 0
    for sg in obj.subgraphs:
        new_ops = []
        for ti, t in enumerate(list(sg.tensors)):
            buf = obj.buffers[t.buffer] if t.buffer < len(obj.buffers) else None
            if t.type != _FLOAT32 or buf is None or buf.data is None or len(buf.data) == 0:
                continue
            w = np.frombuffer(np.asarray(buf.data, dtype=np.uint8).tobytes(), dtype="<f4")
            if not np.all(np.isfinite(w)) or (w.size and np.max(np.abs(w)) > 65504.0):
                continue  # would overflow fp16: keep float32
            half = schema.BufferT()
            half.data = np.frombuffer(w.astype("<f2").tobytes(), dtype=np.uint8)
            obj.buffers.append(half)
            t16 = schema.TensorT()
            t16.shape, t16.type, t16.buffer = t.shape, _FLOAT16, len(obj.buffers) - 1
            t16.name = (t.name.decode() if isinstance(t.name, bytes) else (t.name or "")) + "_fp16"
            t16.shapeSignature = t.shapeSignature
            sg.tensors.append(t16)
            empty = schema.BufferT()
            obj.buffers.append(empty)
            t.buffer = len(obj.buffers) - 1   # the float32 tensor becomes DEQUANTIZE's output
            if deq is None:
                code = schema.OperatorCodeT()
                code.builtinCode, code.deprecatedBuiltinCode, code.version = _DEQUANTIZE, _DEQUANTIZE, 3
                codes.append(code)
                deq = len(codes) - 1
            op = schema.OperatorT()
            op.opcodeIndex, op.inputs, op.outputs = deq, [len(sg.tensors) - 1], [ti]
            new_ops.append(op)
            converted += 1
        sg.operators = new_ops + list(sg.operators or [])
    if not converted:
        raise InputSpecError("no float32 weights to convert: the model is already quantized or fp16 "
                             "(an fp16 variant only makes sense for a float model)")
    obj.operatorCodes = codes
    fb = _fb()
    b = fb.Builder(len(data) + 1024)
    b.Finish(obj.Pack(b), file_identifier=b"TFL3")
    out = bytes(b.Output())
    _read(out)
    return out


def _litert_outputs(data: bytes, xs: Sequence[np.ndarray]) -> List[np.ndarray]:
    """Raw outputs from LiteRT, one thread: the reference the other interpreter is held to."""
    from ..backends import TFLiteBackend

    return TFLiteBackend(data, "litert", threads=1).run(list(xs))


def fp16_parity(float_model: PathOrBytes, fp16_model: PathOrBytes, *, samples: int = 8, seed: int = 0,
                rtol: float = 1e-2) -> dict:
    """Run both models on seeded inputs; fail when |fp16 - fp32| > rtol * max(1, |fp32|max).

    Raises:
        ParityError: the fp16 variant is out of tolerance (report attached).
    """
    a, b = _bytes(float_model), _bytes(fp16_model)
    sg = _read(a).main
    rng = np.random.default_rng(seed)
    worst, scale = 0.0, 1.0
    for _ in range(samples):
        xs = []
        for i in sg.inputs:
            t = sg.tensors[i]
            shape = tuple(max(1, d) for d in t.shape)
            dt = np.dtype(t.dtype)
            xs.append(rng.standard_normal(shape).astype(dt) if dt.kind == "f"
                      else rng.integers(0, 2, size=shape).astype(dt))
        ra, rb = _litert_outputs(a, xs), _litert_outputs(b, xs)
        for x, y in zip(ra, rb):
            worst = max(worst, float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))))
            scale = max(scale, float(np.max(np.abs(x))))
    report = {"max_abs_diff": worst, "tolerance": rtol * scale, "samples": samples, "seed": seed,
              "ok": worst <= rtol * scale}
    if not report["ok"]:
        raise ParityError(f"fp16 variant differs from the float model by {worst:.4g} "
                          f"(tolerance {rtol * scale:.4g})", report)
    return report


# --- the assets/ folder -------------------------------------------------------------------
def _default_info(data: bytes, name: str, description: str, labels, mean, std, image: bool):
    from .tflite_metadata import ModelInfo, TensorInfo

    sg = _read(data).main
    ins = []
    for k, i in enumerate(sg.inputs):
        t = sg.tensors[i]
        ins.append(TensorInfo(t.name, f"input {k}: shape {list(t.shape)} {t.dtype}",
                              content="image" if image else "feature",
                              color_space=("RGB" if t.shape[-1] == 3 else "GRAYSCALE") if image else "UNKNOWN",
                              mean=mean, std=std))
    outs = []
    for k, i in enumerate(sg.outputs):
        t = sg.tensors[i]
        outs.append(TensorInfo(t.name, f"output {k}: shape {list(t.shape)} {t.dtype}",
                               labels_file="labels.txt" if labels and k == 0 else None))
    return ModelInfo(name, description, version="1", author="edgeship", inputs=ins, outputs=outs)


def android_assets(model: PathOrBytes, out_dir: Union[str, os.PathLike], *, name: str = "model",
                   description: str = "", labels: Optional[Sequence[str]] = None,
                   mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None,
                   image: bool = False, fp16: bool = True) -> Dict[str, Path]:
    """Write ``out_dir/assets/``: ``<name>.tflite`` with metadata (and labels zipped in),
    ``<name>_fp16.tflite`` for the GPU delegate (float models), ``labels.txt``,
    ``gpu_compatibility.json`` and ``README.md``.

    Example:
        >>> # android_assets("kws.tflite", "android_out", labels=["yes", "no"], mean=[0], std=[1])
    """
    from .tflite_metadata import labels_bytes, populate, read_model_metadata

    import re

    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
        raise InputSpecError(f"asset name must be letters, digits, '_', '.', '-'; got {name!r}")
    data = _bytes(model)
    assets = Path(out_dir) / "assets"
    files: Dict[str, bytes] = {"labels.txt": labels_bytes(labels)} if labels else {}
    info = _default_info(data, name, description or f"{name} (edgeship)", labels, mean, std, image)
    main = populate(data, info, files)
    meta = read_model_metadata(main)   # verify what was written reads back
    if meta is None or meta["name"] != name or set(meta["files"]) != set(files):
        raise ModelFormatError("metadata written to the model did not read back identically")
    out: Dict[str, Path] = {"model": atomic_write_bytes(assets / f"{name}.tflite", main)}
    if labels:
        out["labels"] = atomic_write_bytes(assets / "labels.txt", files["labels.txt"])
    gpu = gpu_compatibility(data)
    fp16_report = None
    quant = _is_float_model(data)
    if fp16 and quant:
        half = make_fp16(data)
        fp16_report = fp16_parity(data, half)
        half = populate(half, info, files)
        out["model_fp16"] = atomic_write_bytes(assets / f"{name}_fp16.tflite", half)
    out["gpu_compatibility"] = atomic_write_json(assets / "gpu_compatibility.json",
                                                 {"gpu": gpu.to_dict(), "fp16_parity": fp16_report})
    out["readme"] = atomic_write_text(Path(out_dir) / "README.md",
                                      _readme(name, info, gpu, fp16_report, bool(labels), sha256_bytes(main)))
    return out


def _is_float_model(data: bytes) -> bool:
    sg = _read(data).main
    return any(t.dtype == "float32" and t.has_data for t in sg.tensors)


def _readme(name, info, gpu: GpuReport, fp16_report, has_labels, sha) -> str:
    norm = info.inputs[0].mean is not None if info.inputs else False
    lines = [
        f"# {name} for Android (LiteRT)", "",
        "Copy `assets/` into `app/src/main/assets/` and add to `app/build.gradle.kts`:", "",
        "```kotlin",
        *ANDROID_PROFILE.install,
        "```", "",
        "Run it (LiteRT CompiledModel API):", "",
        "```kotlin",
        f'val model = CompiledModel.create(context.assets, "{name}{"_fp16" if fp16_report else ""}.tflite",',
        "    CompiledModel.Options(Accelerator.GPU, Accelerator.CPU))",
        "val inputs = model.createInputBuffers(); val outputs = model.createOutputBuffers()",
        "inputs[0].writeFloat(features)   // " + ("normalized as (x - mean) / std, see metadata" if norm
                                               else "raw features"),
        "model.run(inputs, outputs); val scores = outputs[0].readFloat()",
        "```", "",
        f"- `{name}.tflite` (sha256 {sha[:16]}...) carries TFLite metadata (name, I/O names, "
        + ("normalization, " if norm else "") + ("labels.txt zipped in" if has_labels else "no labels")
        + ") that the TFLite Support Library's MetadataExtractor reads.",
    ]
    if fp16_report:
        lines.append(f"- `{name}_fp16.tflite`: fp16 weights for the GPU delegate; max |fp16 - fp32| = "
                     f"{fp16_report['max_abs_diff']:.3g} on {fp16_report['samples']} seeded inputs.")
    lines.append(f"- GPU delegate: {gpu.gpu_ops}/{len(gpu.ops)} ops on the GPU"
                 + ("" if gpu.compatible else "; CPU fallback for: "
                    + ", ".join(sorted({o.op for o in gpu.ops if not o.gpu}))) + ".")
    lines += ["", "## NNAPI", ""] + [f"- {n}" for n in NNAPI_NOTES]
    return "\n".join(lines) + "\n"


# --- check ---------------------------------------------------------------------------------
def check_android(model_path, profile: TargetProfile = ANDROID_PROFILE):
    """Generic rules, then GPU placement per op (CPU fallback listed, never blocking)."""
    from .rules import OpPlacement, generic_check

    report = generic_check(model_path, profile)
    if report.format != "tflite":
        return report
    gpu = gpu_compatibility(model_path)
    report.ops = [OpPlacement(o.index, o.op, "gpu" if o.gpu else "cpu", reason=o.reason) for o in gpu.ops]
    report.cpu_fallback = sorted({o.op for o in gpu.ops if not o.gpu})
    report.details["gpu_delegate"] = gpu.to_dict()
    report.notes.extend(gpu.notes)
    report.notes.extend(NNAPI_NOTES)
    return report


def bundle_android(model: Path, stage: Path, options: dict) -> Staged:
    """``edgeship deploy --target android``: the ``assets/`` drop-in folder."""
    import re

    name = re.sub(r"[^A-Za-z0-9_.-]", "_", model.stem) or "model"
    out = android_assets(model, stage, name=name, labels=options.get("labels"), mean=options.get("mean"),
                         std=options.get("std"), image=bool(options.get("image")),
                         fp16=options.get("fp16", True))
    files = {"android": out["model"]}
    if "model_fp16" in out:
        files["android-fp16"] = out["model_fp16"]
    return Staged(files=files, extra_files={"gpu_compatibility.json": out["gpu_compatibility"]},
                  readme=out["readme"].read_text(), run_command="copy assets/ into app/src/main/assets/",
                  subdir=stage / "assets")


ANDROID_PROFILE = register_target(ANDROID_PROFILE, check_android, bundle_android)

__all__ = ["ANDROID_PROFILE", "GPU_DELEGATE_OPS", "NNAPI_NOTES", "GpuReport", "GpuOp", "gpu_op_problem",
           "gpu_compatibility", "make_fp16", "fp16_parity", "android_assets", "check_android"]
