"""The README shipped in an MCU bundle (``edgeship deploy --target mcu``)."""
from __future__ import annotations


def mcu_readme(model_name: str, report: dict) -> str:
    a = report["arena"]
    est = "\n".join(f"| {e['board']} ({e['core']}) | {e['ms']:.3g} ms | {e['low_ms']:.3g}-{e['high_ms']:.3g} ms |"
                    for e in report["latency_estimates"])
    return f"""# {model_name} on a Cortex-M microcontroller (TensorFlow Lite Micro)

Files: `model_data.cc`/`model_data.h` (the model as a 16-byte aligned C array, byte-identical to
`{model_name}`), `op_resolver.h` (the {len(report['ops'])} op registrations and `kTensorArenaSize`).

```cpp
#include "model_data.h"
#include "op_resolver.h"
#include "tensorflow/lite/micro/micro_interpreter.h"

alignas(16) static uint8_t tensor_arena[kTensorArenaSize];

EdgeshipOpResolver resolver;
RegisterOps(resolver);
tflite::MicroInterpreter interpreter(tflite::GetModel(g_model), resolver, tensor_arena, kTensorArenaSize);
interpreter.AllocateTensors();
// fill interpreter.input(0)->data.int8, then:
interpreter.Invoke();
```

Tensor arena: **{a['min_bytes']} bytes** is the smallest arena TFLM ({a['tflm_version']}) allocated and ran
this model with on the host ({a['host']}); `kTensorArenaSize` = {a['recommended_bytes']} adds the margin
({a['margin_note']}).
TFLM vs LiteRT on seeded inputs: max difference {report['parity']['max_abs_diff_raw']} (raw output units).

Latency estimate ({report['macs']:,} MACs, scaled from the MLPerf Tiny DS-CNN results; a factor-of-two
band, not a measurement):

| board | estimate | band |
|---|---|---|
{est}
"""
