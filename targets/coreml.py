"""Core ML export (``.mlpackage``, ML Program) through coremltools, checked on Linux.

coremltools 9.0 installs on Linux with numpy 2.4 and torch 2.13 (it warns that
torch > 2.7 is untested). It converts PyTorch models (traced TorchScript or
``torch.export``); it has no TFLite or ONNX front end, so the source must be the
torch model. Core ML *prediction* needs macOS: on Linux the package is validated
by loading its spec back and checking the input/output names, shapes and types
against the source, and the MIL program against the source's output count.

Example:
    >>> from edgeship.targets.coreml import coreml_available
    >>> isinstance(coreml_available(), bool)
    True
"""
from __future__ import annotations

import io
import os
import platform
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from .._deps import available, require
from ..errors import ConversionError, InputSpecError, MissingDependencyError

PathLike = Union[str, os.PathLike]
_TARGETS = ("iOS15", "iOS16", "iOS17", "iOS18")


def coreml_available() -> bool:
    return available("coremltools")


def _ct():
    return require("coremltools", "convert", "exporting Core ML packages (pip install coremltools==9.0)")


@dataclass
class CoreMLExport:
    path: Path
    inputs: List[dict]
    outputs: List[dict]
    spec_version: int
    deployment_target: str
    compute_precision: str
    validated: Dict[str, bool] = field(default_factory=dict)
    prediction_checked: bool = False
    notes: List[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"path": str(self.path), "inputs": self.inputs, "outputs": self.outputs,
                "spec_version": self.spec_version, "deployment_target": self.deployment_target,
                "compute_precision": self.compute_precision, "validated": self.validated,
                "prediction_checked": self.prediction_checked, "notes": self.notes}


_ARRAY_TYPES = {65568: "float32", 65552: "float16", 131104: "int32", 65600: "float64"}


def spec_summary(path: PathLike) -> dict:
    """Load a .mlpackage/.mlmodel spec (works on Linux) and list its I/O."""
    ct = _ct()
    p = Path(path)
    if not p.exists():
        raise InputSpecError(f"Core ML package {str(p)!r} does not exist")
    try:
        spec = ct.utils.load_spec(str(p))
    except Exception as exc:  # coremltools raises plain Exceptions for damaged packages
        raise ConversionError(f"{p.name}: not a loadable Core ML package ({exc})") from exc

    def feats(features):
        out = []
        for f in features:
            kind = f.type.WhichOneof("Type")
            d = {"name": f.name, "type": kind}
            if kind == "multiArrayType":
                d["shape"] = [int(s) for s in f.type.multiArrayType.shape]
                d["dtype"] = _ARRAY_TYPES.get(int(f.type.multiArrayType.dataType), str(f.type.multiArrayType.dataType))
            out.append(d)
        return out

    return {"spec_version": int(spec.specificationVersion), "model_type": spec.WhichOneof("Type"),
            "inputs": feats(spec.description.input), "outputs": feats(spec.description.output),
            "metadata": dict(spec.description.metadata.userDefined)}


def export_coreml(model, example_inputs: Sequence, out_path: PathLike, *,
                  input_names: Optional[Sequence[str]] = None, deployment_target: str = "iOS15",
                  compute_precision: str = "fp16") -> CoreMLExport:
    """Convert a torch ``nn.Module`` (traced on ``example_inputs``) to ``out_path`` (.mlpackage).

    Raises:
        MissingDependencyError: coremltools or torch missing.
        ConversionError: coremltools failed, or the saved package does not match the source.
    """
    ct = _ct()
    torch = require("torch", "torch", "exporting a torch model to Core ML")
    out = Path(out_path)
    if out.suffix != ".mlpackage":
        raise InputSpecError(f"Core ML output must end in .mlpackage, got {out.name!r}")
    if deployment_target not in _TARGETS:
        raise InputSpecError(f"deployment_target must be one of {_TARGETS}, got {deployment_target!r}")
    if compute_precision not in ("fp16", "fp32"):
        raise InputSpecError(f"compute_precision must be 'fp16' or 'fp32', got {compute_precision!r}")
    if not isinstance(model, torch.nn.Module):
        raise InputSpecError(f"expected a torch.nn.Module, got {type(model).__name__} (coremltools has no "
                             "TFLite/ONNX front end: export from the torch source)")
    xs = [torch.as_tensor(x) for x in example_inputs]
    names = list(input_names or [f"input_{i}" for i in range(len(xs))])
    if len(names) != len(xs):
        raise InputSpecError(f"{len(names)} input names for {len(xs)} example inputs")
    model = model.eval()
    with torch.no_grad():
        ref = model(*xs)
        n_out = len(ref) if isinstance(ref, (tuple, list)) else 1
        traced = torch.jit.trace(model, tuple(xs))
    precision = ct.precision.FLOAT16 if compute_precision == "fp16" else ct.precision.FLOAT32
    try:
        ml = ct.convert(traced, inputs=[ct.TensorType(name=n, shape=tuple(x.shape)) for n, x in zip(names, xs)],
                        convert_to="mlprogram", compute_precision=precision,
                        minimum_deployment_target=getattr(ct.target, deployment_target))
    except Exception as exc:
        raise ConversionError(f"coremltools could not convert the model: {exc}") from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".tmp-{out.name}")  # coremltools insists on the .mlpackage suffix
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    ml.save(str(tmp))
    summary = spec_summary(tmp)
    checks = {
        "spec_loads": True,
        "input_names": [i["name"] for i in summary["inputs"]] == names,
        "input_shapes": [i.get("shape") for i in summary["inputs"]] == [list(x.shape) for x in xs],
        "output_count": len(summary["outputs"]) == n_out,
        "ml_program": summary["model_type"] == "mlProgram",
    }
    if not all(checks.values()):
        shutil.rmtree(tmp, ignore_errors=True)
        raise ConversionError(f"saved Core ML package does not match the source: {checks}")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    notes = []
    if platform.system() != "Darwin":
        notes.append("Core ML prediction needs macOS/iOS: outputs were not compared with the source here; "
                     "the spec (I/O names, shapes, types, program type) was")
    return CoreMLExport(out, summary["inputs"], summary["outputs"], summary["spec_version"], deployment_target,
                        compute_precision, checks, False, notes)


def zip_mlpackage(path: PathLike) -> bytes:
    """A .mlpackage directory as deterministic zip bytes (bundles hold plain files)."""
    p = Path(path)
    if not p.is_dir() or not (p / "Manifest.json").is_file():
        raise InputSpecError(f"{str(p)!r} is not a .mlpackage directory (no Manifest.json)")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            zi = zipfile.ZipInfo(f"{p.name}/{f.relative_to(p).as_posix()}", date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, f.read_bytes())
    return buf.getvalue()


__all__ = ["coreml_available", "spec_summary", "export_coreml", "zip_mlpackage", "CoreMLExport",
           "MissingDependencyError"]
