"""Serving benchmark (issue 16, first cut): one row per request against elec2's champion.

Builds the elec2 example project (one run: v1 is champion) and measures, one after the other
on a loopback port, a closed loop of ``--concurrency`` clients (threads with keep-alive
connections, httpx) sending one row per request for ``--seconds`` seconds:

- **floor**: a bare FastAPI + uvicorn app that parses the JSON row and calls the same model's
  ``predict_proba``: nothing else (no validation, auth, logging, metrics);
- **retrainer serve**: validation, auth (a ``serve.authenticator`` that accepts one secret),
  Prometheus metrics and prediction logging on (the log is flushed every second).

Prints req/s, p50 and p99 latency per server as a Markdown table, and checks that the log
holds exactly one row per answered request once the server has stopped (SIGTERM). Last, a
fresh ``retrainer serve`` under the same load is killed with ``kill -9`` and the answered
requests missing from the log are counted (at most ``flush_interval``'s worth).
The load generator runs on the same machine: on 2 cores it takes CPU from the server, so
compare the rows with each other rather than with figures from elsewhere.

Usage (from the repository root)::

    .venv/bin/python benchmarks/serve.py
    .venv/bin/python benchmarks/serve.py --seconds 20 --concurrency 8
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx2 as httpx  # the client starlette.testclient uses (the dev extra)
import numpy as np

ROW = {
    "period": 0.5,
    "nswprice": 0.05,
    "nswdemand": 0.4,
    "vicprice": 0.003,
    "vicdemand": 0.42,
    "transfer": 0.41,
}
SECRET = "bench-secret"
AUTH = f"""
class Token:
    def allows(self, scope):
        return True


def authenticate(secret):
    return Token() if secret == {SECRET!r} else None
"""
FLOOR = """
import sys
import numpy as np
import pandas as pd
import uvicorn
from fastapi import FastAPI, Request
from retrainer.engine.project import Project

project = Project.open(sys.argv[1])
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


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer in {timeout} s")


def load(url: str, seconds: float, concurrency: int, headers: dict[str, str]) -> dict[str, float]:
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        with httpx.Client(headers=headers) as c:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                try:
                    r = c.post(url, json=ROW)
                except httpx.TransportError:  # the server was killed (the kill -9 phase)
                    return
                latencies[i].append(time.perf_counter() - t0)
                if r.status_code != 200:
                    errors[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = np.concatenate([np.asarray(x) for x in latencies]) * 1000
    return {
        "requests": float(len(lat)),
        "errors": float(sum(errors)),
        "rps": len(lat) / wall,
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    py = sys.executable
    env = {**os.environ}
    with tempfile.TemporaryDirectory() as tmp:
        proj = Path(tmp, "elec2")
        subprocess.run([py, "-m", "retrainer", "init", str(proj)], check=True, capture_output=True)
        (proj / "benchauth.py").write_text(AUTH)
        with (proj / "retrainer.yaml").open("a") as f:
            f.write("serve:\n  authenticator: benchauth:authenticate\n")
        subprocess.run(
            [py, "-m", "retrainer", "run", "-c", str(proj), "--as-of", "1997-01-06"],
            check=True,
            capture_output=True,
        )
        rows = []
        floor_script = Path(tmp, "floor.py")
        floor_script.write_text(FLOOR)
        for name, cmd in (
            ("floor: bare FastAPI + uvicorn", [py, str(floor_script), str(proj)]),
            ("retrainer serve", [py, "-m", "retrainer", "serve", "-c", str(proj)]),
        ):
            port = free_port()
            argv = [*cmd, str(port)] if "floor" in name else [*cmd, "--port", str(port)]
            proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
            base = f"http://127.0.0.1:{port}"
            try:
                wait_ready(f"{base}/healthz" if "serve" in name else f"{base}/docs", proc)
                headers = {"Authorization": f"Bearer {SECRET}"}
                warm = load(f"{base}/v1/elec2/predict", 1.0, args.concurrency, headers)
                timed = load(f"{base}/v1/elec2/predict", args.seconds, args.concurrency, headers)
                timed["answered"] = (
                    warm["requests"] - warm["errors"] + timed["requests"] - timed["errors"]
                )
                rows.append((name, timed))
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
        from retrainer.engine.project import Project

        with Project.open(proj) as project:
            logged = len(project.log_store().predictions("elec2", None, None, columns=["id"]))
        answered = int(rows[-1][1]["answered"])
        killed = kill_phase(py, proj, args.concurrency)
        print(
            f"concurrency {args.concurrency}, {args.seconds:g} s per server, one row per request\n"
        )
        print("| server | requests | errors | req/s | p50 ms | p99 ms |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, r in rows:
            print(
                f"| {name} | {r['requests']:.0f} | {r['errors']:.0f} | {r['rps']:.0f} | "
                f"{r['p50']:.2f} | {r['p99']:.2f} |"
            )
        share = rows[1][1]["rps"] / rows[0][1]["rps"]
        print(f"\nretrainer serve: {share:.0%} of the floor's req/s")
        print(
            f"prediction log after SIGTERM: {logged} rows for {answered} answered requests "
            f"(warm-up included): {'exact' if logged == answered else 'MISMATCH'}"
        )

        print(
            f"kill -9 after {killed['seconds']:.1f} s of load ({killed['rps']:.0f} req/s, "
            f"flush_interval 1 s): {killed['answered']:.0f} answered, {killed['logged']:.0f} "
            f"logged, {killed['lost']:.0f} lost ({killed['lost_seconds']:.2f} s of traffic)"
        )


def kill_phase(py: str, proj: Path, concurrency: int, seconds: float = 4.0) -> dict[str, float]:
    """Load a fresh server, kill -9 it mid-load, and count the answered rows the log lacks."""
    from retrainer.engine.project import Project

    def logged() -> int:
        with Project.open(proj) as project:
            return len(project.log_store().predictions("elec2", None, None, columns=["id"]))

    before = logged()
    port = free_port()
    proc = subprocess.Popen(
        [py, "-m", "retrainer", "serve", "-c", str(proj), "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    wait_ready(f"{base}/healthz", proc)
    result: dict[str, float] = {}
    headers = {"Authorization": f"Bearer {SECRET}"}
    runner = threading.Thread(
        target=lambda: result.update(
            load(f"{base}/v1/elec2/predict", seconds * 2, concurrency, headers)
        )
    )
    runner.start()
    time.sleep(seconds)
    proc.kill()
    proc.wait()
    runner.join()
    answered = result["requests"] - result["errors"]
    lost = answered - (logged() - before)
    rps = answered / seconds
    return {
        "seconds": seconds,
        "rps": rps,
        "answered": answered,
        "logged": answered - lost,
        "lost": lost,
        "lost_seconds": lost / rps if rps else 0.0,
    }


if __name__ == "__main__":
    main()
