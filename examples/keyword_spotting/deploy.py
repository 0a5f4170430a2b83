"""``deploy``: a device folder that runs ``listen`` with numpy, LiteRT (or tflite-runtime) and
soundfile/sounddevice only.

It is an edgeship deploy bundle for the target (``edgeship.targets.deploy.deploy``) whose
manifest records the labels and the front end (``preprocessing``: :meth:`FrontEndSpec.to_dict`,
so the device computes exactly the features the model was made for), plus ``listen.py`` (this
app's self-contained ``listen``), checksummed like every bundle file. On the device::

    pip install <edgeship wheel> ai-edge-litert soundfile sounddevice    # or deploy --host
    python3 listen.py --wav clip.wav --json       # or with no --wav: the microphone
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

RUN = "python3 listen.py --json            # microphone; --wav FILE to stream a file"


def deploy_app(model, target: str, out, labels: Optional[str] = None, config: Optional[dict] = None,
               force: bool = False) -> Dict:
    """Deploy ``model`` for ``target`` with ``listen.py``; ``config``: detector fields to change in
    the model's own setting (recorded as the bundle's ``postprocessing``)."""
    import edgeship
    from edgeship.kws import model_info, resolve_model
    from edgeship.targets.deploy import deploy

    m = edgeship.load(resolve_model(model))
    info = model_info(m, labels, config=config)
    listen_py = Path(__file__).with_name("listen.py")
    readme = f"""## Keyword spotting on the device

This folder is self-contained: `listen.py` loads the bundle it sits in (every checksum is verified
first), computes the `{info.spec.type}` features recorded in `manifest.json` (`preprocessing`) with
edgeship's numpy front end and detects {', '.join(l for l in info.labels if not l.startswith('_'))}.
It needs numpy, LiteRT (`ai-edge-litert`) or `tflite-runtime`, edgeship's light core, and for the
microphone `sounddevice` (PortAudio: `sudo apt install libportaudio2`), or nothing more with ALSA's
`arecord` piping raw samples into `--stdin`; `soundfile` reads FLAC/float WAV (integer PCM WAV needs
nothing extra). No TensorFlow, Keras, ONNX or PyTorch.

```sh
pip install sounddevice soundfile       # the microphone (with libportaudio2) and FLAC/float WAV; optional
python3 listen.py                       # live microphone, Ctrl-C to stop
python3 listen.py --wav clip.wav --json # one JSON object per line: start, keyword events, end
arecord -q -f S16_LE -r {info.spec.sample_rate} -c 1 -t raw | python3 listen.py --stdin   # live, no PortAudio
```

The detector setting recorded in `manifest.json` (`postprocessing`, from {info.config_from}): threshold
{info.config.threshold:g}, smoothing {info.config.smoothing} windows, refractory period {info.config.refractory_s:g} s.
Change it per run with `--threshold`, `--smoothing`, `--refractory` (also `--hop-ms`); `python3 listen.py --help`.
"""
    post = info.config.to_manifest(source=info.config_from + (f": {info.config_source}" if info.config_source else ""))
    r = deploy(m.path, target, out, labels=info.labels, preprocessing=info.spec.to_dict(), postprocessing=post,
               overwrite=force, app_files={"listen.py": str(listen_py)}, app_readme=readme, app_run_command=RUN)
    return {**r.to_dict(), "labels": info.labels, "preprocessing": info.spec.to_dict(),
            "detector": info.config.to_dict(), "detector_from": info.config_from}
