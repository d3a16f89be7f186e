"""Artifact benchmark on S3 (issue 19): write + verified load of a 50 MB model, S3 vs disk.

Times ``put`` then ``get`` (which checks the sha256) of one incompressible blob of ``--mb``
megabytes on a local folder and on S3 served by moto on loopback (started here, in this
process, as the tests do), each ``--repeat`` times with a fresh blob (a put of bytes already
stored takes another path). Prints a Markdown table of the median seconds and the ratio
S3 / local. The target: within 2x of the local folder.

moto keeps objects in this process's memory and answers over HTTP on loopback, so the figure
measures retrainer's S3 path (s3fs, one PUT, one GET, the hash) plus moto's own cost, not a
real network.

Usage (from the repository root; needs ``pip install 'retrainer[s3]' 'moto[server]'``)::

    .venv/bin/python benchmarks/s3_artifacts.py
    .venv/bin/python benchmarks/s3_artifacts.py --mb 50 --repeat 5
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from typing import Any

from retrainer.adapters.artifacts import open_artifact_store


def _time(store: Any, size: int, repeat: int) -> tuple[float, float]:
    """Median seconds of put and of verified get over ``repeat`` fresh blobs."""
    puts, gets = [], []
    for _ in range(repeat):
        data = os.urandom(size)
        t0 = time.perf_counter()
        ref = store.put(data)
        t1 = time.perf_counter()
        assert store.get(ref.sha256, size=ref.size) == data
        t2 = time.perf_counter()
        puts.append(t1 - t0)
        gets.append(t2 - t1)
    return statistics.median(puts), statistics.median(gets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    size = args.mb * 1024 * 1024

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
    )
    import s3fs

    try:
        s3fs.S3FileSystem().mkdir("bench-artifacts")
        with tempfile.TemporaryDirectory() as folder:
            rows = {
                "local folder": _time(open_artifact_store(folder), size, args.repeat),
                "S3 (moto)": _time(
                    open_artifact_store("s3://bench-artifacts/a"), size, args.repeat
                ),
            }
    finally:
        server.stop()
    local = sum(rows["local folder"])
    print(f"| store ({args.mb} MB blob) | put s | verified get s | total s | vs local |")
    print("|---|---:|---:|---:|---:|")
    for name, (put, get) in rows.items():
        print(f"| {name} | {put:.3f} | {get:.3f} | {put + get:.3f} | {(put + get) / local:.2f}x |")


if __name__ == "__main__":
    main()
