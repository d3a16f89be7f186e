"""Serving benchmark (issue 16): ``retrainer serve`` against elec2's champion, on loopback.

Builds the elec2 example project (two runs: v1 and v2, v2 champion; both blessed) and runs the
phases named by ``--phases`` (default: all), each a closed loop of ``--concurrency`` clients
(threads with keep-alive connections, httpx) bounded by ``--seconds`` and ``--max-requests``:

- ``compare``: one row per request against (a) **floor**, a bare FastAPI + uvicorn app that
  parses the JSON row and calls the same model's ``predict_proba``, nothing else; (b)
  **retrainer serve** with validation, auth, Prometheus metrics and prediction logging on;
  (c) the same with an **ab rollout** active (phase ``ab``, requests carry ``X-Request-Key``);
  (d) **mlflow models serve** of the same model (``--env-manager local``, its own venv, see
  ``benchmarks/setup_serve_venv.sh``). The log holds one row per answered request after SIGTERM.
- ``ab``: the ab rollout row of ``compare`` (``rollout: {strategy: ab, split: 0.5, metric:
  accuracy, min_effect: 0.01}``, begun by a third blessed run; requests keyed from ``--keys``
  keys, 2,000 by default) plus its split check: the challenger's share of
  the keys within the binomial 99.9% bounds of the split, and each key always on one variant.
- ``workers``: 1 vs 2 worker processes on reused keep-alive connections (uvicorn's
  ``--workers 2`` used to leave Nagle on: ~40 ms per reused request), for the floor and for
  ``retrainer serve``, under uvicorn (h11 / httptools+uvloop), granian and hypercorn.
- ``batch``: 1,000 rows per request: rows/s of the bare model's ``predict_proba`` on the
  same frames in this process, of the **Arrow floor** (a bare FastAPI + uvicorn route that
  reads an Arrow IPC body, calls ``predict_proba`` and answers Arrow: what any server can
  reach here), and of ``retrainer serve`` with Arrow IPC bodies and answers and with JSON.
- ``swap``: 20 rollbacks and promotions between v1 and v2 while the load runs: failed requests,
  responses whose ``model_version`` was never the alias's target during the request, and the
  p99 during the swaps against the steady p99 before them.
- ``log``: exactly ``--log-requests`` requests, feedback posted for every one, a graceful stop:
  the log must hold exactly that many predictions, each joined with its feedback.
- ``kill``: ``kill -9`` of a server under load; the answered requests the log lacks.

The load generator runs on the same 2-core machine and takes CPU from the server: compare the
rows of one run with each other rather than with figures from elsewhere.

Usage (from the repository root)::

    .venv/bin/python benchmarks/serve.py                      # every phase
    .venv/bin/python benchmarks/serve.py --phases compare,ab --seconds 10
    bash benchmarks/setup_serve_venv.sh  # once: mlflow, granian, hypercorn (.venv-serve-bench)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2 as httpx  # the client starlette.testclient uses (the dev extra)
import numpy as np
import yaml

ROW = {
    "period": 0.5,
    "nswprice": 0.05,
    "nswdemand": 0.4,
    "vicprice": 0.003,
    "vicdemand": 0.42,
    "transfer": 0.41,
}
FEATURES = list(ROW)
SECRET = "bench-secret"
AUTH_HEADERS = {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"}
AUTH = f"""
class Token:
    def allows(self, scope):
        return True


def authenticate(secret):
    return Token() if secret == {SECRET!r} else None
"""
# The floor: an importable app so that every server (uvicorn, granian, hypercorn) can run it.
FLOOR = """
import os
import numpy as np
import pandas as pd
from fastapi import FastAPI, Request
from retrainer.engine.project import Project

project = Project.open(os.environ["BENCH_PROJECT"])
mv = project.store.get_version("elec2", project.store.get_alias("elec2", "champion"))
model = project.load_version(mv)
features = project.pipeline("elec2").feature_columns
app = FastAPI()


@app.post("/v1/elec2/predict")
async def predict(request: Request):
    row = await request.json()
    frame = pd.DataFrame([row], columns=features)
    proba = model.predict_proba(frame)
    return {"prediction": int(np.argmax(proba[0])), "score": float(proba[0, 1])}


@app.post("/v1/elec2/predict.arrow")
async def predict_arrow(request: Request):
    # the columnar floor: an Arrow IPC stream in, predict_proba, an Arrow IPC stream out
    import pyarrow as pa
    from fastapi.responses import Response

    frame = pa.ipc.open_stream(await request.body()).read_all().to_pandas()[features]
    proba = model.predict_proba(frame)
    out = pa.table({"prediction": proba.argmax(axis=1), "score": proba[:, 1]})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, out.schema) as stream:
        stream.write_table(out)
    return Response(sink.getvalue().to_pybytes(), media_type="application/vnd.apache.arrow.stream")
"""
SAVE_MLFLOW = """
import sys, warnings
import pandas as pd
import mlflow.sklearn
from retrainer.engine.project import Project

warnings.simplefilter("ignore")
project = Project.open(sys.argv[1])
mv = project.store.get_version("elec2", project.store.get_alias("elec2", "champion"))
model = project.load_version(mv)
example = pd.DataFrame([{row!r}])
mlflow.sklearn.save_model(model, sys.argv[2], input_example=example,
                          pyfunc_predict_fn="predict_proba")
print(mlflow.__version__)
"""
PHASES = ("compare", "ab", "workers", "batch", "swap", "log", "kill")


# --- servers and load --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A server to start on a free loopback port: ``argv`` with ``{port}`` filled in."""

    name: str
    argv: list[str]
    ready: str = "/healthz"
    path: str = "/v1/elec2/predict"
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180) -> Server:
        self.port = free_port()
        argv = [a.replace("{port}", str(self.port)) for a in self.argv]
        self.proc = subprocess.Popen(
            argv,
            env={**os.environ, **self.env},
            cwd=self.cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # SIGTERM the group: multi-worker servers stop whole
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode()[-2000:] if self.proc.stderr else ""
                raise SystemExit(f"{self.name} exited with {self.proc.returncode}:\n{err}")
            try:
                if httpx.get(self.base + self.ready, timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"{self.name}: {self.base + self.ready} did not answer in {timeout} s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        # the group: a supervisor's workers too (their own leader is this process)
        os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Result:
    requests: int
    errors: int
    seconds: float
    lat_ms: np.ndarray
    records: list[tuple[float, float, int, dict[str, Any] | None, str | None]]
    # (start, end, status, first answer or None, request key), when recorded
    warm: int = 0  # requests answered in the warm-up before
    percentiles: dict[float, float] = field(default_factory=dict)  # wrk's, when no lat_ms

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if len(self.lat_ms):
            return float(np.percentile(self.lat_ms, q))
        return self.percentiles.get(q, float("nan"))


def load(
    url: str,
    seconds: float,
    concurrency: int,
    *,
    body: bytes,
    headers: dict[str, str] | None = None,
    max_requests: int = 10**9,
    keys: Sequence[str] | None = None,
    record: bool = False,
    seed: int = 0,
) -> Result:
    """A closed loop: ``concurrency`` clients each send the next request as soon as the
    previous one is answered, until ``seconds`` pass or ``max_requests`` are sent."""
    headers = headers if headers is not None else AUTH_HEADERS
    lat: list[list[float]] = [[] for _ in range(concurrency)]
    recs: list[list[Any]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    budget = [max_requests]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        with httpx.Client(headers=headers, timeout=30) as c:
            while time.monotonic() < stop:
                with lock:
                    if budget[0] <= 0:
                        return
                    budget[0] -= 1
                key = rng.choice(keys) if keys else None
                extra = {"X-Request-Key": key} if key else None
                t0 = time.monotonic()
                try:
                    r = c.post(url, content=body, headers=extra)
                except httpx.TransportError:  # the server was killed (the kill -9 phase)
                    return
                t1 = time.monotonic()
                lat[i].append(t1 - t0)
                if r.status_code != 200:
                    errors[i] += 1
                if record:
                    answer = None
                    if r.status_code == 200:
                        answer = r.json()
                    recs[i].append((t0, t1, r.status_code, answer, key))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    arr = np.concatenate([np.asarray(x) for x in lat]) * 1000
    return Result(
        requests=len(arr),
        errors=sum(errors),
        seconds=wall,
        lat_ms=arr,
        records=sorted((r for rs in recs for r in rs), key=lambda r: r[0]),
    )


def measure(server: Server, args: argparse.Namespace, **kw: Any) -> Result:
    """Warm up for a second, then the timed load (``--client wrk``: wrk's, unless recorded)."""
    kw.setdefault("body", json.dumps(ROW).encode())
    url = server.base + server.path
    warm = load(url, 1.0, args.concurrency, **{**kw, "record": False})
    if args.client == "wrk" and not kw.get("record"):
        res = wrk(url, args.seconds, args.concurrency, kw["body"], len(kw.get("keys") or ()))
    else:
        res = load(url, args.seconds, args.concurrency, max_requests=args.max_requests, **kw)
    res.warm = warm.requests - warm.errors
    return res


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = io.open(os.getenv("BENCH_BODY"), "rb"):read("*a")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {secret}"
local keys = tonumber(os.getenv("BENCH_KEYS") or "0")
request = function()
  if keys > 0 then
    wrk.headers["X-Request-Key"] = "user-" .. math.random(0, keys - 1)
  end
  return wrk.format()
end
"""


def wrk(url: str, seconds: float, concurrency: int, body: bytes, keys: int = 0) -> Result:
    """The same closed loop driven by wrk (C, 2 threads): far less client CPU than Python."""
    with tempfile.TemporaryDirectory() as tmp:
        script, data = Path(tmp, "post.lua"), Path(tmp, "body.json")
        script.write_text(WRK_SCRIPT.replace("{secret}", SECRET))
        data.write_bytes(body)
        out = subprocess.run(
            ["wrk", "-t", "2", "-c", str(concurrency), "-d", f"{seconds:g}s", "--latency",
             "-s", str(script), url],
            env={**os.environ, "BENCH_BODY": str(data), "BENCH_KEYS": str(keys)},
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
    unit = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    pct: dict[float, float] = {}
    requests = errors = 0
    wall = seconds
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].endswith("%") and parts[0][:-1].replace(".", "").isdigit():
            num = parts[1].rstrip("usm")
            pct[float(parts[0][:-1])] = float(num) * unit[parts[1][len(num) :]]
        elif "requests in" in line:
            requests = int(parts[0])
            wall = float(parts[3].rstrip("s,"))
        elif line.strip().startswith(("Non-2xx", "Socket errors")):
            errors += sum(int(x) for x in line.replace(",", " ").split() if x.isdigit())
    return Result(requests, errors, wall, np.array([]), [], percentiles=pct)


def row(name: str, r: Result, extra: str = "") -> str:
    return (
        f"| {name} | {r.requests} | {r.errors} | {r.rps:.0f} | {r.pct(50):.2f} | "
        f"{r.pct(99):.2f} |{extra}"
    )


HEADER = "| server | requests | errors | req/s | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|---:|"


# --- the project -------------------------------------------------------------------------


class Bench:
    """The elec2 project (v1, v2 blessed; v2 champion) and copies of it per phase."""

    def __init__(self, tmp: Path, args: argparse.Namespace) -> None:
        self.tmp = tmp
        self.args = args
        self.py = sys.executable
        self.venv = Path(args.bench_venv) if args.bench_venv else None
        self.mlflow_version = "?"
        self.base = tmp / "elec2"
        self.run_cli("init", str(self.base))
        (self.base / "benchauth.py").write_text(AUTH)
        self.edit(self.base, serve={"authenticator": "benchauth:authenticate"})
        for day in ("1997-01-06", "1997-01-13"):
            self.run_cli("run", "-c", str(self.base), "--as-of", day)
        (tmp / "benchfloor.py").write_text(FLOOR)

    def run_cli(self, *argv: str) -> str:
        done = subprocess.run(
            [self.py, "-m", "retrainer", *argv], check=True, capture_output=True, text=True
        )
        return done.stdout

    @staticmethod
    def edit(proj: Path, serve: dict[str, Any] | None = None, rollout: Any = None) -> None:
        path = proj / "retrainer.yaml"
        cfg = yaml.safe_load(path.read_text())
        if serve:
            cfg.setdefault("serve", {}).update(serve)
        if rollout is not None:
            cfg["pipelines"][0]["rollout"] = rollout
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))

    def copy(self, name: str, **edits: Any) -> Path:
        proj = self.tmp / name
        shutil.copytree(self.base, proj)
        if edits:
            self.edit(proj, **edits)
        return proj

    def logged(self, proj: Path) -> Any:
        from retrainer.engine.project import Project

        with Project.open(proj) as project:
            return project.log_store().predictions("elec2", None, None, columns=["id"])

    # servers --------------------------------------------------------------------------

    def serve(self, proj: Path, name: str = "retrainer serve", workers: int = 1) -> Server:
        argv = [self.py, "-m", "retrainer", "serve", "-c", str(proj), "--port", "{port}"]
        return Server(name, argv + (["--workers", str(workers)] if workers > 1 else []))

    def floor(self, workers: int = 1, py: str | None = None, extra: Sequence[str] = ()) -> Server:
        argv = [py or self.py, "-m", "uvicorn", "benchfloor:app", "--port", "{port}"]
        argv += ["--workers", str(workers), "--log-level", "warning", *extra]
        env = {"BENCH_PROJECT": str(self.base), "PYTHONPATH": _pythonpath(self.tmp)}
        return Server(f"floor: bare FastAPI + uvicorn, {workers}w", argv, "/docs", env=env)

    def bench_bin(self, name: str) -> str:
        assert self.venv is not None
        return str(self.venv / "bin" / name)


def _pythonpath(*extra: Path) -> str:
    parts = [str(p) for p in extra] + [p for p in os.environ.get("PYTHONPATH", "").split(":") if p]
    return ":".join(parts)


# --- phases ------------------------------------------------------------------------------


def combine(results: list[Result]) -> Result:
    """Rounds of one server as one row: their requests and time summed, the median of their
    percentiles (wrk reports percentiles only)."""
    if all(len(r.lat_ms) for r in results):
        lat = np.concatenate([r.lat_ms for r in results])
        pct: dict[float, float] = {}
    else:
        lat = np.array([])
        pct = {q: float(np.median([r.pct(q) for r in results])) for q in (50.0, 99.0)}
    return Result(
        requests=sum(r.requests for r in results),
        errors=sum(r.errors for r in results),
        seconds=sum(r.seconds for r in results),
        lat_ms=lat,
        records=[],
        warm=sum(r.warm for r in results),
        percentiles=pct,
    )


def phase_compare(b: Bench, phases: set[str]) -> None:
    """Floor, retrainer serve (with the ab rollout on) and mlflow, all started at once and
    measured in turns, ``--rounds`` times, so that a burst of load from elsewhere on the
    machine falls on every server alike."""
    args = b.args
    proj = b.copy("compare")
    row_body = json.dumps(ROW).encode()
    runs: list[tuple[str, Server, dict[str, Any]]] = [
        ("floor: bare FastAPI + uvicorn", b.floor(), {}),
        ("retrainer serve", b.serve(proj), {}),
    ]
    ab = None
    if "ab" in phases:
        ab = setup_ab(b)
        runs.append(("retrainer serve, ab rollout on", b.serve(ab.proj), {"keys": ab.keys}))
    if b.venv is not None:
        ml = {"body": json.dumps({"dataframe_records": [ROW]}).encode()}
        runs.append(("mlflow models serve", mlflow_server(b), ml))
    else:
        print("(no --bench-venv: mlflow models serve skipped; bash benchmarks/setup_serve_venv.sh)")
    results: dict[str, list[Result]] = {name: [] for name, _, _ in runs}
    ab_note = ""
    with contextlib.ExitStack() as stack:
        for _, srv, _ in runs:
            stack.enter_context(srv)
        for k in range(args.rounds):
            for name, srv, kw in runs[k % len(runs) :] + runs[: k % len(runs)]:
                results[name].append(measure(srv, args, **{"body": row_body, **kw}))
        if ab is not None:
            ab_note = check_split(b, ab, runs[2][1])
        runs[1][1].stop()  # SIGTERM: the log is flushed
    rows = [(n, combine(rs)) for n, rs in results.items()]
    if b.venv is not None:
        rows[-1] = (f"mlflow models serve ({b.mlflow_version})", rows[-1][1])
    print(
        f"\n## compare: one row per request, concurrency {args.concurrency}, {args.rounds} "
        f"rounds of {args.seconds:g} s per server, in turns\n"
    )
    print(HEADER)
    floor = rows[0][1]
    for name, r in rows:
        print(row(name, r))
    print()
    for (name, r), rs in zip(rows[1:], list(results.values())[1:], strict=True):
        per_round = [x.rps / f.rps for x, f in zip(rs, results[rows[0][0]], strict=True)]
        print(
            f"- {name}: {r.rps / floor.rps:.0%} of the floor's req/s (rounds: "
            f"{', '.join(f'{x:.0%}' for x in per_round)}), p99 {r.pct(99):.1f} ms"
        )
    if b.venv is not None:
        mlr = rows[-1][1]
        for name, r in rows[1:-1]:
            print(f"- {name}: {r.rps / mlr.rps:.1f}x mlflow's req/s")
    served = rows[1][1]
    logged = len(b.logged(proj))
    answered = served.requests - served.errors + served.warm
    # wrk does not count the requests in flight when its time is up (the server answered
    # and logged them): up to one per connection per round more in the log; the log phase
    # is exact
    extra = logged - answered
    slack = args.concurrency * args.rounds if args.client == "wrk" else 0
    verdict = "exact" if extra == 0 else ("MISMATCH" if not 0 <= extra <= slack else
                                          f"+{extra} in flight at wrk's stops")  # fmt: skip
    print(
        f"- prediction log after SIGTERM: {logged} rows for {answered} answered requests "
        f"(warm-ups included): {verdict}"
    )
    if ab_note:
        print(ab_note)


@dataclass
class AbSetup:
    proj: Path
    how: str
    state: Any
    aliases: dict[str, int]
    split: float
    keys: list[str]


def setup_ab(b: Bench) -> AbSetup:
    """A copy of the project with an ab rollout of v3 (challenger) against v2 (champion)."""
    from retrainer.engine.project import Project
    from retrainer.engine.rollout import begin_rollout, current_rollout

    rollout = {"strategy": "ab", "split": 0.5, "metric": "accuracy", "min_effect": 0.01}
    proj = b.copy("ab", rollout=rollout)
    # a third blessed run starts the rollout as in production (the deploy step)
    b.run_cli("run", "-c", str(proj), "--as-of", "1997-01-20")
    with Project.open(proj) as project:
        state = current_rollout(project, "elec2")
        how = "started by a third blessed run's deploy step"
        if state is None or not state[0].active:  # not blessed: start it by hand on v1
            champion = project.store.get_alias("elec2", "champion")
            assert champion is not None
            begin_rollout(project, "elec2", candidate=1, champion=champion, now=datetime.now(UTC))
            how = "started with begin_rollout"
            state = current_rollout(project, "elec2")
        assert state is not None
        aliases = project.store.aliases("elec2")
    keys = [f"user-{i}" for i in range(b.args.keys)]
    return AbSetup(proj, how, state[0], aliases, 0.5, keys)


def check_split(b: Bench, ab: AbSetup, srv: Server) -> str:
    """The challenger's share of the keys against the split, and stickiness, over a recorded
    closed loop on the ab server."""
    from scipy.stats import binom

    checked = load(srv.base + srv.path, b.args.seconds, b.args.concurrency,
                   body=json.dumps(ROW).encode(), keys=ab.keys, record=True,
                   max_requests=b.args.max_requests)  # fmt: skip
    variants: dict[str, str] = {}
    sticky_broken: set[str] = set()
    counts: dict[str, int] = {}
    versions: dict[str, set[int]] = {}
    for _, _, _, answer, key in checked.records:
        if answer is None or key is None:
            continue
        p = answer["predictions"][0]
        v = p["variant"]
        counts[v] = counts.get(v, 0) + 1
        versions.setdefault(v, set()).add(p["model_version"])
        if variants.setdefault(key, v) != v:
            sticky_broken.add(key)
    # each key is one draw of the sticky assignment: the binomial is over keys, not requests
    n_keys = len(variants)
    on_challenger = sum(v == "challenger" for v in variants.values())
    lo, hi = binom.interval(0.999, n_keys, ab.split)
    n_req = sum(counts.values())
    share_req = counts.get("challenger", 0) / n_req if n_req else 0.0
    within = lo <= on_challenger <= hi
    note = [
        f"- ab rollout ({ab.how}): {ab.state.strategy} v{ab.state.candidate} vs "
        f"v{ab.state.champion}, aliases {ab.aliases}",
        f"- variants answered ({checked.requests} recorded requests, {checked.errors} errors): "
        f"{counts} (versions { ({k: sorted(v) for k, v in versions.items()}) })",
        f"- split: {on_challenger} of {n_keys} keys on the challenger "
        f"({on_challenger / max(n_keys, 1):.1%}; 99.9% binomial bounds of {ab.split:g}: "
        f"{lo:.0f}..{hi:.0f} keys): {'within' if within else 'OUTSIDE'}; "
        f"{share_req:.1%} of {n_req} requests",
        f"- stickiness: {len(sticky_broken)} of {n_keys} keys answered by more than one variant",
    ]
    if "challenger" not in counts:
        note.append(
            "- no request reached the challenger: this server does not route rollouts yet "
            "(the routing branch is not merged); the row above is retrainer serve with a "
            "rollout stored and X-Request-Key sent"
        )
    return "\n".join(note)


def mlflow_server(b: Bench) -> Server:
    model_dir = b.tmp / "mlflow-model"
    if not model_dir.exists():
        done = subprocess.run(
            [b.bench_bin("python"), "-c", SAVE_MLFLOW.replace("{row!r}", repr(ROW)),
             str(b.base), str(model_dir)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        b.mlflow_version = done.stdout.strip().splitlines()[-1]
    argv = [b.bench_bin("mlflow"), "models", "serve", "-m", str(model_dir), "--env-manager",
            "local", "-h", "127.0.0.1", "-p", "{port}", "-w", "1"]  # fmt: skip
    # it starts its server by name (``uvicorn``): the venv's bin first on PATH
    path = f"{Path(b.bench_bin('mlflow')).parent}:{os.environ.get('PATH', '')}"
    return Server("mlflow models serve", argv, "/ping", "/invocations", env={"PATH": path})


def phase_workers(b: Bench) -> None:
    """1 vs 2 workers on reused keep-alive connections, across servers."""
    args = b.args
    proj = b.copy("workers")
    cfg = str(proj / "retrainer.yaml")
    factory = "retrainer.server.app:app_from_environment"
    serve_env = {"RETRAINER_CONFIG": cfg, "PYTHONPATH": _pythonpath(proj)}
    floor_env = {"BENCH_PROJECT": str(b.base), "PYTHONPATH": _pythonpath(b.tmp)}
    servers: list[Server] = [
        b.floor(1),
        b.floor(2),
        b.serve(proj, "retrainer serve, 1w"),
        b.serve(proj, "retrainer serve --workers 2 (uvicorn, h11)", workers=2),
    ]
    old = b.venv / "uvicorn-0.54" if b.venv is not None else None
    if old is not None and old.exists():  # before uvicorn's TCP_NODELAY fix
        for srv in (
            b.floor(1),
            b.floor(2),
            b.serve(proj, "retrainer serve --workers 2 (uvicorn 0.54, h11)", workers=2),
        ):
            srv.name = srv.name.replace("+ uvicorn,", "+ uvicorn 0.54,")
            inherited = srv.env.get("PYTHONPATH") or os.environ.get("PYTHONPATH", "")
            srv.env["PYTHONPATH"] = ":".join(filter(None, [str(old), inherited]))
            servers.append(srv)
    if b.venv is not None:
        uv, gr, hc = b.bench_bin("uvicorn"), b.bench_bin("granian"), b.bench_bin("hypercorn")
        fast = ["--loop", "uvloop", "--http", "httptools"]
        for app, env, name, ready in (
            ("benchfloor:app", floor_env, "floor", "/docs"),
            (factory, serve_env, "retrainer app", "/healthz"),
        ):
            fac = ["--factory"] if app == factory else []
            for w in (1, 2):
                servers += [
                    Server(f"{name}: uvicorn {w}w, uvloop + httptools",
                           [uv, app, *fac, "--port", "{port}", "--workers", str(w),
                            "--log-level", "warning", *fast], ready, env=env),
                    Server(f"{name}: granian {w}w",
                           [gr, "--interface", "asgi", *fac, "--host", "127.0.0.1", "--port",
                            "{port}", "--workers", str(w), "--log-level", "warning", app],
                           ready, env=env),
                ]  # fmt: skip
            servers.append(
                Server(f"{name}: hypercorn 2w",
                       [hc, "--workers", "2", "--bind", "127.0.0.1:{port}",
                        app + ("()" if fac else "")], ready, env=env)
            )  # fmt: skip
    print(f"\n## workers: one row per request, concurrency {args.concurrency}, keep-alive\n")
    print(
        "| server | requests | errors | req/s | p50 ms | p99 ms | >= 40 ms | "
        "1 client: p50 ms | 1 client: >= 40 ms | connections per process |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for srv in servers:
        try:
            with srv:
                spread: list[str] = []
                timer = threading.Timer(
                    1.0 + args.seconds / 2,  # mid-way through the timed load
                    lambda out, port: out.append(connections_per_process(port)),
                    args=(spread, srv.port),
                )
                timer.start()
                r = measure(srv, args)
                timer.join()
                # one client on one reused connection: nothing queues, so a request at
                # >= 40 ms is Nagle's algorithm waiting for the delayed ACK
                one = load(srv.base + srv.path, min(args.seconds, 3.0), 1,
                           body=json.dumps(ROW).encode(), max_requests=500)  # fmt: skip
        except SystemExit as exc:
            print(f"| {srv.name} | failed to start: {str(exc).splitlines()[0]} |")
            continue
        slow = f"{np.mean(r.lat_ms >= 40.0):.1%}" if len(r.lat_ms) else "-"
        slow1 = float(np.mean(one.lat_ms >= 40.0))
        print(
            row(
                srv.name,
                r,
                f" {slow} | {one.pct(50):.2f} | {slow1:.1%} | {spread[0] if spread else '?'} |",
            )
        )


def connections_per_process(port: int) -> str:
    """How the established connections to ``port`` are spread over the server's processes
    (``ss``), e.g. ``4+4``: a worker that accepted none serves nothing."""
    import collections
    import re

    try:
        out = subprocess.run(
            ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "?"
    counts = collections.Counter(re.findall(r"pid=(\d+)", out))
    return "+".join(str(n) for n in sorted(counts.values(), reverse=True)) or "?"


ARROW = "application/vnd.apache.arrow.stream"


def arrow_bytes(frame: Any) -> bytes:
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table)
    return bytes(sink.getvalue())


def phase_batch(b: Bench) -> None:
    """1,000 rows per request: the bare model on the same frames in this process, the Arrow
    floor, retrainer serve with Arrow bodies and with JSON bodies, all in one run."""
    import pandas as pd

    from retrainer.engine.project import Project

    args = b.args
    data = pd.read_parquet(b.base / "data" / "elec2.parquet", columns=FEATURES)
    n = args.batch_rows
    frames = [data.iloc[i * n : (i + 1) * n].reset_index(drop=True) for i in range(8)]
    json_bodies = [f.to_json(orient="records").encode() for f in frames]
    arrow_bodies = [arrow_bytes(f) for f in frames]
    with Project.open(b.base) as project:
        champion = project.store.get_alias("elec2", "champion")
        assert champion is not None
        model = project.load_version(project.store.get_version("elec2", champion))
    model.predict_proba(frames[0])
    done, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < min(args.seconds, 5):
        model.predict_proba(frames[done % len(frames)])
        done += 1
    bare = done * n / (time.monotonic() - t0)
    proj = b.copy("batch")
    print(f"\n## batch: {n} rows per request\n")
    print("| what | concurrency | requests | errors | rows/s | x bare | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| bare predict_proba in-process | 1 | {done} | 0 | {bare:.0f} | 1.00 | | |")
    arrow_headers = AUTH_HEADERS | {"Content-Type": ARROW, "Accept": ARROW}
    with b.floor() as floor, b.serve(proj) as srv:
        cases = [
            ("Arrow floor: bare FastAPI, Arrow in and out", floor, ".arrow", arrow_bodies,
             arrow_headers),
            ("retrainer serve, Arrow in and out", srv, "", arrow_bodies, arrow_headers),
            ("retrainer serve, JSON in and out", srv, "", json_bodies, AUTH_HEADERS),
        ]  # fmt: skip
        for conc in (1, 2):
            for name, server, suffix, bodies, headers in cases:
                url = server.base + server.path + suffix
                load(url, 1.0, conc, body=bodies[0], headers=headers)
                rs = [
                    load(url, args.seconds / len(bodies), conc, body=body, headers=headers, seed=k)
                    for k, body in enumerate(bodies)
                ]
                reqs = sum(r.requests for r in rs)
                errs = sum(r.errors for r in rs)
                secs = sum(r.seconds for r in rs)
                lat = np.concatenate([r.lat_ms for r in rs])
                rate = (reqs - errs) * n / secs
                print(
                    f"| {name} | {conc} | {reqs} | {errs} | {rate:.0f} | {bare / rate:.2f} | "
                    f"{np.percentile(lat, 50):.1f} | {np.percentile(lat, 99):.1f} |"
                )
                sys.stdout.flush()


def phase_swap(b: Bench) -> None:
    """Rollbacks and promotions between v1 and v2 while the load runs."""
    from retrainer.engine.project import Project
    from retrainer.engine.runs.registry import promote, rollback

    args = b.args
    poll = args.poll_interval
    proj = b.copy("swap", serve={"poll_interval": poll})
    steady_s = max(args.seconds, 5.0)
    swap_s = max(args.seconds, 10.0)
    moves: list[tuple[float, float, int, int]] = []  # (before, after, old, new)
    with b.serve(proj) as srv, Project.open(proj) as project:
        from retrainer.adapters.clock import WallClock

        clock = WallClock()
        url = srv.base + srv.path
        load(url, 1.0, args.concurrency, body=json.dumps(ROW).encode())
        result: dict[str, Result] = {}
        t_start = time.monotonic()
        runner = threading.Thread(
            target=lambda: result.update(
                r=load(url, steady_s + swap_s + 1.0, args.concurrency,
                       body=json.dumps(ROW).encode(), record=True)
            )
        )  # fmt: skip
        runner.start()
        time.sleep(steady_s)
        t_swaps = time.monotonic()
        gap = swap_s / args.swaps
        for k in range(args.swaps):
            old = project.store.get_alias("elec2", "champion")
            t0 = time.monotonic()
            if k % 2 == 0:
                mv = rollback(project, clock=clock, actor="bench")
            else:
                mv = promote(project, 2, clock=clock, actor="bench")
            moves.append((t0, time.monotonic(), int(old or 0), int(mv.version or 0)))
            time.sleep(max(0.0, t_swaps + (k + 1) * gap - time.monotonic()))
        t_end = time.monotonic()
        runner.join()
    res = result["r"]
    failed = sum(1 for r in res.records if r[2] != 200)
    # the alias's possible targets over time: before a move's call the old version, after
    # its return the new one, during the call either
    stale = []
    for start, end, _, answer, _ in res.records:
        if answer is None:
            continue
        v = answer["predictions"][0]["model_version"]
        if not _was_target(v, start, end, moves, initial=2):
            stale.append((start, v))
    lag = [s - _last_move_to_other(s, v, moves) for s, v in stale]
    steady = np.array([(e - s) * 1000 for s, e, *_ in res.records if t_start + 1 <= s < t_swaps])
    during = np.array([(e - s) * 1000 for s, e, *_ in res.records if t_swaps <= s < t_end])
    print(f"\n## swap: {args.swaps} rollbacks/promotions v2<->v1 in {swap_s:g} s under load "
          f"(poll_interval {poll:g} s)\n")  # fmt: skip
    print("| window | requests | failed | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|")
    for name, lat in (("steady", steady), ("during swaps", during)):
        print(
            f"| {name} | {len(lat)} | - | {np.percentile(lat, 50):.2f} | "
            f"{np.percentile(lat, 99):.2f} |"
        )
    print(
        f"\n- {res.requests} requests, {failed} failed; p99 during swaps / steady p99: "
        f"{np.percentile(during, 99) / np.percentile(steady, 99):.2f}x"
    )
    print(
        f"- {len(stale)} responses named a version that was not the alias's target at any "
        f"moment of their request"
        + (
            f" (served after the move by at most {max(lag):.3f} s: the poll interval)"
            if stale
            else ""
        )
    )


def _was_target(
    version: int, start: float, end: float, moves: list[tuple[float, float, int, int]], initial: int
) -> bool:
    """Whether ``version`` may have been the alias's target at some moment of [start, end]:
    a version is the target from the call that moved the alias to it (``before``) until the
    return of the call that moved it away (``after``)."""
    segments, current, since = [], initial, float("-inf")
    for before, after, _, new in moves:
        segments.append((since, after, current))
        current, since = new, before
    segments.append((since, float("inf"), current))
    return any(v == version and s <= end and start <= e for s, e, v in segments)


def _last_move_to_other(
    start: float, version: int, moves: list[tuple[float, float, int, int]]
) -> float:
    """When the last move away from ``version`` before ``start`` returned."""
    away = [after for _, after, _, new in moves if after <= start and new != version]
    return max(away, default=start)


def phase_log(b: Bench) -> None:
    """Exactly N requests, feedback for all, graceful stop: N rows, N joined."""
    from retrainer.engine.project import Project

    args = b.args
    n = args.log_requests
    proj = b.copy("log")
    with b.serve(proj) as srv:
        res = load(srv.base + srv.path, 600.0, args.concurrency, body=json.dumps(ROW).encode(),
                   max_requests=n, record=True)  # fmt: skip
        ids = [a["predictions"][0]["prediction_id"] for *_, a, _ in res.records if a]
        accepted, unknown = 0, 0
        with httpx.Client(headers=AUTH_HEADERS, timeout=60) as c:
            for i in range(0, len(ids), 500):
                fb = [
                    {"prediction_id": p, "outcome": k % 2} for k, p in enumerate(ids[i : i + 500])
                ]
                r = c.post(srv.base + "/v1/elec2/feedback", json={"feedback": fb}).json()
                accepted += r["accepted"]
                unknown += len(r["unknown"])
    logged = b.logged(proj)
    with Project.open(proj) as project:
        joined = project.log_store().joined(
            "elec2", None, None, feedback_until=datetime(2100, 1, 1), columns=["id"]
        )
    distinct = logged["id"].nunique()
    same = set(logged["id"].astype(str)) == set(ids)
    print(f"\n## log: {n} requests, feedback for each, SIGTERM\n")
    print(
        f"- {res.requests} sent, {len(ids)} answered; feedback accepted {accepted}, unknown "
        f"{unknown}\n- log after SIGTERM: {len(logged)} rows, {distinct} distinct ids, "
        f"{'the same ids as answered' if same else 'NOT the ids answered'}; joined with "
        f"feedback: {len(joined)} rows -> "
        + ("exact" if len(logged) == distinct == len(ids) == len(joined) and same else "MISMATCH")
    )


def phase_kill(b: Bench, seconds: float = 4.0) -> None:
    """Load a fresh server, kill -9 it mid-load, and count the answered rows the log lacks."""
    proj = b.copy("kill")
    before = len(b.logged(proj))
    srv = b.serve(proj).start()
    result: dict[str, Result] = {}
    runner = threading.Thread(
        target=lambda: result.update(
            r=load(srv.base + srv.path, seconds * 2, b.args.concurrency,
                   body=json.dumps(ROW).encode())
        )
    )  # fmt: skip
    runner.start()
    time.sleep(seconds)
    srv.stop(signal.SIGKILL)
    runner.join()
    r = result["r"]
    answered = r.requests - r.errors
    lost = answered - (len(b.logged(proj)) - before)
    rps = answered / seconds
    print(
        f"\n## kill -9 after {seconds:.1f} s of load ({rps:.0f} req/s, flush_interval 1 s): "
        f"{answered} answered, {answered - lost} logged, {lost} lost "
        f"({lost / rps if rps else 0:.2f} s of traffic)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", default=",".join(PHASES), help=f"of {', '.join(PHASES)}")
    parser.add_argument("--seconds", type=float, default=10.0, help="timed load per server")
    parser.add_argument("--max-requests", type=int, default=100_000, help="per server")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--client",
        choices=("python", "wrk"),
        default="wrk" if shutil.which("wrk") else "python",
        help="the load generator of the timed loads (recorded ones are always Python)",
    )
    parser.add_argument(
        "--bench-venv",
        default=".venv-serve-bench" if Path(".venv-serve-bench/bin/python").exists() else None,
        help="the venv of benchmarks/setup_serve_venv.sh (mlflow, granian, hypercorn)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="of the compare phase")
    parser.add_argument("--keys", type=int, default=2000, help="request keys of the ab phase")
    parser.add_argument("--batch-rows", type=int, default=1000)
    parser.add_argument("--swaps", type=int, default=20)
    parser.add_argument("--poll-interval", type=float, default=0.2, help="of the swap phase")
    parser.add_argument("--log-requests", type=int, default=5000)
    args = parser.parse_args()
    phases = {p.strip() for p in args.phases.split(",") if p.strip()}
    if unknown := phases - set(PHASES):
        parser.error(f"unknown phases {sorted(unknown)}; choose from {', '.join(PHASES)}")
    with tempfile.TemporaryDirectory() as tmp:
        b = Bench(Path(tmp), args)
        print(f"{os.cpu_count()} cores, loopback; load generator: {args.client} on the same cores")
        if "compare" in phases:
            phase_compare(b, phases)
        elif "ab" in phases:
            ab = setup_ab(b)
            with b.serve(ab.proj) as srv:
                res = measure(srv, args, keys=ab.keys)
                note = check_split(b, ab, srv)
            print("\n## ab\n\n" + HEADER + "\n" + row("retrainer serve, ab rollout on", res))
            print(note)
        for name, run in (
            ("workers", phase_workers),
            ("batch", phase_batch),
            ("swap", phase_swap),
            ("log", phase_log),
            ("kill", phase_kill),
        ):
            if name in phases:
                run(b)
            sys.stdout.flush()


if __name__ == "__main__":
    main()
