"""The campaign: random actions on a real project, the store's invariants after each.

Every command is the real CLI in a subprocess (``python -m chaos.entry``, which is
``python -m retrainer`` with the ``faulty://`` filesystem registered), in a session of its own
so a SIGKILL takes its children too. The checks read the store in this process, only when no
process the campaign started is alive (:func:`chaos.invariants.check_store`).

Usage: ``python -m chaos [--seed N] [--iterations N] [--minutes M] [--backend postgresql]``.
The same seed gives the same sequence of actions, faults and delays (what the processes do
in those delays depends on the machine); a violation prints the seed and the step.
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
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from chaos.faultyfs import DELAY_ENV, FAULT_ENV, FAULT_KINDS
from chaos.invariants import DUPLICATE_KINDS, LOST_KINDS, Claim, Ledger, Violation, check_store
from retrainer.engine.runs.run import FAULT_POINTS  # the steps a run can be made to die at

REPO = Path(__file__).resolve().parents[1]
PIPELINE = "toy"
FIRST_DAY = datetime(2024, 1, 12)
LAST_DAY = datetime(2024, 4, 9)
# Exit codes of a command that ended on its own: done, refused (one "error:" line), usage.
CLEAN_EXITS = {0, 1, 2}
FAULT_EXIT = 137  # RETRAINER_FAULT's os._exit


@dataclass
class Proc:
    """A CLI subprocess the campaign started, and how it ended."""

    name: str
    args: list[str]
    popen: subprocess.Popen[bytes]
    out: IO[bytes]
    err: IO[bytes]
    expect_fault: bool = False
    tag: str = ""
    """The fault it ran under, for the reports (``artifacts:eio``)."""
    killed: str = ""
    """How the campaign ended it: "" (it ended on its own), "SIGKILL" or "SIGTERM"."""
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""

    @property
    def owner(self) -> str:
        return f"{socket.gethostname()}:{self.popen.pid}"


@dataclass
class Stats:
    iterations: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    commands: Counter[str] = field(default_factory=Counter)
    exits: Counter[str] = field(default_factory=Counter)
    kills: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    checks: int = 0
    violations: list[dict[str, Any]] = field(default_factory=list)


class Campaign:
    """One seeded campaign on one project folder (SQLite, or PostgreSQL with ``pg_url``)."""

    def __init__(
        self,
        seed: int,
        workdir: Path,
        *,
        pg_url: str | None = None,
        pg_ctl: list[str] | None = None,
        pg_data: str | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.workdir = workdir
        self.proj = workdir / "project"
        self.pg_url = pg_url
        self.pg_ctl = pg_ctl
        self.pg_data = pg_data
        self.log = log
        self.stats = Stats()
        self.ledger = Ledger()
        self.seen: set[tuple[str, str]] = set()
        self.step = 0
        self.action = ""
        self.as_of = FIRST_DAY
        self.procs: list[Proc] = []
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(REPO), str(REPO / "src"), os.environ.get("PYTHONPATH", "")]
            ),
        }
        self.env.pop(FAULT_ENV, None)
        self.env.pop("RETRAINER_FAULT", None)
        if pg_url:
            self.env["RETRAINER_DB_URL"] = pg_url
        self.has_gc = False
        self.only: set[str] = set()
        self.verbose = False
        self.tag = ""
        """The fault the action injects, given to the processes it starts (for reports)."""

    # --- set-up ------------------------------------------------------------------------
    def setup(self) -> None:
        """The toy project of the tests over 100 days with a data drift and a concept drift,
        a nightly schedule (for the daemons), and a first run so there is a champion."""
        from retrainer.testing import drifting_frame, write_project

        frame = drifting_frame(
            24 * 100, seed=self.seed % 1000, shift_after="2024-02-15", flip_after="2024-03-20"
        )
        write_project(
            self.proj,
            frame,
            triggers=[{"schedule": "0 2 * * *", "name": "nightly"}],
            window={"kind": "sliding", "duration": "10d"},
            blessing={
                "holdout": 0.25,
                "rules": [
                    {"metric": "accuracy", "min": 0.55},
                    {"metric": "accuracy", "max_regression": 0.02},
                ],
                "sanity": {"enabled": False},
            },
        )
        shutil.copy(self.proj / "data.parquet", self.workdir / "data.parquet.orig")
        first = self.start("run", "--as-of", FIRST_DAY.isoformat(), "--json")
        self.finish(first, timeout=180)
        if first.returncode != 0:
            raise RuntimeError(f"the first run failed:\n{first.stderr}")
        self.has_gc = self.finish(self.start("gc", "--help", plain=True)).returncode == 0
        self.check()

    # --- processes -----------------------------------------------------------------------
    def start(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        plain: bool = False,
        expect_fault: bool = False,
        unprivileged: bool = False,
    ) -> Proc:
        """``retrainer <args> -c <project>`` in a new session (``plain``: no ``-c``)."""
        argv = list(args) if plain else [*args[:1], "-c", str(self.proj), *args[1:]]
        if args[:2] == ("models", "list"):
            argv = ["models", "list", "-c", str(self.proj), *args[2:]]
        # files, not pipes: a racing command never blocks on a full pipe; closed in finish()
        out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115
        # root ignores file modes: drop the capabilities that let it (util-linux's setpriv)
        prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"]
        popen = subprocess.Popen(
            [*(prefix if unprivileged else []), sys.executable, "-m", "chaos.entry", *argv],
            stdout=out,
            stderr=err,
            env={**self.env, **(env or {})},
            cwd=self.workdir,
            start_new_session=True,
        )
        proc = Proc(args[0], argv, popen, out, err, expect_fault=expect_fault, tag=self.tag)
        self.procs.append(proc)
        self.stats.commands[" ".join(args[:2]) if args[0] == "models" else args[0]] += 1
        return proc

    def kill(self, proc: Proc, sig: signal.Signals = signal.SIGKILL) -> None:
        if proc.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, sig)
            proc.killed = proc.killed or sig.name
            kind = "daemon" if proc.name == "daemon" else "command"
            self.stats.kills[f"{kind}_{sig.name}"] += 1

    def kill_after(self, proc: Proc, delay: float, sig: signal.Signals = signal.SIGKILL) -> None:
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and proc.popen.poll() is None:
            time.sleep(0.05)
        self.kill(proc, sig)

    def finish(self, proc: Proc, timeout: float = 240) -> Proc:
        try:
            proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(proc)
            proc.popen.wait()
            self.violation("hung", " ".join(proc.args[:1]), f"still running after {timeout:.0f} s")
        proc.returncode = proc.popen.returncode
        for stream, attr in ((proc.out, "stdout"), (proc.err, "stderr")):
            stream.seek(0)
            setattr(proc, attr, stream.read().decode(errors="replace"))
            stream.close()
        self.stats.exits[f"{proc.name}:{proc.returncode}"] += 1
        if self.verbose:
            last = (proc.stderr.strip().splitlines() or [""])[-1][:160]
            self.log(f"  {' '.join(proc.args[:1])} [{proc.tag}] -> {proc.returncode} {last}")
        if proc.killed == "SIGKILL" or (proc.expect_fault and proc.returncode == FAULT_EXIT):
            self.ledger.killed_owners.add(proc.owner)
            return proc
        self.ledger.surviving_owners.add(proc.owner)
        subject = proc.name + (f" under {proc.tag}" if proc.tag else "")
        if "Traceback (most recent call last)" in proc.stderr:
            lines = proc.stderr.strip().splitlines()
            self.violation("traceback", subject, f"{len(lines)} lines, ending {lines[-1][:200]!r}")
        elif proc.returncode not in CLEAN_EXITS and not (
            proc.killed == "SIGTERM" and proc.returncode in (0, -15, 143)
        ):
            self.violation("bad_exit", subject, f"exit {proc.returncode}: {proc.stderr[-300:]}")
        if proc.returncode == 0:
            self.claims_of(proc)
        return proc

    def wait_all(self, timeout: float = 240) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                self.finish(proc, timeout)
        self.procs = []

    def claims_of(self, proc: Proc) -> None:
        """Record what a command that exited 0 said it did."""
        command = " ".join(proc.args)
        claim: dict[str, Any] = {"pipeline": PIPELINE, "step": self.step, "command": command}
        if proc.name == "run" and "--json" in proc.args:
            try:
                data = json.loads(proc.stdout)
            except ValueError:
                self.violation("bad_output", command, f"not JSON: {proc.stdout[:200]!r}")
                return
            run = data.get("run", {})
            self.ledger.claims.append(
                Claim(what="run", key=run.get("key", ""), status=run.get("status", ""), **claim)
            )
            version = data.get("version")
            if version:
                sha = version["lineage"]["artifact"]["sha256"]
                self.ledger.claims.append(
                    Claim(what="version", version=version["version"], sha256=sha, **claim)
                )
                if data.get("promoted"):
                    self.ledger.claims.append(
                        Claim(what="alias", alias="champion", version=version["version"], **claim)
                    )
        elif proc.name == "promote":
            number = int(proc.args[proc.args.index("-c") + 2])
            self.ledger.claims.append(
                Claim(what="alias", alias="champion", version=number, **claim)
            )
        elif proc.name == "rollback" and "--to" in proc.args:
            number = int(proc.args[proc.args.index("--to") + 1])
            self.ledger.claims.append(
                Claim(what="alias", alias="champion", version=number, **claim)
            )

    # --- checks --------------------------------------------------------------------------
    def violation(self, kind: str, subject: str, detail: str) -> None:
        if (kind, subject) in self.seen:
            return
        self.seen.add((kind, subject))
        found = {
            "step": self.step,
            "action": self.action,
            **asdict(Violation(kind, subject, detail)),
        }
        self.stats.violations.append(found)
        self.log(f"  VIOLATION at step {self.step} ({self.action}): {kind} [{subject}]: {detail}")

    def check(self) -> None:
        from retrainer.engine.project import Project

        self.stats.checks += 1
        with Project.open(self.proj, env=self.env) as project:
            for v in check_store(project, self.ledger):
                self.violation(v.kind, v.subject, v.detail)

    def versions(self) -> list[Any]:
        from retrainer.engine.project import Project

        with Project.open(self.proj, env=self.env) as project:
            return project.store.list_versions(PIPELINE, profiles=False)

    def aliases(self) -> dict[str, int]:
        from retrainer.engine.project import Project

        with Project.open(self.proj, env=self.env) as project:
            return project.store.aliases(PIPELINE)

    # --- the actions ---------------------------------------------------------------------
    def next_as_of(self) -> str:
        self.as_of += timedelta(hours=self.rng.randint(6, 60))
        if self.as_of > LAST_DAY:
            self.as_of = FIRST_DAY + timedelta(hours=self.rng.randint(0, 72))
        return self.as_of.isoformat()

    def later(self, hours: tuple[int, int] = (1, 120)) -> str:
        return min(self.as_of + timedelta(hours=self.rng.randint(*hours)), LAST_DAY).isoformat()

    def act_run(self) -> None:
        self.start("run", "--as-of", self.next_as_of(), "--json")

    def act_kill_timer(self) -> None:
        proc = self.start("run", "--as-of", self.next_as_of(), "--json")
        self.kill_after(proc, self.rng.uniform(0.5, 5.0))

    def act_kill_fault_point(self) -> None:
        point = self.rng.choice(FAULT_POINTS)
        self.stats.kills[f"fault_point:{point}"] += 1
        self.start(
            "run",
            "--as-of",
            self.next_as_of(),
            "--json",
            env={"RETRAINER_FAULT": point},
            expect_fault=True,
        )

    def act_two_runs(self) -> None:
        self.tag = "two runs"
        self.start("run", "--as-of", self.next_as_of(), "--json")
        time.sleep(self.rng.uniform(0.0, 2.0))
        self.start("run", "--as-of", self.later(), "--json")

    def act_run_and_commands(self) -> None:
        run = self.start("run", "--as-of", self.next_as_of(), "--json")
        for _ in range(self.rng.randint(1, 3)):
            time.sleep(self.rng.uniform(0.2, 1.5))
            self._one_command()
        if self.rng.random() < 0.3:
            self.kill_after(run, self.rng.uniform(0.5, 3.0))

    def _one_command(self) -> None:
        choice = self.rng.choice(["status", "models", "promote", "rollback", "monitor", "gc"])
        blessed = [v.version for v in self.versions() if v.blessing.passed]
        if choice == "status":
            self.start("status", "--json")
        elif choice == "models":
            self.start("models", "list", "--json")
        elif choice == "promote" and blessed:
            self.start("promote", str(self.rng.choice(blessed)))
        elif choice == "rollback":
            self.start("rollback")
        elif choice == "gc" and self.has_gc:
            self.start("gc")
        else:
            self.start("monitor", "--as-of", self.as_of.isoformat(), "--no-report", "--json")

    def act_promote_rollback(self) -> None:
        for _ in range(self.rng.randint(1, 3)):
            blessed = [v.version for v in self.versions() if v.blessing.passed]
            if self.rng.random() < 0.5 and blessed:
                proc = self.start("promote", str(self.rng.choice(blessed)))
            elif blessed and self.rng.random() < 0.5:
                proc = self.start("rollback", "--to", str(self.rng.choice(blessed)))
            else:
                proc = self.start("rollback")
            self.finish(proc)

    def act_two_daemons(self) -> None:
        self.tag = "two daemons"
        ticks = str(self.rng.randint(12, 60))
        starts = [self.next_as_of(), self.later((0, 30))]
        flags = ["--executor", "inline", "--quiet", "--tick", "3600", "--max-ticks", ticks]
        daemons = [self.start("daemon", *flags, "--as-of", at) for at in starts]
        ending = self.rng.choice(["finish", "SIGTERM", "SIGKILL", "mixed"])
        if ending == "finish":
            return
        time.sleep(self.rng.uniform(1.0, 10.0))
        for i, daemon in enumerate(daemons):
            hard = ending == "SIGKILL" or (ending == "mixed" and i)
            sig = signal.SIGKILL if hard else signal.SIGTERM
            self.kill(daemon, sig)

    def act_storage_fault(self) -> None:
        kind = self.rng.choice(FAULT_KINDS)
        self.stats.faults[f"artifacts:{kind}"] += 1
        env = {
            "RETRAINER_ARTIFACTS_URL": f"faulty://{self.proj / '.retrainer' / 'artifacts'}",
            FAULT_ENV: kind,
            DELAY_ENV: f"{self.rng.uniform(0.5, 3.0):.2f}",
        }
        proc = self.start("run", "--as-of", self.next_as_of(), "--json", env=env)
        proc.tag = f"artifacts:{kind}"
        if kind == "slow" and self.rng.random() < 0.5:
            self.kill_after(proc, self.rng.uniform(2.0, 6.0))
        if self.rng.random() < 0.3:
            blessed = [v.version for v in self.versions() if v.blessing.passed]
            if blessed:
                self.start("promote", str(self.rng.choice(blessed)), env=env).tag = proc.tag

    def act_db_locked(self) -> None:
        hold = self.rng.uniform(0.5, 6.0)
        self.stats.faults["db:locked"] += 1
        self.tag = f"db:locked {hold:.1f}s"
        locked = threading.Event()
        thread = threading.Thread(target=self._hold_lock, args=(hold, locked), daemon=True)
        thread.start()
        locked.wait(10)
        self.start("run", "--as-of", self.next_as_of(), "--json")
        time.sleep(self.rng.uniform(0.0, 1.0))
        self._one_command()
        thread.join()

    def _hold_lock(self, seconds: float, locked: threading.Event) -> None:
        if self.pg_url:
            import sqlalchemy as sa

            engine = sa.create_engine(self.pg_url)
            try:
                with engine.connect() as conn, conn.begin():
                    conn.execute(sa.text("LOCK TABLE runs, model_versions, events"))
                    locked.set()
                    time.sleep(seconds)
            finally:
                locked.set()
                engine.dispose()
            return
        lite = sqlite3.connect(self.proj / ".retrainer" / "retrainer.db", isolation_level=None)
        try:
            lite.execute("BEGIN EXCLUSIVE")
            locked.set()
            time.sleep(seconds)
            lite.execute("ROLLBACK")
        finally:
            locked.set()
            lite.close()

    def act_db_readonly(self) -> None:
        """Commands on a store they may not write: the database file, the artifacts folder
        or both read-only (without the capabilities that let root ignore modes, as root)."""
        folder = self.proj / ".retrainer"
        what = self.rng.choice(["database file", "artifacts folder", "store folder"])
        paths = {
            "database file": list(folder.glob("retrainer.db*")),
            "artifacts folder": [folder / "artifacts"],
            "store folder": [folder],
        }[what]
        self.stats.faults[f"read-only {what}"] += 1
        self.tag = f"read-only {what}"
        with _read_only(paths):
            unprivileged = os.geteuid() == 0
            command = self.rng.choice(["run", "run", "promote", "rollback"])
            if command == "run":
                args = ["run", "--as-of", self.next_as_of(), "--json"]
            elif command == "promote":
                blessed = [v.version for v in self.versions() if v.blessing.passed] or [1]
                args = ["promote", str(self.rng.choice(blessed))]
            else:
                args = ["rollback"]
            self.finish(self.start(*args, unprivileged=unprivileged))

    def act_tamper_then_promote(self) -> None:
        """Break a blob of a version no alias uses, then ask for it to serve: refused, or
        the champion would point at a model that cannot load."""
        versions = self.versions()
        aliased = set(self.aliases().values())
        serving = {v.artifact_sha256 for v in versions if v.version in aliased}
        targets = [v for v in versions if v.blessing.passed and v.artifact_sha256 not in serving]
        if not targets:
            self.act_run()
            return
        target = self.rng.choice(targets)
        how = self.rng.choice(["deleted", "flipped", "appended", "truncated"])
        self.stats.faults[f"artifact:{how}"] += 1
        sha = target.artifact_sha256
        blob = self.proj / ".retrainer" / "artifacts" / "sha256" / sha[:2] / sha
        backup = self.workdir / f"{sha}.bak"
        shutil.copy(blob, backup)
        try:
            data = blob.read_bytes()
            if how == "deleted":
                blob.unlink()
            elif how == "flipped":
                i = self.rng.randrange(len(data))
                blob.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :])
            elif how == "appended":
                blob.write_bytes(data + b"\0junk")
            else:
                blob.write_bytes(data[: len(data) // 2])
            if self.rng.random() < 0.5:
                proc = self.finish(self.start("promote", str(target.version)))
            else:
                proc = self.finish(self.start("rollback", "--to", str(target.version)))
            if proc.returncode == 0:
                self.violation(
                    "alias_on_broken_artifact",
                    f"{' '.join(proc.args[:1])} v{target.version}",
                    f"exit 0 with the blob {how}: the champion points at a model that cannot load",
                )
            # the claim of that command stands on a blob about to be restored: drop it
            self.ledger.claims = [c for c in self.ledger.claims if c.step != self.step]
        finally:
            shutil.copy(backup, blob)
            backup.unlink()

    def act_extreme_as_of(self) -> None:
        at = self.rng.choice(["9999-12-31T23:00:00", "9999-12-31", "0001-01-01", "1970-01-01"])
        self.stats.faults[f"input:as-of {at}"] += 1
        command = self.rng.choice(["run", "status", "monitor"])
        args = ["--json"] if command != "monitor" else ["--no-report", "--json"]
        proc = self.start(command, "--as-of", at, *args)
        proc.tag = f"--as-of {at}"
        self.finish(proc)
        if proc.returncode == 0 and command == "run" and at.startswith("9999"):
            self.violation("accepted_bad_input", f"run --as-of {at}", "exit 0")

    def act_bad_data(self) -> None:
        import numpy as np
        import pandas as pd

        how = self.rng.choice(["all-NaN", "half-text"])
        self.stats.faults[f"input:{how} column"] += 1
        frame = pd.read_parquet(self.workdir / "data.parquet.orig")
        if how == "all-NaN":
            frame["x2"] = np.nan
        else:
            text = frame["x2"].astype(str)
            text[::2] = "n/a"
            frame["x2"] = text
        frame.to_parquet(self.proj / "data.parquet")
        try:
            proc = self.start("run", "--as-of", self.next_as_of(), "--json")
            proc.tag = f"{how} column"
            self.finish(proc)
        finally:
            shutil.copy(self.workdir / "data.parquet.orig", self.proj / "data.parquet")
        try:
            ran = json.loads(proc.stdout).get("run", {}) if proc.stdout.strip() else {}
        except ValueError:
            ran = {}
        if ran.get("status") == "succeeded":
            self.violation("accepted_bad_input", f"{how} x2", "the run succeeded")
            return
        said = (ran.get("error") or "") + proc.stderr  # the message, not the echoed params
        if "x2" not in said:
            last = said.strip().splitlines()[-1][:200] if said.strip() else ""
            self.violation("error_not_naming_column", f"{how} x2", f"said {last!r}")

    def act_pg_restart(self) -> None:
        if not (self.pg_ctl and self.pg_data):
            self.act_db_locked()
            return
        mode = self.rng.choice(["fast", "immediate"])
        self.stats.faults[f"postgresql:restart-{mode}"] += 1
        self.tag = f"postgresql:restart-{mode}"
        if self.rng.random() < 0.5:
            self.start("run", "--as-of", self.next_as_of(), "--json")
        else:
            self.start(
                "daemon", "--executor", "inline", "--quiet", "--as-of", self.next_as_of(),
                "--tick", "3600", "--max-ticks", str(self.rng.randint(24, 48)),
            )  # fmt: skip
        time.sleep(self.rng.uniform(1.0, 6.0))  # a command takes ~3 s to import and open
        try:
            subprocess.run(
                [*self.pg_ctl, "-D", self.pg_data, "-m", mode, "stop"],
                check=True,
                capture_output=True,
            )
            time.sleep(self.rng.uniform(0.5, 5.0))
        finally:
            opts = ["-o", os.environ["CHAOS_PG_OPTS"]] if os.environ.get("CHAOS_PG_OPTS") else []
            log = ["-l", f"{self.pg_data}/server.log"]
            subprocess.run(
                [*self.pg_ctl, "-D", self.pg_data, "-w", *log, *opts, "start"],
                check=True,
                capture_output=True,
            )

    def act_gc(self) -> None:
        run = self.start("run", "--as-of", self.next_as_of(), "--json")
        gc = self.start("gc")
        if self.rng.random() < 0.5:
            self.kill_after(gc, self.rng.uniform(0.3, 2.0))
        if self.rng.random() < 0.3:
            self.kill_after(run, self.rng.uniform(0.5, 3.0))

    def actions(self) -> dict[str, tuple[float, Callable[[], None]]]:
        table: dict[str, tuple[float, Callable[[], None]]] = {
            "run": (3, self.act_run),
            "kill_timer": (3, self.act_kill_timer),
            "kill_fault_point": (3, self.act_kill_fault_point),
            "two_runs": (2, self.act_two_runs),
            "run_and_commands": (2, self.act_run_and_commands),
            "promote_rollback": (1.5, self.act_promote_rollback),
            "two_daemons": (1.5, self.act_two_daemons),
            "storage_fault": (3, self.act_storage_fault),
            "db_locked": (1.5, self.act_db_locked),
            "db_read_only": (0 if self.pg_url else 1, self.act_db_readonly),
            "tamper_then_promote": (1, self.act_tamper_then_promote),
            "extreme_as_of": (0.5, self.act_extreme_as_of),
            "bad_data": (0.5, self.act_bad_data),
            "pg_restart": (5 if self.pg_ctl else 0, self.act_pg_restart),
            "gc": (1 if self.has_gc else 0, self.act_gc),
        }
        return {k: v for k, v in table.items() if v[0] > 0 and (not self.only or k in self.only)}

    def iterate(self) -> None:
        self.step += 1
        self.tag = ""
        table = self.actions()
        names = list(table)
        self.action = self.rng.choices(names, weights=[table[n][0] for n in names])[0]
        self.stats.actions[self.action] += 1
        try:
            table[self.action][1]()
        finally:
            self.wait_all()
        self.stats.iterations += 1
        self.check()

    def report(self, started: float) -> dict[str, Any]:
        kinds = Counter(v["kind"] for v in self.stats.violations)
        return {
            "seed": self.seed,
            "backend": "postgresql" if self.pg_url else "sqlite",
            "seconds": round(time.monotonic() - started, 1),
            "iterations": self.stats.iterations,
            "invariant_checks": self.stats.checks,
            "commands": sum(self.stats.commands.values()),
            "kills": sum(self.stats.kills.values()),
            "faults": sum(self.stats.faults.values()),
            "invariant_violations": len(self.stats.violations),
            "duplicate_runs": sum(n for k, n in kinds.items() if k in DUPLICATE_KINDS),
            "lost_records": sum(n for k, n in kinds.items() if k in LOST_KINDS),
            "actions": dict(sorted(self.stats.actions.items())),
            "commands_by_name": dict(sorted(self.stats.commands.items())),
            "kills_by_kind": dict(sorted(self.stats.kills.items())),
            "faults_by_kind": dict(sorted(self.stats.faults.items())),
            "exits": dict(sorted(self.stats.exits.items())),
            "violations_by_kind": dict(sorted(kinds.items())),
            "violations": self.stats.violations,
            "store": self.ledger.figures(),
        }


@contextlib.contextmanager
def _read_only(paths: list[Path]) -> Iterator[None]:
    modes = {p: p.stat().st_mode for top in paths for p in [top, *top.rglob("*")]}
    try:
        for p, mode in modes.items():
            p.chmod((mode & 0o555) | (0o111 if p.is_dir() else 0) | 0o444)
        yield
    finally:
        for p, mode in modes.items():
            with contextlib.suppress(FileNotFoundError):
                p.chmod(mode)


def print_summary(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"chaos campaign, seed {report['seed']} ({report['backend']})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key in (
        "iterations", "seconds", "commands", "invariant_checks", "kills", "faults",
        "invariant_violations", "duplicate_runs", "lost_records",
    ):  # fmt: skip
        table.add_row(key.replace("_", " "), str(report[key]))
    for group in ("actions", "kills_by_kind", "faults_by_kind", "violations_by_kind"):
        for key, n in report[group].items():
            table.add_row(f"  {group.split('_')[0]}: {key}", str(n))
    for key, n in report["store"].items():
        table.add_row(f"  store: {key.replace('_', ' ')}", str(n))
    Console(width=120).print(table)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=None, help="default: a random one, printed")
    parser.add_argument("--iterations", type=int, default=0, help="stop after N (0: no limit)")
    parser.add_argument("--minutes", type=float, default=3.0, help="start no iteration after M")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--out", type=Path, default=Path("chaos-report.json"))
    parser.add_argument("--workdir", type=Path, default=None, help="kept; default: a temp dir")
    parser.add_argument("--stop-on-violation", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="print every command's exit")
    parser.add_argument("--only", default="", help="comma-separated actions to draw from")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="retrainer-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o755)  # the read-only fault runs commands as another user when root
    pg_url = None
    database = contextlib.ExitStack()  # the fresh PostgreSQL database, dropped at the end
    pg_ctl = os.environ.get("CHAOS_PG_CTL", "").split() or None
    pg_data = os.environ.get("CHAOS_PG_DATA") or None
    if args.backend == "postgresql":
        base = os.environ.get("RETRAINER_TEST_PG_URL")
        if not base:
            print("chaos: --backend postgresql needs RETRAINER_TEST_PG_URL", file=sys.stderr)
            return 2
        from retrainer.testing import postgres_database

        pg_url = database.enter_context(postgres_database(base, "chaos"))
    else:
        pg_ctl = pg_data = None
    print(f"chaos: seed {seed}, {args.backend}, in {workdir}", flush=True)
    campaign = Campaign(seed, workdir, pg_url=pg_url, pg_ctl=pg_ctl, pg_data=pg_data)
    campaign.only = {a for a in args.only.split(",") if a}
    campaign.verbose = args.verbose
    started = time.monotonic()
    try:
        campaign.setup()
        while (not args.iterations or campaign.stats.iterations < args.iterations) and (
            time.monotonic() - started < args.minutes * 60
        ):
            campaign.iterate()
            print(f"step {campaign.step}: {campaign.action}", flush=True)
            if args.stop_on_violation and campaign.stats.violations:
                break
    finally:
        campaign.wait_all()
        database.close()
    report = campaign.report(started)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print_summary(report)
    print(f"chaos: report written to {args.out}")
    if report["invariant_violations"]:
        first = report["violations"][0]
        print(
            f"chaos: {report['invariant_violations']} violation(s); the first at step "
            f"{first['step']} ({first['action']}). Reproduce with: python -m chaos --seed {seed} "
            f"--iterations {first['step']} --backend {args.backend} --stop-on-violation; the "
            f"project is kept in {workdir}",
            file=sys.stderr,
        )
        return 1
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0
