"""iPhone / iPad: a Core ML package (see :mod:`edgeship.targets.coreml`) or the TFLite
model run by LiteRT for iOS, with its Core ML or Metal (GPU) delegate.

Nothing here can run on Linux: the target is checked from the model file (the
generic rules) and the Core ML package from its spec; the README says how to run it.

Example:
    >>> from edgeship.targets.ios import IOS_PROFILE
    >>> sorted(IOS_PROFILE.formats)
    ['coreml', 'tflite']
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Union

from edgeship.facts import QuantMode

from .profile import DeviceSpec, Staged, TargetProfile, register_target

IOS_PROFILE = TargetProfile(
    name="ios",
    title="iPhone / iPad (Core ML, or LiteRT with the Core ML / Metal delegate)",
    formats=frozenset({"coreml", "tflite"}),
    quantizations=frozenset({QuantMode.FP32, QuantMode.FP16, QuantMode.DYNAMIC, QuantMode.INT8}),
    io_dtypes=frozenset({"float32", "float16", "int32", "int8", "uint8"}),
    supported_ops=None,
    runtimes=("coreml", "litert"),
    delegates=("coreml", "metal"),
    device=DeviceSpec(cpu="Apple A-series (arm64)", accelerator="Apple Neural Engine"),
    install=("pod 'TensorFlowLiteSwift'            # LiteRT for iOS (CocoaPods), TFLite models",
             "# Core ML ships with iOS: drag the .mlpackage into the Xcode target"),
    notes=(
        "Core ML runs fp16 on the GPU and Neural Engine; an fp16 ML Program is the usual choice.",
        "Core ML export needs the torch source model (coremltools has no TFLite/ONNX front end).",
        "The Neural Engine needs static shapes; unsupported layers fall back to GPU/CPU silently: "
        "check with Xcode's Core ML performance report.",
    ),
)



def ios_readme(tflite_name: str, mlpackage_name: Optional[str] = None) -> str:
    """README for the iOS bundle: how to load the model in Swift."""
    core = ""
    if mlpackage_name:
        stem = mlpackage_name.rsplit(".", 1)[0]
        core = f"""
## Core ML

Unzip `{mlpackage_name}.zip` and drag `{mlpackage_name}` into the Xcode target; Xcode generates a class:

```swift
let model = try {stem}(configuration: MLModelConfiguration())   // .computeUnits = .all
let out = try model.prediction(input_0: array)
```
"""
    return f"""# {tflite_name} on iOS

## LiteRT (TFLite)

```ruby
{IOS_PROFILE.install[0]}
```

```swift
import TensorFlowLite
var options = Interpreter.Options()
let delegate = CoreMLDelegate()   // nil without a Neural Engine; MetalDelegate() targets the GPU
let interpreter = try Interpreter(modelPath: Bundle.main.path(forResource: "{tflite_name.rsplit('.', 1)[0]}", ofType: "tflite")!,
                                  options: options, delegates: delegate.map {{ [$0] }} ?? [])
try interpreter.allocateTensors()
try interpreter.copy(inputData, toInputAt: 0)
try interpreter.invoke()
let output = try interpreter.output(at: 0)
```
{core}""" + "".join(f"\n- {n}" for n in IOS_PROFILE.notes) + "\n"


__all__ = ["IOS_PROFILE", "ios_readme"]


def bundle_ios(model: Path, stage: Path, options: dict) -> Staged:
    """``edgeship deploy --target ios``: the .tflite (+ a zipped Core ML package when given)."""
    extra: Dict[str, Union[Path, bytes]] = {}
    mlpackage = options.get("mlpackage")
    if mlpackage:
        from .coreml import zip_mlpackage

        extra[Path(mlpackage).name + ".zip"] = zip_mlpackage(mlpackage)
    return Staged(files={"ios": model}, extra_files=extra,
                  readme=ios_readme(model.name, Path(mlpackage).name if mlpackage else None),
                  run_command="add the .tflite to the Xcode target and load it with LiteRT's Interpreter")


IOS_PROFILE = register_target(IOS_PROFILE, bundler=bundle_ios)
