"""The log store's fast paths give what the general ones give: same tables, rows and errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from retrainer.adapters.logstore import schema
from retrainer.adapters.logstore.segments import ipc_digest
from retrainer.errors import DataError

N = 6
TIMES = pd.date_range("2024-01-01T22:00", periods=N, freq="1h")  # two UTC days


def _preds(**changes: Any) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "id": pd.array([f"r{i}" for i in range(N)], dtype="str"),
            "timestamp": TIMES,
            "pipeline": pd.array(["p"] * N, dtype="str"),
            "model_version": np.arange(N, dtype=np.int64),
            "prediction": [0, 1] * (N // 2),
            "score": np.linspace(0, 1, N),
            "x": np.arange(N, dtype=float),
        }
    )
    for name, values in changes.items():
        if values is None:
            frame = frame.drop(columns=name)
        else:
            frame[name] = values
    return frame


def _fb(**changes: Any) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "id": pd.array([f"r{i}" for i in range(N)], dtype="str"),
            "timestamp": TIMES,
            "pipeline": pd.array(["p"] * N, dtype="str"),
            "outcome": np.arange(N) % 2,
        }
    )
    for name, values in changes.items():
        if values is None:
            frame = frame.drop(columns=name)
        else:
            frame[name] = values
    return frame


WITH_NAN = np.where(np.arange(N) == 2, np.nan, 0.5)
PREDICTIONS: dict[str, Callable[[], pd.DataFrame]] = {
    "well typed": _preds,
    "nanosecond times": lambda: _preds(timestamp=TIMES.as_unit("ns")),
    "sub-microsecond times": lambda: _preds(
        timestamp=TIMES.as_unit("ns") + pd.Timedelta(nanoseconds=1)
    ),
    "unsorted": lambda: _preds(timestamp=TIMES[::-1]),
    "no score, NaN feature": lambda: _preds(score=None, x=WITH_NAN),
    "NaN score": lambda: _preds(score=WITH_NAN),
    "int32 version": lambda: _preds(model_version=np.ones(N, dtype=np.int32)),
    "float version": lambda: _preds(model_version=np.ones(N)),
    "nullable version": lambda: _preds(model_version=pd.array([1] * (N - 1) + [None], "Int64")),
    "object ids": lambda: _preds(id=np.array([f"r{i}" for i in range(N)], dtype=object)),
    "integer ids": lambda: _preds(id=np.arange(N)),
    "missing id": lambda: _preds(id=pd.array(["a"] * (N - 1) + [None], dtype="str")),
    "string times": lambda: _preds(timestamp=[t.isoformat() for t in TIMES]),
    "aware times": lambda: _preds(timestamp=TIMES.tz_localize("Europe/Berlin")),
    "NaT": lambda: _preds(timestamp=TIMES.where(np.arange(N) != 1)),
    "string score": lambda: _preds(score=["0.5"] * N),
    "bool score": lambda: _preds(score=[True] * N),
    "categorical prediction": lambda: _preds(prediction=pd.Categorical(["a", "b"] * (N // 2))),
    "text prediction, mixed feature": lambda: _preds(prediction=["a"] * N, x=[1, "b"] * (N // 2)),
    "python string pipeline": lambda: _preds(pipeline=pd.array(["p"] * N, "string[python]")),
    "features of many types": lambda: _preds(
        flag=[True, False] * (N // 2),
        when=TIMES.tz_localize("UTC"),
        count=pd.array([1] * (N - 1) + [None], "Int64"),
        label=pd.Categorical(["u", "v"] * (N // 2)),
        text=np.array(["t"] * N, dtype=object),
    ),
    "another index": lambda: _preds().set_axis([f"i{i}" for i in range(N)]),
}
FEEDBACK: dict[str, Callable[[], pd.DataFrame]] = {
    "well typed": _fb,
    "no pipeline": lambda: _fb(pipeline=None),
    "some pipelines missing": lambda: _fb(pipeline=pd.array(["p", None] * (N // 2), "str")),
    "no pipeline given": lambda: _fb(pipeline=pd.array([None] * N, "str")),
    "object pipeline": lambda: _fb(pipeline=np.array(["p"] * N, dtype=object)),
    "float outcome": lambda: _fb(outcome=np.linspace(0, 1, N)),
    "text outcome": lambda: _fb(outcome=pd.array(["y", "n"] * (N // 2), dtype="str")),
    "bool outcome": lambda: _fb(outcome=[True, False] * (N // 2)),
    "missing outcome": lambda: _fb(outcome=WITH_NAN),
    "missing text outcome": lambda: _fb(outcome=pd.array(["y"] * (N - 1) + [None], "str")),
    "object outcome": lambda: _fb(outcome=np.array([1, "a"] * (N // 2), dtype=object)),
    "extra column": lambda: _fb(delay=np.arange(N)),
}


def _general(frame: pd.DataFrame, kind: schema.Kind, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as m:
        m.setattr(schema, "_well_typed", lambda *_: None)
        return _outcome(frame, kind)


def _outcome(frame: pd.DataFrame, kind: schema.Kind) -> Any:
    try:
        table, days = schema.normalize(frame, kind, "batch")
    except DataError as exc:
        return str(exc)
    return table, ipc_digest(table), days.tolist()


@pytest.mark.parametrize(
    ("kind", "make"),
    [("predictions", m) for m in PREDICTIONS.values()]
    + [("feedback", m) for m in FEEDBACK.values()],
    ids=[f"predictions: {n}" for n in PREDICTIONS] + [f"feedback: {n}" for n in FEEDBACK],
)
def test_normalize_fast_path_stores_what_the_general_path_stores(
    kind: schema.Kind, make: Callable[[], pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, general = _outcome(make(), kind), _general(make(), kind, monkeypatch)
    if isinstance(general, str):
        assert fast == general  # the same error
        return
    assert not isinstance(fast, str), fast
    assert fast[0].schema == general[0].schema
    assert fast[0].equals(general[0])
    assert fast[1:] == general[1:]  # the same bytes: the same segment keys (idempotency)


@pytest.mark.parametrize(
    ("kind", "frame"),
    [
        ("predictions", PREDICTIONS["well typed"]()),
        ("predictions", PREDICTIONS["nanosecond times"]()),
        ("feedback", FEEDBACK["well typed"]()),
        ("feedback", FEEDBACK["no pipeline"]()),
    ],
)
def test_well_typed_batches_skip_the_general_path(
    kind: schema.Kind, frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: Any) -> None:
        raise AssertionError("the general path ran")

    monkeypatch.setattr(schema, "_coerced", refuse)
    table, _ = schema.normalize(frame, kind, "batch")
    assert table.num_rows == N


# --- the in-memory join ----------------------------------------------------------------------


def _random_log(seed: int, **features: Callable[[np.random.Generator, int], Any]) -> Any:
    from retrainer.adapters.logstore import InMemoryLogStore

    rng = np.random.default_rng(seed)
    store = InMemoryLogStore()
    t0 = pd.Timestamp("2024-01-01")
    for batch in range(4):
        n = int(rng.integers(1, 30))
        frame = pd.DataFrame(
            {
                "id": pd.array([f"{batch}-{i}" for i in range(n)], dtype="str"),
                "timestamp": t0 + pd.to_timedelta(rng.integers(0, 4 * 86400, n), unit="s"),
                "pipeline": pd.array(rng.choice(["a", "b", "c"], n), dtype="str"),
                "model_version": np.int64(batch),
                "prediction": rng.integers(0, 2, n),
            }
        )
        if batch != 2:  # a batch without score: nulls in the union
            frame["score"] = rng.random(n)
        for name, make in features.items():
            frame[name] = make(rng, n)
        store.append_predictions(frame)
        m = int(rng.integers(0, 3 * n))
        store.append_feedback(
            pd.DataFrame(
                {
                    "id": pd.array(
                        [f"{batch}-{i}" for i in rng.integers(0, n + 3, m)], dtype="str"
                    ),
                    # whole hours: ties between feedback rows of one id
                    "timestamp": t0 + pd.to_timedelta(rng.integers(0, 5 * 24, m), unit="h"),
                    "pipeline": pd.array(
                        rng.choice(np.array(["a", "b", None], dtype=object), m), dtype="str"
                    ),
                    "outcome": rng.integers(0, 3, m),
                }
            )
        )
    return store


def _both(store: Any, monkeypatch: pytest.MonkeyPatch, *args: Any, **kwargs: Any) -> Any:
    def run() -> Any:
        try:
            return store.joined_many(*args, **kwargs)
        except DataError as exc:
            return str(exc)

    fast = run()
    with monkeypatch.context() as m:
        m.setattr(type(store), "_joined_arrow", lambda *_, **__: None)
        sql = run()
    return fast, sql


JOINS = [
    (["a"], None, None, "2024-01-06", None, False),
    (["a", "b"], "2024-01-02", "2024-01-03T12:00", "2024-01-03", None, True),
    (["c", "b"], "2024-01-01T05:00", None, "2024-01-02T07:00", ["prediction"], True),
    (["a", "b", "c"], None, "2024-01-04", "2024-01-05", ["score", "timestamp"], False),
    (["a", "zz"], "2024-01-03", "2024-01-04", "2024-01-04", ["id", "x"], True),
    (["b"], "2024-01-02", "2024-01-03", "2024-01-01", None, True),  # no feedback yet
    (["a"], None, None, "2024-01-06", ["nope"], True),  # an unknown column: the SQL's error
    (["zz"], None, None, "2024-01-06", None, True),  # no such pipeline
]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(
    ("pipelines", "start", "end", "until", "columns", "unlabelled"),
    JOINS,
    ids=[str(i) for i in range(len(JOINS))],
)
@pytest.mark.parametrize(
    "features",
    [
        {"x": lambda rng, n: rng.normal(size=n)},
        {
            "x": lambda rng, n: rng.normal(size=n).astype(np.float32),
            "k": lambda rng, n: rng.integers(0, 9, n).astype(np.int8),
            "flag": lambda rng, n: rng.random(n) < 0.5,
            "name": lambda rng, n: pd.array(rng.choice(["u", "v"], n), dtype="str"),
        },
        # types the Arrow join leaves to the SQL
        {"x": lambda rng, n: pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(n, "s")},
    ],
    ids=["floats", "plain types", "aware feature"],
)
def test_the_arrow_join_gives_what_the_sql_gives(
    seed: int,
    pipelines: list[str],
    start: str | None,
    end: str | None,
    until: str,
    columns: list[str] | None,
    unlabelled: bool,
    features: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = _random_log(seed, **features)
    fast, sql = _both(
        store,
        monkeypatch,
        pipelines,
        None if start is None else pd.Timestamp(start).to_pydatetime(),
        None if end is None else pd.Timestamp(end).to_pydatetime(),
        feedback_until=pd.Timestamp(until).to_pydatetime(),
        columns=columns,
        include_unlabelled=unlabelled,
    )
    if isinstance(sql, str):
        assert fast == sql
        return
    pd.testing.assert_frame_equal(fast, sql)


def test_plain_joins_of_the_in_memory_store_run_no_sql(monkeypatch: pytest.MonkeyPatch) -> None:
    from retrainer.adapters.logstore.query import DuckDBLogStore

    store = _random_log(4)
    rows = len(store.joined_many(["a", "b"], None, None, feedback_until=pd.Timestamp("2024-02-01")))

    def refuse(*_: Any) -> None:
        raise AssertionError("the SQL ran")

    monkeypatch.setattr(DuckDBLogStore, "_query", refuse)
    out = store.joined_many(["a", "b"], None, None, feedback_until=pd.Timestamp("2024-02-01"))
    assert len(out) == rows > 0
