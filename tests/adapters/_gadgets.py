"""Objects that do work when a loader touches them: every hook records a call in ``CALLS``.

The gadget tests and the loader fuzz put these (and dangerous library callables) into skops
files; a call recorded here means loading or predicting ran code from the file.
"""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator

CALLS: list[str] = []


def record(*args: Any, **kwargs: Any) -> int:
    """A function a file may name: calling it is the side effect the tests look for."""
    CALLS.append(f"record{args!r}")
    return 0


class CallDoesWork:
    """A callable object (like numpy's PytestTester): ``__call__`` runs code."""

    def __init__(self, target: str = "tests") -> None:
        self.target = target

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        CALLS.append("__call__")
        return args[0] if args else None


class SetstateDoesWork:
    """``__setstate__`` runs code (skops calls it while building the object)."""

    def __init__(self) -> None:
        self.payload = "x"

    def __setstate__(self, state: dict[str, Any]) -> None:
        CALLS.append("__setstate__")
        self.__dict__.update(state)


class ReduceDoesWork:
    """``__reduce__`` names a function to call with arguments, as in a pickle gadget."""

    def __init__(self) -> None:
        self.payload = "x"

    def __reduce__(self) -> tuple[Any, ...]:
        return (record, ("__reduce__",))


class InitDoesWork:
    """Calling the class (``cls(*args)``, a ConstructorFromReduceNode) runs code."""

    def __init__(self, *args: Any) -> None:
        CALLS.append("__init__")


class EstimatorDoesWork(BaseEstimator):
    """A scikit-learn estimator subclass outside scikit-learn: not trusted for being one."""

    def __init__(self, payload: str = "x") -> None:
        self.payload = payload

    def __setstate__(self, state: dict[str, Any]) -> None:
        CALLS.append("EstimatorDoesWork.__setstate__")
        super().__setstate__(state)

    def predict(self, X: Any) -> Any:
        CALLS.append("EstimatorDoesWork.predict")
        return X
