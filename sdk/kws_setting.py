"""The keyword detector's setting (:class:`DetectorConfig`), apart from the detector itself.

:mod:`edgeship.kws` re-exports it; it lives here so that :mod:`edgeship.bundle` can check a
bundle's ``postprocessing`` when it is written without importing the detector (and, through
it, the runtime).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping, Optional

import numpy as np

from .errors import InputSpecError

__all__ = ["DetectorConfig", "MANIFEST_TYPE"]

MANIFEST_TYPE = "keyword_detector"   # a bundle manifest's ``postprocessing.type`` for DetectorConfig


@dataclass(frozen=True)
class DetectorConfig:
    """Post-processing of the window posteriors.

    A model's own setting comes with it (:func:`edgeship.kws.model_info`): a bundle manifest's
    ``postprocessing`` (:meth:`to_manifest`) or the zoo entry's ``detector``; each zoo setting is
    the operating point ``bench/kws_false_alarms.py`` chose on its tuning half (speakers and noise
    recordings disjoint from its evaluation half): the highest tuning recall at <= 1 false accept
    per hour. The class defaults, used for a model with no recorded setting, are that choice for
    the MLPerf reference int8 model. Re-run the bench for another model and record the result in
    its bundle, or pass it (``--threshold``, ``--smoothing`` in the app).

    Attributes:
        threshold: smoothed posterior a keyword must reach (0..1).
        smoothing: number of consecutive windows averaged (1 = no smoothing).
        refractory_s: seconds after an event's time during which no new event starts.
        max_episode: windows an above-threshold run may last before its event is emitted
            (bounds the latency: at most ``max_episode`` hops after the start).
    """

    threshold: float = 0.9
    smoothing: int = 4
    refractory_s: float = 1.0
    max_episode: int = 12

    def __post_init__(self):
        if not (isinstance(self.threshold, (int, float)) and 0.0 < self.threshold <= 1.0):
            raise InputSpecError(f"threshold: expected a number in (0, 1], given {self.threshold!r}")
        if not isinstance(self.smoothing, (int, np.integer)) or self.smoothing < 1:
            raise InputSpecError(f"smoothing: expected a whole number of windows >= 1, given {self.smoothing!r}")
        if not (isinstance(self.refractory_s, (int, float)) and self.refractory_s >= 0):
            raise InputSpecError(f"refractory_s: expected seconds >= 0, given {self.refractory_s!r}")
        if not isinstance(self.max_episode, (int, np.integer)) or self.max_episode < 1:
            raise InputSpecError(f"max_episode: expected a whole number of windows >= 1, given {self.max_episode!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    def to_manifest(self, source: Optional[str] = None) -> dict:
        """The bundle manifest's ``postprocessing``: ``type`` ``keyword_detector``, the fields, and
        where the setting came from (``source``, free text)."""
        return {"type": MANIFEST_TYPE, **asdict(self), **({"source": source} if source else {})}

    @classmethod
    def from_dict(cls, d, where: str = "detector settings") -> "DetectorConfig":
        """A config from :meth:`to_dict` / :meth:`to_manifest` output (``type`` and ``source`` are
        checked or ignored; any other unknown key is an error).

        Example:
            >>> DetectorConfig.from_dict({"type": "keyword_detector", "threshold": 0.95, "smoothing": 5})
            DetectorConfig(threshold=0.95, smoothing=5, refractory_s=1.0, max_episode=12)
        """
        if not isinstance(d, Mapping):
            raise InputSpecError(f"{where}: expected a dict of detector settings, given {type(d).__name__}")
        if d.get("type", MANIFEST_TYPE) != MANIFEST_TYPE:
            raise InputSpecError(f"{where}: expected postprocessing of type {MANIFEST_TYPE!r}, given "
                                 f"{d.get('type')!r}; this model's bundle is not for the keyword detector")
        fields = {k: v for k, v in d.items() if k not in ("type", "source")}
        unknown = sorted(set(fields) - set(cls.__dataclass_fields__))
        if unknown:
            raise InputSpecError(f"{where}: unknown detector settings {unknown}; expected some of "
                                 f"{sorted(cls.__dataclass_fields__)}")
        return cls(**fields)
