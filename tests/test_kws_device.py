"""The device path: ``python -m examples.keyword_spotting deploy`` writes a folder that runs ``listen`` with
numpy + LiteRT only. Proven by copying the folder elsewhere and running its ``listen.py`` in a child
process in which importing TensorFlow, Keras, ONNX, onnxruntime, PyTorch, OpenCV, matplotlib or SciPy
fails (a meta-path blocker installed through ``sitecustomize``; it also reaches the isolated probe
process that edgeship.load starts), and by listing every top-level module the child imported.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edgeship import audio
from tests._kws_helpers import place_recognisable

BLOCKED = ("tensorflow", "keras", "onnx", "onnxruntime", "torch", "tf2onnx", "cv2", "matplotlib", "scipy",
           "sklearn", "tflite_micro", "coremltools")

SITECUSTOMIZE = textwrap.dedent(f"""
    import atexit, os, sys
    BLOCKED = {BLOCKED!r}

    class _Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{{name}} is blocked: the device has only numpy, LiteRT and soundfile/sounddevice")
            return None

    sys.meta_path.insert(0, _Blocker())
    _log = os.environ.get("KWS_MODULES_LOG")
    if _log:
        atexit.register(lambda: open(_log + "." + str(os.getpid()), "w").write(
            "\\n".join(sorted({{m.split(".")[0] for m in list(sys.modules)}} - set(sys.stdlib_module_names)))))
""")


@pytest.fixture(scope="module")
def deployed(shared_dir, tmp_path_factory):
    from edgeship import models
    from examples.keyword_spotting.deploy import deploy_app

    model = models.fetch("mlperf_kws_int8", mirror=str(shared_dir / "models"))
    tmp = tmp_path_factory.mktemp("kws_device")
    r = deploy_app(str(model), "rpi4", tmp / "build")
    pi = tmp / "pi" / "kws"            # "copied to the device"
    shutil.copytree(r["bundle"], pi)
    return r, pi, tmp


def _blocked_env(tmp):
    site = tmp / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {k: v for k, v in os.environ.items() if k not in ("EDGESHIP_MIRROR", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site)
    env["KWS_MODULES_LOG"] = str(tmp / "modules")
    return env


@pytest.mark.shared
def test_manifest_names_the_front_end_and_carries_listen(deployed):
    from edgeship.bundle import read_bundle

    r, pi, _ = deployed
    m = read_bundle(pi)
    assert m["preprocessing"] == audio.MLPERF_KWS.to_dict()
    assert audio.FrontEndSpec.from_dict(m["preprocessing"]) == audio.MLPERF_KWS
    assert m["labels"][-2:] == ["_silence_", "_unknown_"] and len(m["labels"]) == 12
    from edgeship import kws, models   # the model's own detector setting travels with it

    assert kws.DetectorConfig.from_dict(m["postprocessing"]) == kws.DetectorConfig.from_dict(
        models.entry("mlperf_kws_int8").detector)
    assert m["postprocessing"]["source"].startswith("zoo entry mlperf_kws_int8: bench/kws_false_alarms.py")
    assert "listen.py" in m["extra_files"] and "README.md" in m["extra_files"]
    assert m["extra"]["run_command"].startswith("python3 listen.py")
    assert "libportaudio2" in (pi / "README.md").read_text()


@pytest.mark.shared
def test_deployed_listen_runs_without_heavy_frameworks(deployed, shared_dir, tmp_path):
    _, pi, tmp = deployed
    env = _blocked_env(tmp_path)
    # the blocker works
    probe = subprocess.run([sys.executable, "-c", "import tensorflow"], env=env, capture_output=True, text=True,
                           cwd=tmp_path)
    assert probe.returncode != 0 and "blocked" in probe.stderr
    # a stream: real noise with two real keyword clips at known times
    noise = audio.read_audio(shared_dir / "data" / "noise" / "mycroft" / "bg_noise8.wav")[: 8 * 16000].copy()
    dev = shared_dir / "data" / "speech_commands_dev"
    from edgeship.kws import KeywordDetector

    det = KeywordDetector(str(pi))
    truth = []
    for label, start in (("yes", 1.5), ("stop", 4.5)):
        place_recognisable(det, noise, int(start * 16000), label, sorted((dev / label).glob("*.flac")))
        truth.append(label)
    wav = tmp_path / "stream.wav"
    import wave

    with wave.open(str(wav), "wb") as f:   # integer PCM WAV: readable without soundfile too
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(16000)
        f.writeframes((np.clip(noise, -1, 1) * 32767).astype("<i2").tobytes())
    res = subprocess.run([sys.executable, str(pi / "listen.py"), "--wav", str(wav), "--json"], env=env,
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = [json.loads(l) for l in res.stdout.splitlines()]
    assert lines[0]["event"] == "start" and lines[0]["model"].startswith(str(pi))
    assert lines[0]["labels_from"] == "bundle manifest" and lines[0]["frontend_from"] == "bundle manifest"
    assert lines[0]["config_from"] == "bundle manifest"
    assert [l["label"] for l in lines if l["event"] == "keyword"] == truth
    # live audio without PortAudio: arecord's raw samples piped into --stdin give the same events
    pcm = (np.clip(noise, -1, 1) * 32767).astype("<i2").tobytes()
    res = subprocess.run([sys.executable, str(pi / "listen.py"), "--stdin", "--json"], input=pcm, env=env,
                         capture_output=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    piped = [json.loads(l) for l in res.stdout.decode().splitlines()]
    assert [l for l in piped if l["event"] == "keyword"] == [l for l in lines if l["event"] == "keyword"]
    assert lines[-1]["event"] == "end"
    logs = list(tmp_path.glob("modules.*"))
    assert logs, "the child processes did not record their modules"
    imported = set().union(*(set(p.read_text().split()) for p in logs))
    assert "edgeship" in imported and "numpy" in imported
    assert not imported & set(BLOCKED), imported & set(BLOCKED)
    assert imported & {"ai_edge_litert", "tflite_runtime"}
    # every third-party module: edgeship, numpy, the interpreter, soundfile (and their private parts)
    allowed = {"edgeship", "numpy", "ai_edge_litert", "tflite_runtime", "soundfile", "sounddevice", "cffi",
               "typing_extensions", "sitecustomize"}
    others = {m for m in imported if not m.startswith("_") and m not in allowed}
    assert not others, others


@pytest.mark.shared
def test_deployed_listen_without_a_microphone_says_so(deployed, tmp_path):
    _, pi, _ = deployed
    try:
        import sounddevice as sd

        sd.query_devices(kind="input")
        pytest.skip("this machine has a working audio input; the no-microphone path cannot be shown here")
    except (ImportError, OSError, Exception):
        pass
    res = subprocess.run([sys.executable, str(pi / "listen.py"), "--seconds", "1"], env=_blocked_env(tmp_path),
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 2
    assert ("PortAudio" in res.stderr or "microphone" in res.stderr) and "--wav" in res.stderr
