"""numpy, imported at its first use.

Reading a project's config builds windows, metrics, triggers and drift checks but computes
nothing, so the CLI's read commands need no numpy (~0.1 s to import). The core modules that
compute with numpy only inside their functions take ``np`` from here; type checkers see numpy.

Examples
--------
>>> from retrainer.core._lazy_numpy import np
>>> float(np.mean([1.0, 3.0]))
2.0
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

__all__ = ["np"]


class _Numpy:
    """Forwards every attribute to numpy, importing it the first time."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        module = sys.modules.get("numpy") or importlib.import_module("numpy")
        return getattr(module, name)

    def __repr__(self) -> str:
        return "<numpy, imported at first use>"


np: Any = _Numpy()
