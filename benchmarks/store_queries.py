"""Metadata store queries at scale: the dashboard's listings over a long history (issue 18).

Builds, with a fixed seed, a metadata database of ``--pipelines`` pipelines (default 100),
``--events`` events (default 1,000,000: mostly trigger evaluations, then monitoring windows,
run and rollout events, and rare ones like rollbacks), ``--runs`` runs (20,000) and
``--versions`` model versions (5,000), bulk-inserted at schema revision 0003 (the schema before
the listing indexes). Then it times the queries the dashboard makes, through the store's API
(the SQL, the rows and the records), median of ``--repeats`` runs, each run on another pipeline:

- ``landed (0003)``: the store as landed before this work (one ``kind IN (...)`` query per
  call, see :class:`LandedStore`) on the 0003 schema;
- ``this branch (0004)``: after ``alembic upgrade 0004`` (timed too, on the full tables), with
  the store of this tree;
- with ``--ablation``: 0004 without each of its new indexes in turn (the index it replaced, if
  any, put back), to show which ones earn their place.

In the query names, ``p`` is an active pipeline (another one on each timed run), ``retired``
a pipeline that ran during the first 1% of the history only, and ``mid`` the middle event id.
Schema 0004 adds events(pipeline, kind, id), events(pipeline, id), events(kind, id) and
runs(pipeline, id).

``--url`` runs it on PostgreSQL instead of a SQLite file in a temporary folder (the tables go
in a new schema, dropped at the end). ``--explain`` prints each query's plan.

Usage (from the repository root)::

    .venv/bin/python benchmarks/store_queries.py
    .venv/bin/python benchmarks/store_queries.py --ablation --explain
    .venv/bin/python benchmarks/store_queries.py --events 100000 --json
    .venv/bin/python benchmarks/store_queries.py --url postgresql+psycopg://user@host/db
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from retrainer.adapters.metadata.sql import SQLMetadataStore, migrate, schema
from retrainer.adapters.metadata.sql.connection import transaction
from retrainer.adapters.metadata.sql.rows import db_time, event_from

SEED = 20240801
START = datetime(2024, 1, 1)
DAYS = 365
RARE_KIND = "model.rolled_back"
MARKERS = ["run.succeeded", "blessing.passed", "blessing.rejected", "model.promoted", RARE_KIND]

# the mix of a daemon's trail: one evaluation per trigger per tick dominates
KIND_WEIGHTS = {
    "trigger.evaluated": 800,
    "monitor.completed": 80,
    "rollout.evaluated": 20,
    "trigger.fired": 20,
    "run.requested": 15,
    "run.started": 15,
    "run.succeeded": 13,
    "run.failed": 2,
    "drift.detected": 10,
    "blessing.passed": 5,
    "blessing.rejected": 5,
    "alert.sent": 5,
    "model.promoted": 3,
    "promotion.skipped": 2,
    "rollout.started": 1,
    "rollout.completed": 1,
    RARE_KIND: 0.2,
}

EVENT_INDEXES_0003 = {
    "ix_events_pipeline": "pipeline",
    "ix_events_kind": "kind",
    "ix_events_at": "at",
}

# (name, table, columns, the 0003 index it replaces): what 0004 adds
NEW_INDEXES = [
    ("ix_events_pipeline_kind_id", "events", ("pipeline", "kind", "id"), None),
    ("ix_events_pipeline_id", "events", ("pipeline", "id"), ("ix_events_pipeline", ("pipeline",))),
    ("ix_events_kind_id", "events", ("kind", "id"), ("ix_events_kind", ("kind",))),
    ("ix_runs_pipeline_id", "runs", ("pipeline", "id"), None),
]


@dataclass(frozen=True)
class Facts:
    pipelines: list[str]
    mid_event_id: int
    mid_run_id: int
    built_s: float


# -- building the history -------------------------------------------------------------------------


def event_rows(n: int, pipelines: list[str], rng: random.Random) -> Iterator[tuple[Any, ...]]:
    kinds = rng.choices(list(KIND_WEIGHTS), weights=list(KIND_WEIGHTS.values()), k=n)
    owners = retire_last(rng.choices(pipelines, k=n), pipelines[-1], rng)
    step = DAYS * 86_400 / n
    evaluated = json.dumps({"trigger": "ctr_low", "fire": False, "value": 0.02, "limit": 0.019})
    other = [json.dumps({"trigger": "ctr_low", "detail": {"n": n}}) for n in range(997)]
    for i, (kind, pipeline) in enumerate(zip(kinds, owners, strict=True)):
        at = START + timedelta(seconds=i * step)
        data = evaluated if kind == "trigger.evaluated" else other[i % 997]
        yield (kind, at, f"{kind} on {pipeline}", pipeline, None, None, data)


def retire_last(owners: list[str], retired: str, rng: random.Random) -> list[str]:
    """The last pipeline ran during the first 1% of the history only, then was retired."""
    early = len(owners) // 100
    active = [p for p in dict.fromkeys(owners) if p != retired]
    return [
        retired if i < early and rng.random() < 0.5 else rng.choice(active) if p == retired else p
        for i, p in enumerate(owners)
    ]


def run_rows(n: int, pipelines: list[str], rng: random.Random) -> Iterator[tuple[Any, ...]]:
    step = DAYS * 86_400 / n
    owners = retire_last(rng.choices(pipelines, k=n), pipelines[-1], rng)
    for i, pipeline in enumerate(owners):
        at = START + timedelta(seconds=i * step)
        status = "failed" if rng.random() < 0.05 else "succeeded"
        yield (
            f"{pipeline}/ctr_low/{i}",
            pipeline,
            "trigger:ctr_low",
            at,
            status,
            json.dumps({"value": 0.0188, "threshold": 0.0191, "window": "1d"}),
            json.dumps({"model": {"max_depth": 6}}),
            at,
            at + timedelta(minutes=3),
            json.dumps({"auc": 0.91, "logloss": 0.31}),
            json.dumps({"load": 1.2, "train": 140.5, "bless": 8.1, "register": 0.4}),
        )


def insert_history(
    conn: sa.Connection, facts_n: argparse.Namespace, pipelines: list[str]
) -> tuple[int, int]:
    """Bulk-insert everything; return the middle event id and the middle run id."""
    rng = random.Random(SEED)
    conn.execute(
        sa.insert(schema.pipelines),
        [
            {"name": p, "definition_hash": "h" * 16, "created_at": START, "updated_at": START}
            for p in pipelines
        ],
    )
    dbapi = conn.connection.driver_connection
    run_cols = (
        "key, pipeline, cause, created_at, status, evidence, params, started_at, finished_at, "
        "metrics, timings, epoch, attempts"
    )
    event_cols = "kind, at, message, pipeline, run_id, version, data"
    runs = [(*r, 1, 1) for r in run_rows(facts_n.runs, pipelines, rng)]
    events = event_rows(facts_n.events, pipelines, rng)
    # the events' 0003 indexes are built after the rows: 3x faster than kept up per row
    for name in EVENT_INDEXES_0003:
        conn.exec_driver_sql(f"DROP INDEX {name}")
    if conn.dialect.name == "sqlite":
        cur = dbapi.cursor()  # type: ignore[union-attr]
        cur.executemany(f"INSERT INTO runs ({run_cols}) VALUES ({','.join('?' * 13)})", runs)
        cur.executemany(f"INSERT INTO events ({event_cols}) VALUES ({','.join('?' * 7)})", events)
    else:
        with dbapi.cursor() as cur:  # type: ignore[union-attr]
            with cur.copy(f"COPY runs ({run_cols}) FROM STDIN") as copy:
                for row in runs:
                    copy.write_row(row)
            with cur.copy(f"COPY events ({event_cols}) FROM STDIN") as copy:
                for row in events:
                    copy.write_row(row)
    for name, column in EVENT_INDEXES_0003.items():
        conn.exec_driver_sql(f"CREATE INDEX {name} ON events ({column})")
    insert_versions(conn, facts_n.versions, pipelines, rng)
    mid_event = conn.scalar(sa.select(sa.func.max(schema.events.c.id))) // 2
    mid_run = conn.scalar(sa.select(sa.func.max(schema.runs.c.id))) // 2
    return mid_event, mid_run


def insert_versions(conn: sa.Connection, n: int, pipelines: list[str], rng: random.Random) -> None:
    per = max(n // len(pipelines), 1)
    run_ids: dict[str, list[int]] = {}
    for run_id, pipeline in conn.execute(sa.select(schema.runs.c.id, schema.runs.c.pipeline)):
        run_ids.setdefault(pipeline, []).append(run_id)
    snapshots, versions = [], []
    for p in pipelines:
        chosen = sorted(rng.sample(run_ids.get(p, []), min(per, len(run_ids.get(p, [])))))
        for number, run_id in enumerate(chosen, start=1):
            snapshots.append(
                {
                    "pipeline": p,
                    "source": f"data/{p}/*.parquet",
                    "window_start": START,
                    "window_end": START,
                    "row_count": 100_000,
                    "data_schema": {"f0": "float64", "country": "string"},
                    "fingerprint": "f" * 64,
                    "created_at": START,
                }
            )
            versions.append((p, number, run_id))
    conn.execute(sa.insert(schema.snapshots), snapshots)
    snapshot_ids = conn.scalars(sa.select(schema.snapshots.c.id).order_by("id")).all()
    conn.execute(
        sa.insert(schema.model_versions),
        [
            {
                "pipeline": p,
                "version": number,
                "created_at": START,
                "run_id": run_id,
                "artifact_sha256": f"{number:064x}",
                "artifact_size": 1_000_000,
                "artifact_format": "skops",
                "metrics": {"auc": 0.91},
                "params": {},
                "snapshot_id": sid,
                "code_pipeline_hash": "h" * 16,
                "environment": {"python": "3.11"},
                "blessed": number % 2 == 0,
                "blessing_reason": "min_improvement",
                "blessing_evidence": {"rows": []},
                "profile": None,
            }
            for (p, number, run_id), sid in zip(versions, snapshot_ids, strict=True)
        ],
    )


def build(url: str, args: argparse.Namespace) -> Facts:
    """Create the schema at 0003 and bulk-insert the history."""
    from alembic import command

    pipelines = [f"p{i:03d}" for i in range(args.pipelines)]
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    t0 = time.perf_counter()
    try:
        with transaction(engine, "bench", 30.0, write=True) as conn:
            command.upgrade(migrate.alembic_config(conn), "0003")
        with transaction(engine, "bench", 30.0, write=True) as conn:
            mid_event, mid_run = insert_history(conn, args, pipelines)
    finally:
        engine.dispose()
    return Facts(pipelines, mid_event, mid_run, time.perf_counter() - t0)


# -- the queries ----------------------------------------------------------------------------------


def queries(facts: Facts) -> dict[str, Callable[[SQLMetadataStore, str], Any]]:
    """The queries by name: ``p`` is an active pipeline, ``retired`` one that stopped long ago."""
    mid, mid_run, retired = facts.mid_event_id, facts.mid_run_id, facts.pipelines[-1]
    triggers = ["trigger.fired", "trigger.evaluated"]
    return {
        # the overview, per pipeline: its last trigger decisions and runs
        'list_events(p, kinds=["trigger.fired", "trigger.evaluated"], limit=5)': lambda s, p: (
            s.list_events(p, kinds=triggers, limit=5)
        ),
        "list_runs(p, limit=20)": lambda s, p: s.list_runs(p, limit=20),
        'list_events(retired, kinds=["trigger.fired", "trigger.evaluated"], limit=5)': (
            lambda s, p: s.list_events(retired, kinds=triggers, limit=5)
        ),
        "list_runs(retired, limit=20)": lambda s, p: s.list_runs(retired, limit=20),
        "list_events(retired, limit=50)": lambda s, p: s.list_events(retired, limit=50),
        # the pipeline page: the chart's markers, a rare kind, the next pages
        "list_events(p, kinds=[5 marker kinds], limit=200)": lambda s, p: s.list_events(
            p, kinds=MARKERS, limit=200
        ),
        f'list_events(p, kinds=["{RARE_KIND}"], limit=20)': lambda s, p: s.list_events(
            p, kinds=[RARE_KIND], limit=20
        ),
        'list_events(p, kinds=["model.promoted"], limit=50)': lambda s, p: s.list_events(
            p, kinds=["model.promoted"], limit=50
        ),
        "list_events(p, limit=50, before=mid)": lambda s, p: s.list_events(p, limit=50, before=mid),
        'list_events(p, kinds=["trigger.fired"], limit=50, before=mid)': lambda s, p: s.list_events(
            p, kinds=["trigger.fired"], limit=50, before=mid
        ),
        "list_runs(p, limit=20, before=mid)": lambda s, p: s.list_runs(p, limit=20, before=mid_run),
        # the events page
        "list_events(limit=50)": lambda s, p: s.list_events(limit=50),
        'list_events(kinds=["model.promoted"], limit=50)': lambda s, p: s.list_events(
            kinds=["model.promoted"], limit=50
        ),
        f'list_events(kinds=["{RARE_KIND}"], limit=50)': lambda s, p: s.list_events(
            kinds=[RARE_KIND], limit=50
        ),
        "list_events(limit=50, before=mid)": lambda s, p: s.list_events(limit=50, before=mid),
        "list_events(until=mid time, limit=50)": lambda s, p: s.list_events(
            until=START + timedelta(days=DAYS / 2), limit=50
        ),
    }


OVERVIEW = "overview: the first two for every pipeline"


def time_queries(
    store: SQLMetadataStore, facts: Facts, repeats: int, explain: bool
) -> dict[str, float]:
    """Median seconds of each query, each repeat on another pipeline (after one warm-up)."""
    out: dict[str, float] = {}
    active = facts.pipelines[:-1]
    rotation = [active[(7 * i + 3) % len(active)] for i in range(repeats)]
    for name, query in queries(facts).items():
        query(store, rotation[0])  # warm-up: the pages into the cache
        times = []
        for pipeline in rotation:
            t0 = time.perf_counter()
            query(store, pipeline)
            times.append(time.perf_counter() - t0)
        out[name] = statistics.median(times)
        if explain:
            print(f"  {name}: {plan(store, functools.partial(query, store, rotation[0]))}")
    every = queries(facts)
    first, runs = next(iter(every.values())), every["list_runs(p, limit=20)"]
    loops = []
    for _ in range(max(repeats // 2, 1)):
        t0 = time.perf_counter()
        for p in facts.pipelines:
            first(store, p)
            runs(store, p)
        loops.append(time.perf_counter() - t0)
    out[OVERVIEW] = statistics.median(loops)
    return out


def plan(store: SQLMetadataStore, call: Callable[[], Any]) -> str:
    """The plan of the one SELECT ``call`` runs (captured from the engine, then EXPLAINed)."""
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, params))

    engine = store._engine
    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    statement, params = seen[-1]
    if engine.dialect.name == "sqlite":
        # a new connection: a pooled one may plan with the schema it read before an index
        # was dropped (EXPLAIN does not check the schema cookie)
        path = engine.url.database
        assert path is not None
        with contextlib.closing(sqlite3.connect(path)) as fresh:
            rows = fresh.execute(f"EXPLAIN QUERY PLAN {statement}", params).fetchall()
        return "; ".join(r[-1] for r in rows)
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        with raw.cursor() as cur:  # type: ignore[union-attr]
            cur.execute(f"EXPLAIN {statement}", params)
            return " | ".join(r[0].strip() for r in cur.fetchall()[:4])


class LandedStore(SQLMetadataStore):
    """The store as landed before 0004 (at 843d657): one ``kind IN (...)`` query, built per
    call; ``until`` and ``before`` added as plain filters so the new queries run too."""

    def list_events(
        self,
        pipeline: str | None = None,
        since: datetime | None = None,
        kinds: list[str] | None = None,
        limit: int | None = None,
        *,
        until: datetime | None = None,
        before: int | None = None,
    ) -> list[Any]:
        events = schema.events
        query = sa.select(events).order_by(events.c.id.desc())
        if pipeline is not None:
            query = query.where(events.c.pipeline == pipeline)
        if since is not None:
            query = query.where(events.c.at >= db_time(since))
        if until is not None:
            query = query.where(events.c.at <= db_time(until))
        if kinds is not None:
            query = query.where(events.c.kind.in_(kinds))
        if before is not None:
            query = query.where(events.c.id < before)
        if limit is not None:
            query = query.limit(max(limit, 0))
        with self._tx(write=False) as conn:
            found = [event_from(row._mapping) for row in conn.execute(query)]
        found.reverse()
        return found


@contextlib.contextmanager
def schema_head(revision: str) -> Iterator[None]:
    """Open stores as the retrainer of ``revision`` would (it does not upgrade past it)."""
    saved = migrate.SCHEMA_HEAD
    migrate.SCHEMA_HEAD = revision
    try:
        yield
    finally:
        migrate.SCHEMA_HEAD = saved


def swap_index(store: SQLMetadataStore, spec: tuple[Any, ...], *, remove: bool) -> None:
    """Drop one of 0004's indexes and put back the one it replaced (or the reverse)."""
    name, table, columns, replaced = spec
    statements = [f"DROP INDEX {name}"] if remove else []
    if replaced is not None:
        old_name, old_columns = replaced
        statements.append(
            f"CREATE INDEX {old_name} ON {table} ({', '.join(old_columns)})"
            if remove
            else f"DROP INDEX {old_name}"
        )
    if not remove:
        statements.append(f"CREATE INDEX {name} ON {table} ({', '.join(columns)})")
    with transaction(store._engine, "bench", 30.0, write=True) as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"ANALYZE {table}")


def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    facts = build(url, args)
    print(f"built in {facts.built_s:.1f} s", file=sys.stderr)
    results: dict[str, dict[str, float]] = {}
    with schema_head("0003"), LandedStore(url, auto_migrate=False) as store:
        if store._engine.dialect.name == "postgresql":
            with store._engine.begin() as conn:  # as autovacuum would have by now
                conn.execute(sa.text("ANALYZE"))
        if args.explain:
            print("0003")
        results["landed (0003)"] = time_queries(store, facts, args.repeats, args.explain)
    t0 = time.perf_counter()
    migrate.upgrade_schema(url)
    upgrade_s = time.perf_counter() - t0
    with SQLMetadataStore(url, auto_migrate=False) as store:
        if store._engine.dialect.name == "postgresql":
            with store._engine.begin() as conn:
                conn.execute(sa.text("ANALYZE"))
        if args.explain:
            print("0004")
        results["this branch (0004)"] = time_queries(store, facts, args.repeats, args.explain)
        if args.ablation:
            for spec in NEW_INDEXES:
                swap_index(store, spec, remove=True)
                label = f"0004 without {spec[0]}"
                if args.explain:
                    print(label)
                results[label] = time_queries(store, facts, args.repeats, args.explain)
                swap_index(store, spec, remove=False)
    return {
        "events": args.events,
        "runs": args.runs,
        "versions": args.versions,
        "pipelines": args.pipelines,
        "dialect": sa.make_url(url).get_backend_name(),
        "built_s": facts.built_s,
        "upgrade_0004_s": upgrade_s,
        "repeats": args.repeats,
        "seconds": results,
    }


@contextlib.contextmanager
def database(url: str | None) -> Iterator[str]:
    """A SQLite file in a temporary folder, or a new schema in the PostgreSQL database."""
    if url is None:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'retrainer.db'}"
        return
    name = f"rt_bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url, poolclass=sa.NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    try:
        yield (
            sa.make_url(url)
            .update_query_dict({"options": f"-csearch_path={name}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


def table(report: dict[str, Any]) -> str:
    columns = list(report["seconds"])
    out = io.StringIO()
    out.write(f"| query | {' | '.join(columns)} |\n|---|{'---:|' * len(columns)}\n")
    for name in report["seconds"][columns[0]]:
        cells = [f"{report['seconds'][c][name] * 1000:.2f} ms" for c in columns]
        out.write(f"| `{name}` | {' | '.join(cells)} |\n")
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--versions", type=int, default=5_000)
    parser.add_argument("--pipelines", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per query")
    parser.add_argument("--ablation", action="store_true", help="0004 less each new index")
    parser.add_argument("--explain", action="store_true", help="print each query's plan")
    parser.add_argument("--url", help="a PostgreSQL URL (default: SQLite in a temp folder)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)

    with database(args.url) as url:
        report = run(url, args)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    engine = "SQLite " + sqlite3.sqlite_version if args.url is None else "PostgreSQL"
    print(
        f"{engine}: {args.pipelines} pipelines, {args.events:,} events, {args.runs:,} runs, "
        f"{args.versions:,} versions; built in {report['built_s']:.1f} s, upgrade to 0004 in "
        f"{report['upgrade_0004_s']:.1f} s; median of {args.repeats}; "
        f"Python {platform.python_version()}"
    )
    print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
