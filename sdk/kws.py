"""Streaming keyword spotting: sliding windows, posterior smoothing, threshold, refractory period.

Needs numpy and one interpreter only (it runs on the device). A :class:`KeywordDetector`
takes any edgeship-loadable keyword-spotting model (a ``.tflite``/``.onnx`` file, a bundle,
or a zoo name such as ``mlperf_kws_int8``), its labels and its front end, and turns a stream
of audio chunks of any size into :class:`Detection` events:

1. :class:`~edgeship.audio.StreamingFeatures` yields the features of a 1 s window every hop
   (100 ms by default), computing each STFT frame once;
2. the model gives class posteriors per window (a softmax is applied when the model outputs
   logits);
3. :class:`PosteriorFilter` averages the posteriors over the last ``smoothing`` windows; when
   a keyword's smoothed score reaches ``threshold`` an episode starts, and it lasts while the
   keywords' smoothed scores together stay at or above the threshold (at most ``max_episode``
   windows). One event per episode, labelled with the keyword whose smoothed score rose highest
   during it: a window that holds only part of a word often favours another keyword (the start
   of "off" looks like "up", of "down" like "go"); the windows holding the whole word then
   outvote it, and the hand-over from one keyword to the other does not end the episode. The
   event's time is the midpoint of the first and last window centres where that keyword's raw
   posterior reached the threshold (a window holds the whole word from the word's end until the
   word's start plus one window, so that midpoint is the word's centre), its confidence that
   highest smoothed score. No event starts within ``refractory_s`` of the last.

Where labels, the front end and the detector setting come from, in order: the arguments; a
bundle's manifest (``labels``, ``preprocessing`` read with :meth:`FrontEndSpec.from_dict`,
``postprocessing`` with :meth:`DetectorConfig.from_dict`); the zoo registry entry whose sha256
matches the model file (``labels``, ``preprocessing``, ``detector``); for the setting, last, the
:class:`DetectorConfig` defaults. Settings given in part (a dict such as ``{"threshold": 0.8}``)
replace only those fields of the model's setting. :class:`ModelInfo` records each source.
Labels starting with ``_`` (``_silence_``, ``_unknown_``) are never reported.

Example:
    >>> import numpy as np
    >>> f = PosteriorFilter(["yes", "no", "_silence_"], DetectorConfig(threshold=0.6, smoothing=1))
    >>> p = lambda yes: np.array([yes, 0.0, 1.0 - yes])
    >>> events = [e for i, y in enumerate([0, .1, .8, .9, .7, .1, 0]) for e in f.push(1.0 + i / 10, p(y))]
    >>> [(e.label, round(e.time_s, 2), round(e.confidence, 2)) for e in events]
    [('yes', 0.8, 0.9)]
    >>> q = lambda yes, no: np.array([yes, no, 1.0 - yes - no])   # "no" first, then a stronger "yes"
    >>> seq = [(0, 0), (.1, .7), (.8, .1), (.95, 0), (.1, 0)]
    >>> [e.label for i, (y, n) in enumerate(seq) for e in f.push(3.0 + i / 10, q(y, n))] + [e.label for e in f.flush()]
    ['yes']
"""
from __future__ import annotations

import os
from collections.abc import Iterator as IteratorABC
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from .audio import MLPERF_KWS, FrontEndSpec, StreamingFeatures, features
from .errors import InputSpecError, ModelFormatError
from .kws_setting import DetectorConfig
from .labels import parse_labels

__all__ = ["DetectorConfig", "Detection", "PosteriorFilter", "KeywordDetector", "ModelInfo", "model_info",
           "resolve_model", "parse_labels"]

DEFAULT_CONFIG_FROM = "default (DetectorConfig)"   # ModelInfo.config_from of a model with no recorded setting


class Detection(NamedTuple):
    """One detected keyword.

    Attributes:
        label: the keyword.
        time_s: estimated time of the keyword in the stream (centre of the best window), seconds.
        confidence: the highest smoothed posterior of the episode.
        emitted_s: stream time at which the event was decided (latency = emitted_s - time_s).
    """

    label: str
    time_s: float
    confidence: float
    emitted_s: float

    def to_dict(self) -> dict:
        return {"event": "keyword", "label": self.label, "time_s": round(self.time_s, 3),
                "confidence": round(float(self.confidence), 4), "emitted_s": round(self.emitted_s, 3)}


class PosteriorFilter:
    """Smoothing, threshold, episodes and refractory period over per-window posteriors.

    Args:
        labels: class names in model output order.
        config: the :class:`DetectorConfig`.
        window_s: analysis window length in seconds (event times are window centres).
    """

    def __init__(self, labels: Sequence[str], config: DetectorConfig = DetectorConfig(), window_s: float = 1.0):
        self.labels = list(labels)
        self.config = config
        self.window_s = float(window_s)
        self.keyword_idx = np.array([i for i, l in enumerate(self.labels) if not l.startswith("_")], np.int64)
        if self.keyword_idx.size == 0:
            raise InputSpecError(f"labels {self.labels}: expected at least one keyword (labels not starting with '_')")
        self.reset()

    def reset(self) -> None:
        self._hist: List[np.ndarray] = []
        self._centres: List[float] = []
        self._episode: Optional[dict] = None
        self._quiet_until = -np.inf
        self._last_end = 0.0

    def push(self, end_s: float, probs) -> List[Detection]:
        """Add one window's posteriors (the window ends at ``end_s``); return events decided now."""
        p = np.asarray(probs, np.float64).reshape(-1)
        if p.size != len(self.labels):
            raise InputSpecError(f"posteriors: expected {len(self.labels)} values (one per label), given {p.size}")
        cfg = self.config
        self._last_end = float(end_s)
        centre = float(end_s) - self.window_s / 2
        self._hist.append(p)
        self._centres.append(centre)
        if len(self._hist) > cfg.smoothing:
            del self._hist[0], self._centres[0]
        smooth = np.mean(self._hist, axis=0)
        out: List[Detection] = []
        kw = smooth[self.keyword_idx]
        k = self.keyword_idx[int(np.argmax(kw))]
        ep = self._episode
        if ep is not None:
            if kw.sum() >= cfg.threshold:   # still keyword-like: the episode goes on
                self._note(ep, smooth, p, centre)
                ep["n"] += 1
                if ep["n"] >= cfg.max_episode:
                    out.append(self._emit(end_s))
                return out
            out.append(self._emit(end_s))
        if smooth[k] >= cfg.threshold and centre >= self._quiet_until:
            n = len(self.labels)
            self._episode = ep = {"conf": np.zeros(n), "raw": np.full(n, -1.0), "peak": np.zeros(n),
                                  "first": np.full(n, np.nan), "last": np.full(n, np.nan), "n": 1}
            # smoothing lags: the raw posteriors of the last windows may already have crossed
            for h, c in zip(self._hist[:-1], self._centres[:-1]):
                self._note_raw(ep, h, c)
            self._note(ep, smooth, p, centre)
            if cfg.max_episode == 1:
                out.append(self._emit(end_s))
        return out

    def flush(self) -> List[Detection]:
        """End of stream: emit a pending episode."""
        return [self._emit(self._last_end)] if self._episode is not None else []

    def _note(self, ep: dict, smooth: np.ndarray, p: np.ndarray, centre: float) -> None:
        np.maximum(ep["conf"], smooth, out=ep["conf"])
        self._note_raw(ep, p, centre)

    def _note_raw(self, ep: dict, p: np.ndarray, centre: float) -> None:
        """Per label: the highest raw posterior and its window centre, and the first and last
        window centres where the raw posterior reached the threshold."""
        up = p > ep["raw"]
        ep["raw"][up], ep["peak"][up] = p[up], centre
        on = p >= self.config.threshold
        ep["first"][on] = np.fmin(ep["first"][on], centre)
        ep["last"][on] = np.fmax(ep["last"][on], centre)

    def _emit(self, now: float) -> Detection:
        ep, self._episode = self._episode, None
        i = int(self.keyword_idx[int(np.argmax(ep["conf"][self.keyword_idx]))])
        t = float(ep["peak"][i] if np.isnan(ep["first"][i]) else (ep["first"][i] + ep["last"][i]) / 2)
        self._quiet_until = t + self.config.refractory_s
        return Detection(self.labels[i], t, float(ep["conf"][i]), float(now))

    def run(self, end_times: Sequence[float], posteriors: np.ndarray) -> List[Detection]:
        """Filter a whole sequence (e.g. posteriors computed once, for tuning); resets first."""
        self.reset()
        out: List[Detection] = []
        for t, p in zip(end_times, posteriors):
            out += self.push(t, p)
        return out + self.flush()


# --- model, labels, front end ----------------------------------------------------------------
def resolve_model(model: Union[str, os.PathLike]) -> Path:
    """A model path, bundle or zoo name -> a local path (zoo models fetched and verified).

    Raises:
        ModelFormatError: neither an existing path nor a zoo name.
    """
    p = Path(model)
    if p.exists():
        return p
    from edgeship import models

    if str(model) in models.REGISTRY:
        return models.fetch(str(model))
    raise ModelFormatError(f"{model}: no such model file or bundle, and not a zoo model name "
                           f"(keyword-spotting models in the zoo: "
                           f"{', '.join(n for n, e in models.REGISTRY.items() if e.task == 'keyword-spotting')})")


@dataclass
class ModelInfo:
    """What the detector knows about its model and where each fact came from."""

    labels: List[str]
    spec: FrontEndSpec
    labels_from: str
    spec_from: str
    zoo_name: Optional[str] = None
    config: DetectorConfig = DetectorConfig()
    config_from: str = DEFAULT_CONFIG_FROM
    config_source: Optional[str] = None   # the recorded setting's own ``source`` note (how it was chosen)


def _zoo_entry(model):
    """The registry entry of a loaded model: same sha256, or (shipped models) the same file."""
    try:
        from edgeship import models
    except ImportError:  # pragma: no cover - the zoo ships with edgeship
        return None
    here = Path(model.path).resolve()
    for e in models.REGISTRY.values():
        if e.sha256 and e.sha256 == model.sha256:
            return e
        if e.url is None and (models.registry.WEIGHTS / e.file).resolve() == here:
            return e
    return None


def model_info(model, labels=None, spec: Optional[FrontEndSpec] = None,
               config: Union[DetectorConfig, Mapping, None] = None) -> ModelInfo:
    """Labels, front end and detector setting for a loaded :class:`edgeship.Model` (see the module
    docstring). ``config``: a whole :class:`DetectorConfig`, or a dict of the fields to change in
    the model's own setting."""
    manifest = getattr(model, "manifest", None) or {}
    entry = _zoo_entry(model)
    if labels is not None:
        labs, lfrom = parse_labels(labels), "argument"
    elif manifest.get("labels"):
        labs, lfrom = list(manifest["labels"]), "bundle manifest"
    elif entry is not None and entry.labels:
        labs, lfrom = list(entry.labels), f"zoo entry {entry.name}"
    else:
        raise InputSpecError(f"{model.path.name}: no labels known for this model; expected a bundle with labels "
                             f"or a zoo model; pass labels (--labels FILE or a,b,c)")
    if spec is not None:
        sp, sfrom = spec, "argument"
    elif manifest.get("preprocessing"):
        sp, sfrom = _spec_from(manifest["preprocessing"], "bundle manifest"), "bundle manifest"
    elif entry is not None and entry.preprocessing:
        sp, sfrom = _spec_from(entry.preprocessing, f"zoo entry {entry.name}"), f"zoo entry {entry.name}"
    else:
        sp, sfrom = MLPERF_KWS, "default (MLPerf Tiny MFCC)"
    n_out = int(np.prod([d for d in model.outputs[0].shape if d > 0]))
    if n_out != len(labs):
        raise InputSpecError(f"{model.path.name}: the model has {n_out} outputs but {len(labs)} labels were given "
                             f"({lfrom}): {labs}")
    n_in = int(np.prod([d for d in model.inputs[0].shape if d > 0]))
    if n_in != int(np.prod(sp.feature_shape)):
        raise InputSpecError(f"{model.path.name}: input {list(model.inputs[0].shape)} does not take the front end's "
                             f"{sp.feature_shape[0]}x{sp.feature_shape[1]} features ({sfrom}); give the model's "
                             f"preprocessing spec")
    cfg, cfrom, csource = _detector_config(config, manifest, entry)
    return ModelInfo(labs, sp, lfrom, sfrom, entry.name if entry is not None else None, cfg, cfrom, csource)


def _detector_config(config, manifest: dict, entry) -> Tuple[DetectorConfig, str, Optional[str]]:
    """(setting, where it came from, the recorded setting's ``source`` note): see the module docstring."""
    if isinstance(config, DetectorConfig):
        return config, "argument", None
    if config is not None and not isinstance(config, Mapping):
        raise InputSpecError(f"config: expected a DetectorConfig or a dict of its fields, given {type(config).__name__}")
    if manifest.get("postprocessing"):
        recorded, bfrom, where = manifest["postprocessing"], "bundle manifest", "bundle manifest postprocessing"
    elif entry is not None and entry.detector:
        recorded, bfrom, where = entry.detector, f"zoo entry {entry.name}", f"zoo entry {entry.name} detector"
    else:
        recorded, bfrom, where = {}, DEFAULT_CONFIG_FROM, ""
    base = DetectorConfig.from_dict(recorded, where)
    if not config:
        return base, bfrom, recorded.get("source")
    changed = DetectorConfig.from_dict({**base.to_dict(), **config}, "config")
    return changed, f"{bfrom}; {', '.join(sorted(config))} from argument", None


def _spec_from(d, where: str) -> FrontEndSpec:
    try:
        return FrontEndSpec.from_dict(dict(d))
    except (InputSpecError, TypeError) as exc:
        raise InputSpecError(f"{where}: preprocessing is not an audio front end this detector can run ({exc})") from exc


# --- the detector --------------------------------------------------------------------------------
class KeywordDetector:
    """Keyword events from a stream of audio chunks.

    Args:
        model: an :class:`edgeship.Model`, or a path / bundle / zoo name to load.
        labels: override the labels (list, file, or "a,b,c").
        spec: override the front end.
        config: smoothing, threshold, refractory period: a :class:`DetectorConfig`, a dict of
            the fields to change in the model's own setting, or None for that setting
            (:func:`model_info`).
        hop_samples: window hop in samples (a multiple of the front end's frame step).
        threads: interpreter threads when loading ``model``.

    Attributes:
        model, labels, spec, info (:class:`ModelInfo`), config, hop_samples, windows (count so far).
    """

    def __init__(self, model, *, labels=None, spec: Optional[FrontEndSpec] = None,
                 config: Union[DetectorConfig, Mapping, None] = None, hop_samples: int = 1600,
                 threads: Optional[int] = None):
        if isinstance(model, (str, os.PathLike)):
            from .runtime import load

            model = load(resolve_model(model), threads=threads)
        self.model = model
        self.info = model_info(model, labels, spec, config)
        self.labels, self.spec, self.config = self.info.labels, self.info.spec, self.info.config
        self.hop_samples = int(hop_samples)
        self._stream = StreamingFeatures(self.spec, hop_samples=hop_samples)
        self._filter = PosteriorFilter(self.labels, self.config, window_s=self.spec.clip_samples / self.spec.sample_rate)
        self._shape = tuple(d if d > 0 else 1 for d in model.inputs[0].shape)
        self._softmax: Optional[bool] = None
        self.windows = 0

    @property
    def sample_rate(self) -> int:
        return self.spec.sample_rate

    @property
    def samples_seen(self) -> int:
        """Samples the front end has taken in since the last :meth:`reset` (``bench/soak_kws_stream.py``)."""
        return self._stream.samples_seen

    def reset(self) -> None:
        """Start a new stream."""
        self._stream.reset()
        self._filter.reset()
        self.windows = 0

    def posteriors(self, feats: np.ndarray) -> np.ndarray:
        """Class probabilities for one window's features (1-D, one per label)."""
        out = np.asarray(self.model.predict(np.ascontiguousarray(feats, np.float32).reshape(self._shape)),
                         np.float32).reshape(-1)
        if self._softmax is None:   # decided once: probabilities already, or logits
            self._softmax = bool(out.min() < -1e-3 or abs(float(out.sum()) - 1.0) > 0.05)
        if self._softmax:
            e = np.exp(out - out.max())
            out = e / e.sum()
        return out

    def push(self, chunk) -> List[Detection]:
        """Feed samples (float in [-1, 1] or integer PCM, at ``sample_rate``); return decided events."""
        out: List[Detection] = []
        for w in self._stream.push(chunk):
            self.windows += 1
            out += self._filter.push(w.end_sample / self.sample_rate, self.posteriors(w.features))
        return out

    def finish(self) -> List[Detection]:
        """End of stream. A stream shorter than one window is zero-padded to one (as :func:`features`)."""
        out: List[Detection] = []
        seen = self._stream.samples_seen
        if 0 < seen < self.spec.clip_samples and self.windows == 0:
            out += self.push(np.zeros(self.spec.clip_samples - seen, np.float32))
        return out + self._filter.flush()

    def detect(self, audio, chunk_samples: Optional[int] = None) -> List[Detection]:
        """All events in a whole signal, fed in chunks of ``chunk_samples`` (default: one hop); resets first."""
        x = np.asarray(audio)
        if x.size == 0:
            raise InputSpecError("detect: expected audio samples, given an empty signal")
        step = int(chunk_samples or self.hop_samples)
        self.reset()
        out: List[Detection] = []
        for i in range(0, x.size, step):
            out += self.push(x[i:i + step])
        return out + self.finish()

    def window_posteriors(self, audio, chunk_samples: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """(window end times in s, posteriors [windows, labels]) for a whole signal; resets first.

        For tuning: replay the result with :meth:`events` under many configs. A signal shorter
        than one window is zero-padded to one, as :meth:`finish` does. ``audio`` is the signal, or
        an iterator over its consecutive chunks (e.g. :func:`edgeship.audio.read_audio_blocks`:
        a recording of any length in constant memory).
        """
        if isinstance(audio, IteratorABC):
            chunks = audio
        else:
            x = np.asarray(audio)   # sliced along its first axis: a stereo array fails in push, as in detect
            step = int(chunk_samples or self.hop_samples)
            chunks = (x[i:i + step] for i in range(0, x.size, step))
        self.reset()
        ends, probs = [], []
        stream = self._stream

        def take(chunk) -> None:
            for w in stream.push(chunk):
                ends.append(w.end_sample / self.sample_rate)
                probs.append(self.posteriors(w.features))

        for c in chunks:
            take(c)
        seen = stream.samples_seen
        if 0 < seen < self.spec.clip_samples and not ends:
            take(np.zeros(self.spec.clip_samples - seen, np.float32))
        self.reset()
        return np.asarray(ends), (np.stack(probs) if probs else np.zeros((0, len(self.labels)), np.float32))

    def events(self, end_times, posteriors, config: Optional[DetectorConfig] = None) -> List[Detection]:
        """The events of :meth:`window_posteriors`' result under ``config`` (default: this detector's).

        The same events as :meth:`detect` on that signal, for the same settings; computing the
        posteriors once and replaying them is how settings are compared (a threshold sweep).
        """
        return PosteriorFilter(self.labels, config or self.config, window_s=self._filter.window_s).run(
            end_times, posteriors)

    def classify(self, clip) -> np.ndarray:
        """Posteriors of one clip (batch front end, zero-padded when short)."""
        return self.posteriors(features(clip, self.spec))

    def describe(self) -> dict:
        """Model, labels, front end and settings (what ``listen --json`` prints first)."""
        return {"event": "start", "model": str(self.model.path), "backend": self.model.backend,
                "sha256": self.model.sha256, "zoo_name": self.info.zoo_name, "labels": self.labels,
                "labels_from": self.info.labels_from, "frontend": self.spec.to_dict(),
                "frontend_from": self.info.spec_from, "hop_s": self.hop_samples / self.sample_rate,
                "config": self.config.to_dict(), "config_from": self.info.config_from}


def iter_chunks(x: np.ndarray, size: int) -> Iterable[np.ndarray]:
    """Consecutive slices of ``size`` samples (the last may be shorter)."""
    for i in range(0, len(x), size):
        yield x[i:i + size]
