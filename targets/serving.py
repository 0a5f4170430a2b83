"""Which targets a model file serves: every registered profile's check, run at bundle time.

``edgeship bundle`` records the result as each manifest entry's ``targets``, so that
``edgeship.load(bundle, target="rpi4")`` picks the entry that serves the Raspberry Pi 4 (the
default entry when it does, else the first that does) and says which entries serve what
when none does.

Example:
    >>> import edgeship.models
    >>> t = serving_targets(edgeship.models.path("shapes_cnn_fp32"))
    >>> "rpi4" in t, "edgetpu" in t
    (True, False)
"""
from __future__ import annotations

from typing import Dict, List, Mapping

from edgeship.errors import EdgeshipError

from . import check, list_targets


def serving_targets(path) -> List[str]:
    """Names of the registered targets whose check passes on the model file ``path``."""
    served = []
    for name in list_targets():
        try:
            if check(path, name).compatible:
                served.append(name)
        except EdgeshipError:  # a target that cannot take this file does not serve it
            continue
    return served


def bundle_targets(files: Mapping[str, object]) -> Dict[str, List[str]]:
    """``{key: [key, *targets whose check passes]}`` for :func:`edgeship.bundle.write_bundle`'s ``targets``."""
    return {key: sorted({key, *serving_targets(path)}) for key, path in files.items()}


__all__ = ["serving_targets", "bundle_targets"]
