"""Type aliases shared by the ``edgeship.targets.mcu*`` modules."""
from __future__ import annotations

import os
from typing import Union

PathOrBytes = Union[str, os.PathLike, bytes]
