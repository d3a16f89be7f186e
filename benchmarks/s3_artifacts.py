"""Artifact benchmark on S3 (issue 19): write + verified load of a 50 MB model, S3 vs disk.

Times ``put`` then ``get`` (which checks the sha256) of one incompressible blob of ``--mb``
megabytes on a local folder and on S3 served by moto on loopback, each ``--repeat`` times with
a fresh blob (a put of bytes already stored takes another path), all in one run. Prints a
Markdown table of the median seconds and the ratio to the local folder. The target: within 2x
of the local folder.

Three rows:

- ``local folder``: retrainer's artifact store on a temporary folder;
- ``S3 (moto), raw boto3``: the floor any client can reach against that server, one
  ``put_object`` and one ``get_object`` of the same bytes plus the sha256 of each (no HEAD, no
  retrainer, no s3fs);
- ``S3 (moto), retrainer``: retrainer's artifact store on ``s3://`` (s3fs).

moto runs by default as its own process (``moto_server``), as a real deployment has its store
out of process; ``--in-process`` runs moto's threaded server inside this process instead, where
it shares the GIL with the client. moto keeps objects in memory and answers over HTTP on
loopback, so the figures measure the S3 path plus moto's own cost, not a real network.

Usage (from the repository root; needs ``pip install 'retrainer[s3]' 'moto[server]'``)::

    .venv/bin/python benchmarks/s3_artifacts.py
    .venv/bin/python benchmarks/s3_artifacts.py --mb 50 --repeat 7 --in-process
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from retrainer.adapters.artifacts import open_artifact_store

_BUCKET = "bench-artifacts"

# a put of fresh bytes returning a key, and a get of that key checked against the bytes
Roundtrip = tuple[Callable[[bytes], Any], Callable[[Any, bytes], None]]


def _time(roundtrip: Roundtrip, size: int, repeat: int) -> tuple[float, float]:
    """Median seconds of put and of verified get over ``repeat`` fresh blobs."""
    put, get = roundtrip
    puts, gets = [], []
    for _ in range(repeat):
        data = os.urandom(size)
        t0 = time.perf_counter()
        key = put(data)
        t1 = time.perf_counter()
        get(key, data)
        t2 = time.perf_counter()
        puts.append(t1 - t0)
        gets.append(t2 - t1)
    return statistics.median(puts), statistics.median(gets)


def _store(url: str) -> Roundtrip:
    store = open_artifact_store(url)

    def get(ref: Any, data: bytes) -> None:
        assert store.get(ref.sha256, size=ref.size) == data

    return store.put, get


def _raw_boto3() -> Roundtrip:
    """One put_object and one get_object, hashed like the store does: the client's floor."""
    import boto3

    s3 = boto3.client("s3")

    def put(data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        s3.put_object(Bucket=_BUCKET, Key=f"raw/{sha}", Body=data)
        return sha

    def get(sha: str, data: bytes) -> None:
        body = s3.get_object(Bucket=_BUCKET, Key=f"raw/{sha}")["Body"].read()
        assert hashlib.sha256(body).hexdigest() == sha and body == data

    return put, get


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _moto_process() -> Iterator[str]:
    """``moto_server`` as its own process on loopback; yields its endpoint URL."""
    port = _free_port()
    exe = Path(sys.executable).with_name("moto_server")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "moto.server"]
    proc = subprocess.Popen(
        [*cmd, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:  # up when it answers over HTTP
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start on {url}") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def _moto_threaded() -> Iterator[str]:
    """moto's threaded server inside this process (shares the GIL with the client)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--in-process", action="store_true", help="run moto inside this process (threaded)"
    )
    args = parser.parse_args()
    size = args.mb * 1024 * 1024

    server = _moto_threaded() if args.in_process else _moto_process()
    with server as endpoint, tempfile.TemporaryDirectory() as folder:
        os.environ.update(
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_ENDPOINT_URL=endpoint,
        )
        import boto3

        boto3.client("s3").create_bucket(Bucket=_BUCKET)
        rows = {
            "local folder": _time(_store(folder), size, args.repeat),
            "S3 (moto), raw boto3": _time(_raw_boto3(), size, args.repeat),
            "S3 (moto), retrainer": _time(_store(f"s3://{_BUCKET}/a"), size, args.repeat),
        }
    local = sum(rows["local folder"])
    where = "in process" if args.in_process else "own process"
    header = f"store ({args.mb} MB blob, moto {where})"
    print(f"| {header} | put s | verified get s | total s | vs local |")
    print("|---|---:|---:|---:|---:|")
    for name, (put, get) in rows.items():
        print(f"| {name} | {put:.3f} | {get:.3f} | {put + get:.3f} | {(put + get) / local:.2f}x |")


if __name__ == "__main__":
    main()
