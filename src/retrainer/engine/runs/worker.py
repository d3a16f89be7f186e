"""The run worker: ``python -m retrainer.engine.runs.worker --config C --run-id N --epoch E``.

The process executor starts one per claimed run. The worker executes the run only if it is
still ``running`` under the epoch it was claimed with (a newer epoch means the claim was
taken over), and stops itself when the run's lease expires, so a worker orphaned by a dead
daemon cannot outlive its lease. Exit codes: 0 the run succeeded, 1 it failed and the
failure is recorded, 3 the claim is no longer ours, 2 bad arguments or configuration.
"""

from __future__ import annotations

import argparse
import signal
import sys
from datetime import datetime

from retrainer.core.clock import Clock, SimulatedClock, as_utc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="retrainer-worker", description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--run-id", type=int, required=True)
    parser.add_argument("--epoch", type=int, required=True)
    parser.add_argument("--as-of", help="simulated time (ISO); default: the wall clock")
    args = parser.parse_args(argv)

    from retrainer.engine.project import Project
    from retrainer.engine.runs.run import execute_claimed_run
    from retrainer.errors import ConfigError

    clock: Clock
    if args.as_of:
        clock = SimulatedClock(as_utc(datetime.fromisoformat(args.as_of)))
    else:
        from retrainer.adapters.clock import WallClock

        clock = WallClock()
    try:
        project = Project.open(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with project:
        run = project.store.get_run(args.run_id)
        if run.status != "running" or run.epoch != args.epoch:
            print(
                f"run {run.id} is {run.status} at epoch {run.epoch}, not ours (epoch "
                f"{args.epoch}); nothing to do",
                file=sys.stderr,
            )
            return 3
        # the run is ours for as long as this process lives: the reaper checks this pid
        import dataclasses

        from retrainer.adapters.environment import executed_on, process_owner

        run = project.store.update_run(
            dataclasses.replace(run, owner=process_owner()), expected_epoch=args.epoch
        )
        timeout = project.pipeline(run.pipeline).config.run.timeout
        if hasattr(signal, "SIGALRM"):
            # a backstop for a worker orphaned by a dead daemon: the executor kills a live
            # daemon's workers at the timeout; an orphan stops itself soon after its lease
            signal.alarm(int(timeout) + 60)
        result = execute_claimed_run(
            project, run, clock=clock, actor="retrainer daemon", executed_on=executed_on()
        )
        return 0 if result.ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
