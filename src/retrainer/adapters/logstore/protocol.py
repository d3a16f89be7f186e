"""The log store port: what every log store does, and what an append returns."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Literal, Protocol

import pandas as pd

Kind = Literal["predictions", "feedback"]
KINDS: tuple[Kind, ...] = ("predictions", "feedback")

PREDICTION_COLUMNS = ("id", "timestamp", "pipeline", "model_version", "prediction")
"""Columns every logged prediction has; ``score`` (float) is optional, other columns are kept."""

FEEDBACK_COLUMNS = ("id", "timestamp", "outcome")
"""Columns every feedback row has; ``pipeline`` is optional (null: any pipeline)."""


class Appended(int):
    """What ``append_*`` returns: the number of rows in the batch, and how many were new.

    It is the row count (an ``int``); ``new`` counts the rows this call stored. Appends are
    idempotent, so the rows of a batch (or of one of its days) appended before are not stored
    again: they are ``already_logged``.

    Examples
    --------
    >>> from retrainer.adapters.logstore import InMemoryLogStore
    >>> import pandas as pd
    >>> store = InMemoryLogStore()
    >>> batch = pd.DataFrame({"id": ["a", "b"], "timestamp": ["2024-01-01", "2024-01-02"],
    ...     "pipeline": "p", "model_version": 1, "prediction": [0, 1]})
    >>> first = store.append_predictions(batch)
    >>> again = store.append_predictions(batch)
    >>> first, first.new, again, again.new, again.already_logged
    (2, 2, 2, 0, 2)
    """

    new: int

    def __new__(cls, rows: int, *, new: int) -> Appended:
        self = super().__new__(cls, rows)
        self.new = new
        return self

    def __getnewargs_ex__(self) -> tuple[tuple[int], dict[str, int]]:
        return (int(self),), {"new": self.new}  # for pickle and copy

    @property
    def already_logged(self) -> int:
        """The rows of the batch that were in the log before this call."""
        return int(self) - self.new


class LogStore(Protocol):
    """Append-only log of predictions and their delayed feedback, queried by time range.

    See the module docstring for the contract every adapter keeps.
    """

    def append_predictions(self, frame: pd.DataFrame, *, origin: str | None = None) -> Appended:
        """Validate and store predictions; return the number of rows, and how many were new."""
        ...

    def append_feedback(self, frame: pd.DataFrame, *, origin: str | None = None) -> Appended:
        """Validate and store feedback; return the number of rows, and how many were new."""
        ...

    def predictions(
        self,
        pipeline: str,
        start: datetime | None,
        end: datetime | None,
        columns: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """The pipeline's predictions with ``start <= timestamp < end``, by time then id."""
        ...

    def feedback(
        self, start: datetime | None, end: datetime | None, *, pipeline: str | None = None
    ) -> pd.DataFrame:
        """Feedback rows with ``start <= timestamp < end``, by time then id."""
        ...

    def joined(
        self,
        pipeline: str,
        start: datetime | None,
        end: datetime | None,
        *,
        feedback_until: datetime,
        columns: Sequence[str] | None = None,
        include_unlabelled: bool = False,
    ) -> pd.DataFrame:
        """Predictions in ``[start, end)`` with the feedback that arrived by ``feedback_until``."""
        ...

    def joined_many(
        self,
        pipelines: Sequence[str],
        start: datetime | None,
        end: datetime | None,
        *,
        feedback_until: datetime,
        columns: Sequence[str] | None = None,
        include_unlabelled: bool = False,
    ) -> pd.DataFrame:
        """:meth:`joined` for several pipelines in one query, with a ``pipeline`` column."""
        ...

    def compact(self, day: date | str) -> int:
        """Merge the segments of one day into one; return how many segments were merged."""
        ...

    def days(self, kind: Kind = "predictions") -> list[date]:
        """The days that hold segments of ``kind``, sorted."""
        ...
