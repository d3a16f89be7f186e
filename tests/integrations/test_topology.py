"""The production topology on one machine (issue 19, item 2), every piece its own process.

PostgreSQL holds the metadata, S3 (moto on loopback) the data, the artifacts and the prediction
log; a Dask cluster (``dask scheduler`` and two ``dask worker --nthreads 1``) executes the runs;
two ``retrainer daemon`` share the project with ``executor: {kind: dask}``; two ``retrainer
serve`` replicas answer predictions. Checked: no run is created or executed twice (two daemons
race on the same schedule slot and on manual requests), every run executed on a Dask worker
(the ``executed_on`` its closing event records), the predictions and feedback sent across both
replicas are all in the log read back through retrainer, and both replicas serve the champion
after each promotion.

Skips without ``RETRAINER_TEST_PG_URL`` (``source .ci/postgres.sh; pg_start``), fails under
``CI`` instead; skips without distributed, s3fs or moto.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from retrainer.testing import postgres_database
from tests.conftest import make_frame

pytestmark = pytest.mark.slow
distributed = pytest.importorskip("distributed")

N_PREDICTIONS = 60  # over both replicas, each with its feedback
USER_CODE = """\
from sklearn.linear_model import LogisticRegression


def train(data, params):
    return LogisticRegression(max_iter=200).fit(data[params["features"]], data[params["target"]])
"""


def _pg_url() -> str:
    url = os.environ.get("RETRAINER_TEST_PG_URL")
    if url:
        return url
    why = "set RETRAINER_TEST_PG_URL (source .ci/postgres.sh; pg_start)"
    if os.environ.get("CI"):
        pytest.fail(f"{why}: the topology test cannot run, and CI does not skip it")
    pytest.skip(why)


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh PostgreSQL database for the test, dropped after."""
    with postgres_database(_pg_url(), "topology") as url:
        yield url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(what: str, check: Callable[[], Any], timeout: float, procs: list[Any]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = [p.args for p in procs if p.poll() is not None]
        assert not dead, f"a process exited while waiting for {what}: {dead}"
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def _project(root: Path, bucket: str, address: str) -> Path:
    """Two pipelines on S3 data: ``a`` (an estimator spec, manual runs) and ``b`` (the user's
    train function, manual runs and a schedule that fires at once for the slot just missed)."""
    import s3fs

    root.mkdir()
    (root / "usercode.py").write_text(USER_CODE)
    make_frame(n=24 * 20).to_parquet(root / "data.parquet")
    s3fs.S3FileSystem().put(str(root / "data.parquet"), f"{bucket}/data/data.parquet")
    source = {"kind": "parquet", "url": f"s3://{bucket}/data/data.parquet", "time_column": "ts"}
    common = {
        "source": source,
        "target": "y",
        "features": ["x1", "x2"],
        "metrics": ["accuracy"],
        "blessing": {
            "holdout": 0.25,
            "rules": [{"metric": "accuracy", "min": 0.5}],
            "sanity": {"enabled": False},
        },
    }
    config = {
        "controller": {
            "tick": 0.5,
            "shutdown_grace": 20,
            "executor": {"kind": "dask", "address": address, "max_workers": 2},
        },
        "serve": {"flush_interval": 0.2, "poll_interval": 0.5},
        "pipelines": [
            {"name": "a", "model": {"estimator": "sklearn.linear_model:LogisticRegression"}}
            | common,
            {
                "name": "b",
                "train": "usercode:train",
                "triggers": [{"schedule": "every 1h", "catch_up": True}],
            }
            | common,
        ],
    }
    (root / "retrainer.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


class Topology:
    """The processes of the topology, each with its log; stopped (all of them) by :meth:`stop`."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder, self.env = folder, env
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str], cwd: Path | None = None) -> subprocess.Popen[bytes]:
        log = (self.folder / f"{name}.log").open("wb")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=cwd)
        log.close()
        self.procs.append(proc)
        return proc

    def stop(self, procs: list[subprocess.Popen[bytes]] | None = None, timeout: float = 30) -> None:
        procs = list(reversed(self.procs)) if procs is None else procs
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.folder.glob("*.log"))
        )


def test_postgresql_s3_dask_two_daemons_two_replicas(
    tmp_path: Path, database: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
):
    httpx = pytest.importorskip("httpx2")
    t_start = time.monotonic()
    src = str(Path(__file__).resolve().parents[2] / "src")
    bin_dir = Path(sys.executable).parent
    monkeypatch.setenv("RETRAINER_DB_URL", database)
    monkeypatch.setenv("RETRAINER_ARTIFACTS_URL", f"s3://{s3_bucket}/artifacts")
    monkeypatch.setenv("RETRAINER_LOGS_URL", f"s3://{s3_bucket}/logs")
    (tmp_path / "logs").mkdir()
    scheduler_file = tmp_path / "scheduler.json"
    proj_dir = tmp_path / "project"
    # every process sees the stores through the environment, and the project's code on its path
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(proj_dir), src])}
    top = Topology(tmp_path / "logs", env)
    retrainer = [sys.executable, "-m", "retrainer"]
    try:
        top.start(
            "scheduler",
            [str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
             "--no-dashboard", "--scheduler-file", str(scheduler_file)],
        )  # fmt: skip
        address = _wait(
            "the scheduler",
            lambda: scheduler_file.exists() and json.loads(scheduler_file.read_text())["address"],
            30,
            top.procs,
        )
        proj = _project(proj_dir, s3_bucket, address)
        for i in range(2):
            top.start(
                f"worker-{i}",
                [str(bin_dir / "dask"), "worker", address, "--nthreads", "1", "--no-dashboard",
                 "--host", "127.0.0.1", "--name", f"worker-{i}"],
                cwd=proj,
            )  # fmt: skip
        # the first command migrates the fresh database; then everything starts on it at once
        token = subprocess.run(
            [*retrainer, "token", "create", "-c", str(proj), "--name", "e2e",
             "--scope", "predict", "--scope", "feedback", "--scope", "read"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        # a manual request by the CLI (the others below through the API, in this process)
        subprocess.run(
            [*retrainer, "run", "-c", str(proj), "--queue", "-p", "a"], env=env, check=True
        )
        daemons = [
            top.start(f"daemon-{i}", [*retrainer, "daemon", "-c", str(proj)], cwd=proj)
            for i in range(2)
        ]
        ports = [_free_port(), _free_port()]
        replicas = [
            top.start(f"serve-{i}", [*retrainer, "serve", "-c", str(proj), "--port", str(port)])
            for i, port in enumerate(ports)
        ]
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=30)
            workers = set(client.scheduler_info()["workers"])
        assert len(workers) == 2

        from retrainer.adapters.clock import WallClock
        from retrainer.engine.control.controller import request_run
        from retrainer.engine.project import Project

        project = Project.open(proj)
        with project:
            store = project.store
            for p in ("b", "a"):
                request_run(project, p, now=WallClock().now(), by="test")

            def runs() -> list[Any]:
                return [r for p in ("a", "b") for r in store.list_runs(p, limit=100)]

            def settled(expected: int) -> bool:
                rs = runs()
                return len(rs) >= expected and all(r.status == "succeeded" for r in rs)

            # 2 manual runs of a, 1 of b, and b's scheduled run (one, whichever daemon fired it)
            _wait("the first runs", lambda: settled(4), 120, top.procs)
            clients = [
                httpx.Client(
                    base_url=f"http://127.0.0.1:{port}",
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=30,
                )
                for port in ports
            ]

            def served(pipeline: str) -> list[int | None]:
                out = []
                for c in clients:
                    try:
                        entry = c.get("/v1/models").json()["pipelines"].get(pipeline)
                    except httpx.TransportError:  # not listening yet
                        return []
                    out.append(entry and entry["version"])
                return out

            def champion(pipeline: str) -> int:
                return store.get_alias(pipeline, "champion")

            def both_serve_champion() -> bool:
                return all(served(p) == [champion(p)] * 2 for p in ("a", "b"))

            _wait("both replicas on the champions", both_serve_champion, 30, top.procs)

            # predictions over both replicas at once, each with its feedback
            answers: dict[int, list[tuple[str, int]]] = collections.defaultdict(list)
            rows = make_frame(n=N_PREDICTIONS, seed=7)

            def send(i: int) -> None:
                for k in range(i, N_PREDICTIONS, 2):
                    row = {"x1": float(rows.x1[k]), "x2": float(rows.x2[k])}
                    resp = clients[i].post("/v1/a/predict", json=row)
                    assert resp.status_code == 200, resp.text
                    pred = resp.json()["predictions"][0]
                    answers[i].append((pred["prediction_id"], int(rows.y[k])))
                items = [{"prediction_id": pid, "outcome": y} for pid, y in answers[i]]
                resp = clients[i].post("/v1/a/feedback", json={"feedback": items})
                assert resp.json() == {"accepted": len(items), "unknown": []}

            threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            assert sum(len(v) for v in answers.values()) == N_PREDICTIONS

            # a promotion while both replicas serve: both move to the new champion
            before = champion("a")
            request_run(project, "a", now=WallClock().now(), by="test")
            _wait("the next run", lambda: settled(5) and champion("a") != before, 90, top.procs)
            _wait("both replicas on the new champion", both_serve_champion, 30, top.procs)
            for c in clients:
                c.close()
            top.stop(replicas)  # SIGTERM flushes each replica's log
            assert [r.returncode for r in replicas] == [0, 0]
            top.stop(daemons)
            assert [d.returncode for d in daemons] == [0, 0]

            # no run created or executed twice, every one on a Dask worker
            all_runs = runs()
            assert len({r.key for r in all_runs}) == len(all_runs)
            assert sorted(r.pipeline for r in all_runs if r.cause == "manual") == ["a"] * 3 + ["b"]
            # b's schedule fired (once per slot: one run, or two if an hour began meanwhile)
            scheduled = [r for r in all_runs if r.cause != "manual"]
            assert {r.pipeline for r in scheduled} == {"b"} and 1 <= len(scheduled) <= 2
            events = [e for p in ("a", "b") for e in store.list_events(p)]
            for run in all_runs:
                assert run.status == "succeeded" and run.attempts == 1, run
                mine = [e for e in events if e.run_id == run.id]
                kinds = collections.Counter(e.kind for e in mine)
                assert kinds["run.started"] == 1 and kinds["run.succeeded"] == 1, kinds
                assert "run.retrying" not in kinds
                (closed,) = [e for e in mine if e.kind == "run.succeeded"]
                placed = closed.data["executed_on"]
                assert placed["executor"] == "dask" and placed["dask_worker"] in workers

            # no prediction lost: all of them, and their feedback, in the log on S3
            logs = project.log_store()
            sent = {pid for v in answers.values() for pid, _ in v}
            logged = logs.predictions("a", None, None)
            assert len(logged) == N_PREDICTIONS and set(logged["id"]) == sent
            feedback = logs.feedback(None, None, pipeline="a")
            assert len(feedback) == N_PREDICTIONS
            # both replicas wrote segments, and none overwrote another's (names are the
            # content's sha256): the segments' rows add up to what was sent
            import pyarrow.parquet as pq
            import s3fs

            fs = s3fs.S3FileSystem()
            fs.invalidate_cache()
            segments = [
                p for p in fs.find(f"{s3_bucket}/logs/predictions") if p.endswith(".parquet")
            ]
            assert len(segments) >= 2
            with_rows = [pq.ParquetFile(fs.open(p)).metadata.num_rows for p in segments]
            assert sum(with_rows) == N_PREDICTIONS
        print(f"the topology test took {time.monotonic() - t_start:.1f} s")
    except BaseException:
        print(top.logs())
        raise
    finally:
        top.stop()
