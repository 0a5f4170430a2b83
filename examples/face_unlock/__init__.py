"""Face unlock: enrol people and unlock only for them, on-device and offline.

Run from the repository root as ``python -m examples.face_unlock COMMAND`` (``enroll``, ``unlock``,
``evaluate-pairs``, ``users``, ``remove``; ``--help`` on each). The app uses only edgeship's
public API: :mod:`edgeship.face` (detect -> 5 landmarks -> 150x150 chip -> 128-d embedding) and
:mod:`edgeship.models.face` (dlib's CC0 models converted to TFLite int8/fp32 and ONNX).

Modules: :mod:`.store` (AES-GCM encrypted templates, lockout, lock file), :mod:`.engine` (one usable
face per image, the shipped threshold), :mod:`.evaluate` (LFW pairs, metrics, ROC, calibration),
:mod:`.cli` (the commands). ``threshold.json`` records the shipped threshold and how it was chosen.
"""
