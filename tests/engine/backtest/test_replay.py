"""The replay: no look-ahead, delayed feedback for metric triggers, prequential scoring."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrainer.config import PipelineConfig
from retrainer.core.backtest import CostModel
from retrainer.core.clock import SimulatedClock
from retrainer.engine.backtest import summarize
from retrainer.engine.backtest.replay import Replay, ReplaySource, policy_pipeline, run_policy
from retrainer.errors import DataError

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
ALWAYS_BLESS = [{"metric": "accuracy", "min": 0.0}]


def pipeline_spec(train: str, features: list[str], *, holdout: float) -> dict[str, Any]:
    """A replayed pipeline as load_replay builds it: every PipelineConfig field, as JSON."""
    spec = {
        "name": "toy",
        "source": {"kind": "parquet", "url": "data.parquet", "time_column": "ts"},
        "target": "y",
        "features": features,
        "train": train,
        "metrics": ["accuracy"],
        "blessing": {"holdout": holdout, "rules": ALWAYS_BLESS, "sanity": {"enabled": False}},
    }
    return PipelineConfig.model_validate(spec).model_dump(mode="json", exclude_none=True)


def write_module(root: Path, name: str, code: str) -> str:
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{name}.py").write_text(code)
    return f"{name}:train"


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


# --- ReplaySource -----------------------------------------------------------------------------


def _hourly(days: int = 5) -> pd.DataFrame:
    ts = pd.date_range("2024-01-01", periods=24 * days, freq="h")
    return pd.DataFrame({"ts": ts, "y": np.arange(len(ts)) % 2})


def _times(frame: pd.DataFrame) -> list[pd.Timestamp]:
    return list(pd.to_datetime(frame["ts"]))


def test_replay_source_returns_nothing_beyond_now():
    clock = SimulatedClock(utc(2024, 1, 3))
    source = ReplaySource(_hourly(), "ts", clock, target="y")
    # asking for the whole future returns the rows before now (the row stamped now belongs
    # to the batch being served) and nothing later
    got = source.load(None, utc(2030, 1, 1))
    assert _times(got) == list(pd.date_range("2024-01-01", "2024-01-02 23:00", freq="h"))
    assert source.load(utc(2024, 1, 3, 1), utc(2030, 1, 1)).empty
    # the clock moves: the rows appear
    clock.set(utc(2024, 1, 3, 5))
    got = source.load(utc(2024, 1, 3), utc(2030, 1, 1))
    assert _times(got) == list(pd.date_range("2024-01-03", periods=5, freq="h"))


@pytest.mark.parametrize(
    ("labels", "hidden_dtype"),
    [
        (np.arange(120) % 2, "Int64"),
        (np.arange(120) % 2 == 1, "boolean"),
        (np.arange(120) % 3 * 0.5, "float64"),
        ([f"class {i % 3}" for i in range(120)], None),
    ],
    ids=["int", "bool", "float", "str"],
)
def test_replay_source_shows_features_at_once_and_each_label_when_it_arrives(
    labels: Any, hidden_dtype: str | None
):
    frame = _hourly().assign(x=np.linspace(-1.0, 1.0, 120), y=labels)
    clock = SimulatedClock(utc(2024, 1, 4))
    source = ReplaySource(frame, "ts", clock, label_delay=timedelta(days=1, hours=2), target="y")
    got = source.load(None, utc(2030, 1, 1))
    # every row before now, with its features; a label once time + 26 h <= Jan 4 00:00
    assert _times(got)[-1] == pd.Timestamp("2024-01-03 23:00")
    assert got["x"].tolist() == frame["x"][:72].tolist()
    assert got["y"].notna().tolist() == [True] * 47 + [False] * 25
    assert got["y"][:47].tolist() == list(frame["y"][:47])
    if hidden_dtype is not None:  # an integer label stays an integer one (task: auto)
        assert str(got["y"].dtype) == hidden_dtype
    assert source.known_row_hashes(got) is None  # not the data set's rows: hashed by the caller
    # a window that ends before the labelled bound is the data set's rows, as they are
    early = source.load(None, utc(2024, 1, 2))
    assert early["y"].dtype == frame["y"].dtype and len(early) == 24
    assert source.known_row_hashes(early) is not None
    # the clock moves on: the labels arrive
    clock.set(utc(2024, 1, 5, 2))
    assert source.load(None, utc(2024, 1, 4))["y"].notna().all()


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.integers(0, 5 * 3600), min_size=1, max_size=40),  # rows 0-5 h apart
    now_s=st.integers(0, 80 * 3600),
    delay_s=st.integers(0, 30 * 3600),
    start_s=st.one_of(st.none(), st.integers(-3600, 80 * 3600)),
    end_s=st.one_of(st.none(), st.integers(-3600, 90 * 3600)),
)
def test_replay_source_never_shows_a_row_or_label_before_its_time(
    gaps: list[int], now_s: int, delay_s: int, start_s: int | None, end_s: int | None
):
    """For any rows (ties included), clock, delay and window: every row returned is in the
    window and before now, every row in the window before now is returned, and its label is
    there exactly when time + delay <= now, and then it is the row's own."""
    origin = utc(2024, 1, 1)
    times = pd.DatetimeIndex([origin + timedelta(seconds=int(s)) for s in np.cumsum(gaps)])
    frame = pd.DataFrame({"ts": times.tz_localize(None), "y": np.arange(len(gaps)) % 3})
    now = origin + timedelta(seconds=now_s)
    delay = timedelta(seconds=delay_s)
    start = None if start_s is None else origin + timedelta(seconds=start_s)
    end = None if end_s is None else origin + timedelta(seconds=end_s)
    source = ReplaySource(frame, "ts", SimulatedClock(now), target="y", label_delay=delay)
    got = source.load(start, end)
    t = times.to_pydatetime()
    expected = [
        i
        for i in range(len(t))
        if t[i] < now and (start is None or t[i] >= start) and (end is None or t[i] < end)
    ]
    assert len(got) == len(expected)
    assert list(got["ts"]) == [frame["ts"][i] for i in expected]
    for row, i in enumerate(expected):
        label = got["y"].iloc[row]
        if t[i] + delay <= now:
            assert label == frame["y"][i]
        else:
            assert pd.isna(label)


def test_replay_source_names_a_missing_target():
    with pytest.raises(DataError, match="target column 'label' not found; columns are: ts, y"):
        ReplaySource(_hourly(), "ts", SimulatedClock(utc(2024, 1, 4)), target="label")


def test_replay_source_start_is_inclusive_and_end_exclusive():
    clock = SimulatedClock(utc(2024, 1, 10))
    source = ReplaySource(_hourly(), "ts", clock, target="y")
    got = source.load(utc(2024, 1, 2, 5), utc(2024, 1, 2, 9))
    assert _times(got) == list(pd.date_range("2024-01-02 05:00", periods=4, freq="h"))
    assert list(got.index) == [0, 1, 2, 3]
    assert source.load(utc(2024, 1, 2, 5), utc(2024, 1, 2, 5)).empty


def test_replay_source_knows_the_row_hashes_of_the_frame_it_returned():
    from retrainer.adapters.sources import row_hashes, snapshot_of

    frame = _hourly().assign(x=np.linspace(-1.0, 1.0, 120), label=[f"r{i % 7}" for i in range(120)])
    clock = SimulatedClock(utc(2024, 1, 4))
    source = ReplaySource(frame, "ts", clock, target="label")
    window = source.load(utc(2024, 1, 2, 5), utc(2024, 1, 3, 9))
    known = source.known_row_hashes(window)
    assert known is not None and len(known) == len(window) == 28
    assert np.array_equal(known, row_hashes(window))
    assert snapshot_of(window, "ts", hashes=known) == snapshot_of(window, "ts")
    # any other frame, even with the same rows, is hashed by the caller
    assert source.known_row_hashes(window.copy()) is None
    assert source.known_row_hashes(window.iloc[1:]) is None
    later = source.load(None, utc(2024, 1, 2))
    assert source.known_row_hashes(window) is None  # no longer the last one returned
    assert np.array_equal(source.known_row_hashes(later), row_hashes(later))  # type: ignore[arg-type]
    empty = source.load(utc(2024, 1, 5), None)
    assert len(source.known_row_hashes(empty)) == 0  # type: ignore[arg-type]


# --- no look-ahead ----------------------------------------------------------------------------

SPY = """
import json
import numpy as np

LOG = {log!r}


def _write(kind, t):
    with open(LOG, "a") as f:
        f.write(json.dumps({{"kind": kind, "max": float(np.max(t)), "min": float(np.min(t)),
                            "n": int(len(t))}}) + "\\n")


class Spy:
    def __init__(self, label):
        self.label = label
        self.scored = False

    def predict(self, X):
        if not self.scored:  # the first call after training: the run's holdout
            self.scored = True
            _write("holdout", X["t"].to_numpy())
        return np.full(len(X), self.label)


def train(data, params):
    _write("train", data["t"].to_numpy())
    return Spy(int(data[params["target"]].mean() > 0.5))
"""


@pytest.mark.parametrize("delay_days", [0, 3])
def test_no_policy_sees_a_label_before_it_arrives(tmp_path: Path, delay_days: int):
    """Each run's rows (training and holdout) have time + delay <= the run's time; the newest
    is exactly at that bound, so an off-by-one or a source ignoring the delay shows."""
    log = tmp_path / "calls.jsonl"
    train = write_module(tmp_path, "spy_lookahead", SPY.format(log=str(log)))
    n = 24 * 30  # hourly rows, 30 days; feature t = hours since the first row
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "ts": pd.date_range("2024-01-01", periods=n, freq="h"),
            "t": np.arange(n, dtype=float),
            "y": rng.integers(0, 2, n),
        }
    )
    delay = timedelta(days=delay_days)
    start = utc(2024, 1, 8)
    replay = Replay(
        frame=frame,
        # a 0.01 holdout of <= 97 rows is exactly the newest row of the window
        pipeline=pipeline_spec(train, ["t"], holdout=0.01),
        batch=DAY,
        start=start,
        select_until=start + 10 * DAY,
        root=tmp_path,
        label_delay=delay,
    )
    run = run_policy(
        replay,
        {
            "name": "daily",
            "triggers": [{"schedule": "0 0 * * *"}],
            "window": {"kind": "sliding", "duration": "4d"},
        },
    )
    assert run.failed == []
    bounds = replay.boundaries()
    assert run.retrained_at == bounds[1:-1]  # a retrain at every batch start but the first
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert [c["kind"] for c in calls] == ["train", "holdout"] * (1 + len(run.retrained_at))
    origin = datetime(2024, 1, 1, tzinfo=UTC)
    delay_h = delay / HOUR
    for i, now in enumerate([start, *run.retrained_at]):
        now_h = (now - origin) / HOUR
        trained, held = calls[2 * i], calls[2 * i + 1]
        # every row the run used had its label by the run's time (and was before it)
        for seen in (trained, held):
            assert seen["max"] + delay_h <= now_h
            assert seen["max"] < now_h
        # the newest row is exactly at the bound: now - delay (inclusive), or the row just
        # before now when there is no delay (the window's end is exclusive)
        bound = now_h - delay_h if delay_days else now_h - 1
        assert held == {"kind": "holdout", "max": bound, "min": bound, "n": 1}
        assert trained["max"] == bound - 1
        # the window's start (now - 4 days) is inclusive
        assert trained["min"] == now_h - 96
        assert trained["n"] == bound - (now_h - 96)


# --- metric triggers see feedback only once it arrives ----------------------------------------

SIGN = """
import numpy as np


class Sign:
    def __init__(self, sign):
        self.sign = sign

    def predict(self, X):
        up = X["x"].to_numpy() > 0
        return (up if self.sign > 0 else ~up).astype(int)


def train(data, params):
    agree = np.mean((data["x"].to_numpy() > 0) == (data["y"].to_numpy() == 1))
    return Sign(1 if agree >= 0.5 else -1)
"""

FLIP = utc(2024, 1, 16)


def _flipping_frame() -> pd.DataFrame:
    """Four rows a day (03:00, 09:00, 15:00, 21:00) for 30 days; y = x > 0 until FLIP, then
    the opposite: a model trained before the flip is exactly right, then exactly wrong."""
    ts = pd.date_range("2024-01-01 03:00", periods=4 * 30, freq="6h")
    x = np.random.default_rng(1).normal(size=len(ts))
    before = ts < pd.Timestamp(FLIP.replace(tzinfo=None))
    y = np.where(before, x > 0, x <= 0).astype(int)
    return pd.DataFrame({"ts": ts, "x": x, "y": y})


def _flipping_replay(tmp_path: Path, module: str, delay: timedelta = timedelta(0)) -> Replay:
    """The flipping frame replayed day by day from Jan 6 with the Sign model."""
    train = write_module(tmp_path, module, SIGN)
    start = utc(2024, 1, 6)
    return Replay(
        frame=_flipping_frame(),
        pipeline=pipeline_spec(train, ["x"], holdout=0.2),
        batch=DAY,
        start=start,
        select_until=start + 10 * DAY,
        root=tmp_path,
        label_delay=delay,
    )


@pytest.mark.parametrize("delay_days", [0, 3])
def test_metric_trigger_fires_only_once_the_delayed_feedback_arrived(
    tmp_path: Path, delay_days: int
):
    replay = _flipping_replay(tmp_path, "sign_model", timedelta(days=delay_days))
    policy = {
        "name": "accuracy below 0.99",
        "triggers": [{"metric": "accuracy", "below": 0.99, "over": "5d", "min_samples": 1}],
        "window": {"kind": "sliding", "duration": "6d"},
    }
    run = run_policy(replay, policy)
    assert run.failed == []
    assert run.values["accuracy"][:10].tolist() == [1.0] * 10  # the first model is exact
    assert run.retrained_at, "the trigger never fired"
    # the first wrong prediction is at FLIP 03:00; its label is in the feedback log at
    # 03:00 + delay, and the controller sees it at the next batch start
    assert run.retrained_at[0] == FLIP + DAY + timedelta(days=delay_days)


# --- prequential scoring, computed by hand ----------------------------------------------------

MAJORITY = """
import numpy as np


class Majority:
    def __init__(self, label, p):
        self.label = label
        self.p = p

    def predict(self, X):
        return np.full(len(X), self.label)

    def predict_proba(self, X):
        return np.tile([1.0 - self.p, self.p], (len(X), 1))


def train(data, params):
    p = float(data[params["target"]].mean())
    return Majority(int(p > 0.5), p)
"""

# 8 days of 4 rows (00:00, 06:00, 12:00, 18:00); days 0-1 are the warm start, days 2-7 the
# 6 replayed batches.
LABELS = [
    [0, 0, 1, 0],  # day 0
    [1, 1, 0, 1],  # day 1
    [1, 1, 0, 1],  # day 2: batch 0
    [1, 0, 1, 1],  # day 3
    [0, 0, 1, 0],  # day 4
    [0, 1, 0, 0],  # day 5
    [1, 0, 1, 1],  # day 6
    [1, 1, 0, 1],  # day 7: batch 5
]
# holdout 0.1 takes the single newest row of each window (closest to 0.1 * n, at least one):
# - never retrain: one model at day 2 on days 0-1 less day 1 18:00 = 0,0,1,0,1,1,0 -> 0
#   batches 2..7 have 1, 1, 3, 3, 1, 1 zeros -> 0.25, 0.25, 0.75, 0.75, 0.25, 0.25
# - daily on the last day: the model for day d trains on day d-1's 00:00, 06:00, 12:00 rows
#   day 1 -> 1 (serves day 2: 3/4), day 2 -> 1 (day 3: 3/4), day 3 -> 1 (day 4: 1/4),
#   day 4 -> 0 (day 5: 3/4), day 5 -> 0 (day 6: 1/4), day 6 -> 1 (day 7: 3/4)
NEVER_SERIES = [0.25, 0.25, 0.75, 0.75, 0.25, 0.25]
DAILY_SERIES = [0.75, 0.75, 0.25, 0.75, 0.25, 0.75]
NEVER_POOLED = 10 / 24
DAILY_POOLED = 14 / 24


def test_prequential_scores_match_a_hand_computation(tmp_path: Path):
    train = write_module(tmp_path, "majority_model", MAJORITY)
    ts = [
        pd.Timestamp("2024-01-01") + pd.Timedelta(days=d, hours=h)
        for d in range(8)
        for h in (0, 6, 12, 18)
    ]
    frame = pd.DataFrame({"ts": ts, "x": np.arange(32.0), "y": np.array(LABELS).ravel()})
    start = utc(2024, 1, 3)
    replay = Replay(
        frame=frame,
        pipeline=pipeline_spec(train, ["x"], holdout=0.1),
        batch=DAY,
        start=start,
        select_until=start + 3 * DAY,
        root=tmp_path,
    )
    assert replay.n_batches == 6
    policies: list[dict[str, Any]] = [
        {"name": "never"},
        {
            "name": "daily",
            "triggers": [{"schedule": "0 0 * * *"}],
            "window": {"kind": "sliding", "duration": "1d"},
        },
    ]
    # the first model of each policy is trained with the policy's window
    never, daily = (run_policy(replay, p) for p in policies)

    assert never.n.tolist() == daily.n.tolist() == [4] * 6
    assert never.values["accuracy"].tolist() == NEVER_SERIES
    assert daily.values["accuracy"].tolist() == DAILY_SERIES
    assert never.retrained_at == [] and never.versions == 1
    assert daily.retrained_at == [start + k * DAY for k in range(1, 6)]
    assert daily.versions == 6 and daily.promoted_at == daily.retrained_at
    assert never.y_pred.tolist() == [0] * 24
    assert daily.y_pred.tolist() == [1] * 12 + [0] * 8 + [1] * 4
    assert never.y_true.tolist() == np.array(LABELS[2:]).ravel().tolist()

    results = summarize(
        replay, [never, daily], policies, cost=CostModel(), tolerance=0.5, deg_scores=None
    )
    by_name = {p.name: p for p in results.policies}
    assert by_name["never"].metric["accuracy"] == round(NEVER_POOLED, 6)
    assert by_name["daily"].metric["accuracy"] == round(DAILY_POOLED, 6)
    assert by_name["never"].retrains == 0 and by_name["daily"].retrains == 5
    assert list(by_name["daily"].series.values["accuracy"]) == DAILY_SERIES
    # selection part: the first 3 batches; held out: the last 3
    assert results.dataset.selection_batches == 3
    assert by_name["daily"].selection["accuracy"] == round(7 / 12, 6)
    assert by_name["never"].selection["accuracy"] == round(5 / 12, 6)
    assert by_name["daily"].held_out["accuracy"] == round(7 / 12, 6)
    assert by_name["never"].held_out["accuracy"] == round(5 / 12, 6)
    assert results.recommended.name == "daily"


# --- a concept-drift policy retrains on the rows since the detected change --------------------


def test_a_trigger_whose_look_back_holds_no_label_never_watches(tmp_path: Path):
    """With labels 3 days late, a metric over the last day is never measured and a detector
    fed the last day's errors never sees one: neither watches, at any batch. Over the last 5
    days each judges its signal once labelled rows are in reach: the metric reads the
    prediction log, whose first rows (batch 0) are labelled from batch 4 on. A data-drift
    check needs no label: the replayed source shows each row's features from its time, so
    the last day's drift is judged at every batch, as in production."""
    replay = _flipping_replay(tmp_path, "sign_watch", timedelta(days=3))

    def metric(over: str) -> dict[str, Any]:
        trigger = {"metric": "accuracy", "below": 0.5, "over": over, "min_samples": 1}
        return {"name": f"metric {over}", "triggers": [trigger]}

    def detector(window: str) -> dict[str, Any]:
        return {
            "name": f"detector {window}",
            "triggers": [{"concept_drift": {}}],
            "monitor": {
                "every": "1d",
                "window": window,
                "concept_drift": {"method": "page_hinkley", "params": {"threshold": 1000.0}},
            },
        }

    def drift(window: str) -> dict[str, Any]:
        monitor = {"every": "1d", "window": window, "drift": {"min_samples": 3}}
        return {"name": f"drift {window}", "triggers": [{"drift": {}}], "monitor": monitor}

    pairs = [(metric("1d"), metric("5d")), (detector("1d"), detector("5d"))]
    for blind, seeing in pairs:
        blind_run, seeing_run = run_policy(replay, blind), run_policy(replay, seeing)
        assert blind_run.watching is not None and seeing_run.watching is not None
        assert not blind_run.watching.any(), blind["name"]
        assert seeing_run.watching[4:].all(), seeing["name"]
        assert blind_run.retrained_at == []
    unlabelled = run_policy(replay, drift("1d"))
    assert unlabelled.watching is not None and unlabelled.watching[1:].all()


@pytest.mark.parametrize(
    ("method", "params", "detected"),
    [
        ("page_hinkley", {"min_instances": 8, "threshold": 4.0}, FLIP + 2 * DAY),
        # ADWIN tests its window at every row (clock 1), after 8 rows
        ("adwin", {"clock": 1, "grace_period": 8}, FLIP + 6 * DAY),
    ],
)
def test_since_change_window_drops_the_old_concept(
    tmp_path: Path, method: str, params: dict[str, Any], detected: datetime
):
    """After the flip, a model trained on the last 20 days learns the old concept (most of
    its rows) and stays wrong; one trained since the detected change is right again."""
    replay = _flipping_replay(tmp_path, f"sign_since_{method}")
    detector = {
        "triggers": [{"concept_drift": {}}],
        "monitor": {
            "every": "1d",
            "window": "1d",
            "concept_drift": {"method": method, "params": params},
        },
    }
    window = {"kind": "since_change", "min": "2d", "max": "20d"}
    since = run_policy(replay, {"name": "since", **detector, "window": window})
    sliding = run_policy(
        replay, {"name": "sliding", **detector, "window": {"kind": "sliding", "duration": "20d"}}
    )
    assert since.failed == [] and sliding.failed == []
    # the same detector fires at the same time (on the flip's errors); only the window differs
    assert since.retrained_at == sliding.retrained_at == [detected]
    after = [k for k, end in enumerate(replay.boundaries()[1:]) if end > detected + 2 * DAY]
    assert after
    assert [since.values["accuracy"][k] for k in after] == [1.0] * len(after)
    assert [sliding.values["accuracy"][k] for k in after] == [0.0] * len(after)


def test_a_policy_sets_its_own_triggers_and_guards_and_inherits_the_rest():
    base = {
        "name": "toy",
        "triggers": [{"schedule": "0 3 * * *"}],
        "guards": [{"cooldown": "2d"}],
        "window": {"kind": "sliding", "duration": "5d"},
        "monitor": {"every": "1d"},
    }
    out = policy_pipeline(base, {"name": "p", "window": {"kind": "full"}})
    assert out["triggers"] == [] and out["guards"] == []  # never inherited
    assert out["window"] == {"kind": "full"} and out["monitor"] == {"every": "1d"}
    assert base["guards"] == [{"cooldown": "2d"}]  # the project is not changed


def test_one_thread_limits_the_libraries_a_fresh_process_loads_later():
    """threadpoolctl limits only the libraries loaded when its block starts: with numpy and
    scikit-learn imported lazily, a replay's fits ran BLAS on every core, and the training
    CPU seconds of a policy doubled. In a fresh interpreter, every BLAS/OpenMP library seen
    inside the block must be on one thread."""
    import subprocess
    import sys

    code = (
        "from retrainer.engine.backtest.replay import one_thread\n"
        "from threadpoolctl import threadpool_info\n"
        "with one_thread():\n"
        "    from sklearn.linear_model import LogisticRegression\n"
        "    info = threadpool_info()\n"
        "print(sorted({i['internal_api'] for i in info}), [i['num_threads'] for i in info])\n"
        "assert info and all(i['num_threads'] == 1 for i in info), info\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
