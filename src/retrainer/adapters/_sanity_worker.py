"""Child side of :func:`retrainer.adapters.sandbox.predict_in_fresh_process`.

Run as ``python -m retrainer.adapters._sanity_worker``: read the artifact through fsspec,
check its sha256, load it, predict on the sample rows and save the predictions as ``.npy``.
On failure it prints one line starting with :data:`ERROR_PREFIX` to stderr and exits with 1.
Only what this needs is imported, so the check stays quick.
"""

from __future__ import annotations

import argparse
import sys

ERROR_PREFIX = "retrainer-sanity-error: "


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="retrainer.adapters._sanity_worker")
    parser.add_argument("--url", required=True)
    parser.add_argument("--sha256", required=True)
    parser.add_argument("--fmt", required=True)
    parser.add_argument("--trusted-type", action="append", default=[])
    parser.add_argument("--allow-pickle", action="store_true")
    parser.add_argument(
        "--recorded-types", default=None, help="the types recorded at save, space-separated"
    )
    parser.add_argument("--sample", required=True, help="Parquet file of sample rows")
    parser.add_argument("--out", required=True, help=".npy file for the predictions")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> None:
    """Load the artifact named by ``args``, predict on the sample and save the predictions."""
    import fsspec
    import numpy as np
    import pandas as pd

    from retrainer.adapters.artifacts import verify_sha256
    from retrainer.adapters.serialization import load_model

    with fsspec.open(args.url, "rb") as f:
        data = f.read()
    verify_sha256(data, expected_sha256=args.sha256, where=args.url)
    recorded = None if args.recorded_types is None else args.recorded_types.split()
    model = load_model(
        data,
        args.fmt,
        trusted_types=args.trusted_type,
        allow_pickle=args.allow_pickle,
        recorded_types=recorded,
    )
    sample = pd.read_parquet(args.sample)
    predictions = np.asarray(model.predict(sample))
    if predictions.dtype == object:
        # Labels such as strings come back as objects; the parent reads the file without
        # pickle, so they must become a plain array first.
        predictions = np.asarray(predictions.tolist())
    if predictions.dtype == object:
        raise TypeError(
            "predict returned values that are neither numbers nor strings "
            f"(e.g. {type(predictions.flat[0]).__name__}); expected an array of labels or scores."
        )
    np.save(args.out, predictions, allow_pickle=False)


def main(argv: list[str] | None = None) -> int:
    """Run the check; return the exit code (0 on success, 1 with an error line on stderr)."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    try:
        run(args)
    except Exception as exc:
        message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"{ERROR_PREFIX}{type(exc).__name__}: {message}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
