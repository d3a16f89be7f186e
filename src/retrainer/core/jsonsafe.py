"""Strict JSON values: the one place that turns NaN and infinities into ``null``.

JSON has no NaN: ``json.dumps(..., allow_nan=False)`` refuses it, and a file written with
``NaN`` in it is not JSON to other readers. Every document retrainer writes (results.json,
``--json`` output, the raw data block of a report, evidence in the store) goes through
:func:`json_safe` first.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["dumps", "json_safe"]


def json_safe(value: Any, *, default: Callable[[Any], Any] | None = None) -> Any:
    """``value`` as plain JSON data: NaN and infinities become None, tuples lists.

    Mappings get string keys; numpy scalars and arrays become Python numbers and lists.
    Anything else is returned as is, or passed to ``default`` when given (e.g. ``str``, or a
    function that formats datetimes), whose result is made safe in turn.

    Examples
    --------
    >>> json_safe({"a": float("nan"), "b": [1.0, float("inf")], "c": (1, None)})
    {'a': None, 'b': [1.0, None], 'c': [1, None]}
    >>> import numpy as np
    >>> json_safe({"n": np.int64(3), "x": np.array([0.5, np.nan])})
    {'n': 3, 'x': [0.5, None]}
    >>> json_safe({1: object}, default=lambda v: v.__name__)
    {'1': 'object'}
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, default=default) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v, default=default) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays, without importing numpy
    if callable(tolist) and type(value).__module__ == "numpy":
        return json_safe(tolist(), default=default)
    if default is not None:
        return json_safe(default(value))
    return value


def dumps(
    value: Any, *, indent: int | None = None, default: Callable[[Any], Any] | None = None
) -> str:
    """Strict JSON text of :func:`json_safe` ``(value)``.

    Examples
    --------
    >>> dumps({"a": float("inf")})
    '{"a": null}'
    """
    return json.dumps(json_safe(value, default=default), indent=indent, allow_nan=False)
