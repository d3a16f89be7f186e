"""The MetadataStore contract, run against every adapter.

``memory`` and ``sqlite`` always run; ``postgresql`` runs when ``RETRAINER_TEST_PG_URL`` holds a
``postgresql+psycopg://`` URL (each test gets its own schema there, dropped afterwards).
"""

from __future__ import annotations

import inspect
import itertools
import math
import os
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from retrainer.adapters.metadata import ANY, MetadataStore
from retrainer.adapters.metadata.memory import InMemoryMetadataStore
from retrainer.adapters.metadata.sql import SQLMetadataStore
from retrainer.core.types import (
    AliasMove,
    CodeVersion,
    Event,
    EvidenceRow,
    ModelVersion,
    MonitorRecord,
    Run,
    Snapshot,
    TokenRecord,
    Verdict,
)
from retrainer.errors import ConcurrencyError, ModelNotFoundError, TokenNotFoundError

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PG_URL_VAR = "RETRAINER_TEST_PG_URL"


def _postgres_store() -> Iterator[MetadataStore]:
    url = os.environ.get(PG_URL_VAR)
    if not url:
        pytest.skip(f"set {PG_URL_VAR}=postgresql+psycopg://user@host/db to run on PostgreSQL")
    import sqlalchemy as sa

    schema = f"rt_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    scoped = sa.make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    store = SQLMetadataStore(scoped.render_as_string(hide_password=False))
    try:
        yield store
    finally:
        store.close()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MetadataStore]:
    if request.param == "postgresql":
        yield from _postgres_store()
        return
    opened: MetadataStore
    if request.param == "memory":
        opened = InMemoryMetadataStore()
    else:
        opened = SQLMetadataStore(f"sqlite:///{tmp_path / 'retrainer.db'}")
    try:
        yield opened
    finally:
        opened.close()


# -- record factories --------------------------------------------------------------------------


def make_snapshot(pipeline: str = "churn", **changes: Any) -> Snapshot:
    fields: dict[str, Any] = {
        "pipeline": pipeline,
        "source": "data/churn/*.parquet",
        "window_start": T0 - timedelta(days=30),
        "window_end": T0,
        "min_time": T0 - timedelta(days=29, hours=23),
        "max_time": T0 - timedelta(minutes=5),
        "rows": 12_345,
        "schema": {"age": "int64", "plan": "string", "churned": "bool"},
        "fingerprint": "f" * 64,
        "created_at": T0,
    }
    fields.update(changes)
    return Snapshot(**fields)


def make_run(key: str = "churn/cron/2024-05-01T12", pipeline: str = "churn", **changes: Any) -> Run:
    fields: dict[str, Any] = {
        "key": key,
        "pipeline": pipeline,
        "cause": "cron",
        "created_at": T0,
        "evidence": {"schedule": "0 12 * * *", "slot": "2024-05-01T12:00:00Z"},
        "params": {"model": {"max_depth": 6, "features": ["age", "plan"]}},
    }
    fields.update(changes)
    return Run(**fields)


def make_verdict(passed: bool = True) -> Verdict:
    return Verdict(
        passed=passed,
        evidence=(
            EvidenceRow(
                rule="min_improvement",
                metric="auc",
                candidate=0.91,
                champion=0.89,
                delta=0.02,
                threshold=">= 0.005",
                passed=True,
            ),
            EvidenceRow(
                rule="max_regression",
                metric="recall",
                candidate=0.7,
                champion=None,
                delta=None,
                threshold="<= 0.01",
                passed=passed,
                slice="plan=basic",
                note="no champion on this slice",
            ),
        ),
        champion_version=3,
        reason="auc improved by 0.02" if passed else "recall regressed on plan=basic",
    )


def make_draft(pipeline: str = "churn", **changes: Any) -> ModelVersion:
    fields: dict[str, Any] = {
        "pipeline": pipeline,
        "version": 0,
        "created_at": T0,
        "run_id": None,
        "artifact_sha256": "a" * 64,
        "artifact_size": 4096,
        "artifact_format": "skops",
        "metrics": {"auc": 0.91, "log_loss": 0.31},
        "params": {"max_depth": 6, "features": ["age", "plan"]},
        "snapshot": make_snapshot(pipeline),
        "code": CodeVersion(pipeline_hash="p" * 16, git_commit="c" * 40, git_dirty=False),
        "environment": {"python": "3.11.7", "scikit-learn": "1.5.0"},
        "blessing": make_verdict(),
        "profile": {"features": {"age": {"mean": 41.5, "hist": [1, 2, 3]}}},
    }
    fields.update(changes)
    return ModelVersion(**fields)


def make_event(kind: str = "note", at: datetime = T0, **changes: Any) -> Event:
    fields: dict[str, Any] = {"kind": kind, "at": at, "message": f"{kind} happened"}
    fields.update(changes)
    return Event(**fields)


def make_monitor(
    pipeline: str = "churn", end: datetime = T0, hours: int = 1, **changes: Any
) -> MonitorRecord:
    fields: dict[str, Any] = {
        "pipeline": pipeline,
        "version": None,
        "window_start": end - timedelta(hours=hours),
        "window_end": end,
        "created_at": end + timedelta(minutes=1),
        "drifted": False,
        "summary": {
            "drift": {"share": 0.1, "features": {"age": {"psi": 0.02, "drifted": False}}},
            "quality": {"missing": {"plan": 0.0}},
            "performance": {"ctr": 0.0191, "n": 5000},
        },
    }
    fields.update(changes)
    return MonitorRecord(**fields)


def with_pipeline(store: MetadataStore, *names: str) -> MetadataStore:
    for name in names or ("churn",):
        store.ensure_pipeline(name, "hash-1", T0)
    return store


def register(store: MetadataStore, n: int, pipeline: str = "churn") -> list[int]:
    return [store.register_version(make_draft(pipeline)).version for _ in range(n)]


def move(
    store: MetadataStore, alias: str, version: int | None, at: datetime, **kw: Any
) -> AliasMove:
    return store.move_alias("churn", alias, version, at=at, reason="test", actor="tester", **kw)


def in_threads(n: int, work: Callable[[], Any]) -> list[Any]:
    """Run ``work`` in ``n`` threads released together; return the results, raise any error."""
    barrier = threading.Barrier(n)
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            results.append(work())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


# -- datetimes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given",
    [
        datetime(2024, 5, 1, 12, 30, 15, 123456),  # naive: taken as UTC
        datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC),
        datetime(2024, 5, 1, 14, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_datetimes_come_back_as_aware_utc(store: MetadataStore, given: datetime) -> None:
    expected = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
    record = store.ensure_pipeline("churn", "h", given)
    snap = store.add_snapshot(make_snapshot(created_at=given, window_end=given))
    run, _ = store.create_run(make_run(created_at=given, lease_expires_at=given))
    version = store.register_version(make_draft(created_at=given))
    moved = move(store, "champion", 1, given)
    event = store.append_event(make_event(at=given))

    values = [
        record.created_at,
        store.list_pipelines()[0].updated_at,
        store.get_snapshot(snap.id or 0).created_at,
        store.get_snapshot(snap.id or 0).window_end,
        store.get_run(run.id or 0).created_at,
        store.get_run(run.id or 0).lease_expires_at,
        store.get_version("churn", version.version).created_at,
        store.alias_history("churn")[0].at,
        moved.at,
        store.list_events()[0].at,
        event.at,
    ]
    for value in values:
        assert value == expected
        assert value is not None and value.tzinfo is not None and value.utcoffset() == timedelta(0)


# -- pipelines -----------------------------------------------------------------------------------


def test_ensure_pipeline_creates_then_updates_the_hash(store: MetadataStore) -> None:
    created = store.ensure_pipeline("churn", "h1", T0)
    assert (created.name, created.definition_hash) == ("churn", "h1")
    assert created.created_at == created.updated_at == T0

    same = store.ensure_pipeline("churn", "h1", T0 + timedelta(hours=1))
    assert same == created  # same hash: nothing changes

    changed = store.ensure_pipeline("churn", "h2", T0 + timedelta(hours=2))
    assert changed.definition_hash == "h2"
    assert changed.created_at == T0
    assert changed.updated_at == T0 + timedelta(hours=2)
    assert store.list_pipelines() == [changed]


def test_ensure_pipeline_from_several_threads_at_once(store: MetadataStore) -> None:
    got = in_threads(6, lambda: store.ensure_pipeline("churn", "h1", T0).name)
    assert got == ["churn"] * 6
    assert [p.name for p in store.list_pipelines()] == ["churn"]


def test_list_pipelines_is_sorted_by_name(store: MetadataStore) -> None:
    assert store.list_pipelines() == []
    for name in ["fraud", "churn", "ctr"]:
        store.ensure_pipeline(name, "h", T0)
    assert [p.name for p in store.list_pipelines()] == ["churn", "ctr", "fraud"]


# -- snapshots -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [{}, {"window_start": None, "window_end": None, "min_time": None, "max_time": None}],
)
def test_snapshot_round_trips(store: MetadataStore, changes: dict[str, Any]) -> None:
    with_pipeline(store)
    snapshot = make_snapshot(**changes)
    stored = store.add_snapshot(snapshot)
    assert stored.id is not None
    assert stored == replace(snapshot, id=stored.id)
    assert store.get_snapshot(stored.id) == stored
    assert store.add_snapshot(snapshot).id != stored.id


def test_snapshot_of_unknown_pipeline_is_refused(store: MetadataStore) -> None:
    with pytest.raises(ModelNotFoundError, match="nope"):
        store.add_snapshot(make_snapshot("nope"))


# -- runs ----------------------------------------------------------------------------------------


def full_run(store: MetadataStore) -> Run:
    snap = store.add_snapshot(make_snapshot())
    return make_run(
        status="succeeded",
        snapshot_id=snap.id,
        code=CodeVersion(pipeline_hash="p" * 16, git_commit="c" * 40, git_dirty=True),
        started_at=T0 + timedelta(seconds=1),
        finished_at=T0 + timedelta(minutes=3),
        error=None,
        metrics={"auc": 0.91, "rows": 12345},
        version=None,
        outcome="registered",
        owner="host-1:4242",
        lease_expires_at=T0 + timedelta(minutes=10),
        epoch=3,
        attempts=2,
        timings={"load": 1.5, "train": 90.25},
    )


@pytest.mark.parametrize("full", [False, True])
def test_create_run_round_trips_every_field(store: MetadataStore, full: bool) -> None:
    with_pipeline(store)
    run = full_run(store) if full else make_run()
    stored, created = store.create_run(run)
    assert created
    assert stored.id is not None
    assert stored == replace(run, id=stored.id)
    assert store.get_run(stored.id) == stored


def test_create_run_is_idempotent_on_the_key(store: MetadataStore) -> None:
    with_pipeline(store)
    first, created = store.create_run(make_run())
    again, created_again = store.create_run(make_run(cause="manual", params={"other": 1}))
    assert created and not created_again
    assert again == first
    assert store.list_runs() == [first]


def test_update_run_overwrites_every_field(store: MetadataStore) -> None:
    with_pipeline(store)
    stored, _ = store.create_run(make_run())
    changed = replace(full_run(store), id=stored.id, cause="drift", status="failed", error="boom")
    assert store.update_run(changed) == changed
    assert store.get_run(stored.id or 0) == changed

    cleared = replace(changed, code=None, snapshot_id=None, metrics={}, error=None)
    store.update_run(cleared)
    assert store.get_run(stored.id or 0) == cleared


def test_update_run_refuses_unknown_runs_and_key_changes(store: MetadataStore) -> None:
    with_pipeline(store)
    stored, _ = store.create_run(make_run())
    with pytest.raises(ModelNotFoundError):
        store.update_run(replace(stored, id=999))
    with pytest.raises(ValueError, match="id"):
        store.update_run(replace(stored, id=None))
    with pytest.raises(ValueError, match="key"):
        store.update_run(replace(stored, key="other"))
    assert store.get_run(stored.id or 0) == stored


@pytest.mark.parametrize(
    "run",
    [make_run(pipeline="nope"), make_run(snapshot_id=999)],
    ids=["unknown-pipeline", "unknown-snapshot"],
)
def test_create_run_refuses_unknown_references(store: MetadataStore, run: Run) -> None:
    with_pipeline(store)
    with pytest.raises(ModelNotFoundError):
        store.create_run(run)
    assert store.list_runs() == []


def test_list_runs_newest_first_with_filters_and_limit(store: MetadataStore) -> None:
    with_pipeline(store, "churn", "ctr")
    made = []
    for i in range(6):
        pipeline = "churn" if i % 2 == 0 else "ctr"
        status = "failed" if i in (2, 3) else "succeeded"
        run, _ = store.create_run(make_run(f"k{i}", pipeline=pipeline, status=status))
        made.append(run)

    assert store.list_runs() == made[::-1]
    assert store.list_runs(limit=2) == [made[5], made[4]]
    assert store.list_runs(limit=None) == made[::-1]
    assert store.list_runs(limit=0) == []
    assert store.list_runs(pipeline="churn") == [made[4], made[2], made[0]]
    assert store.list_runs(status="failed") == [made[3], made[2]]
    assert store.list_runs(pipeline="ctr", status="succeeded", limit=1) == [made[5]]
    assert store.list_runs(pipeline="unknown") == []


def test_list_runs_default_limit_is_50(store: MetadataStore) -> None:
    with_pipeline(store)
    for i in range(52):
        store.create_run(make_run(f"k{i}"))
    assert len(store.list_runs()) == 50
    assert len(store.list_runs(limit=None)) == 52


def test_list_runs_pages_with_a_before_cursor(store: MetadataStore) -> None:
    with_pipeline(store, "churn", "ctr")
    made = []
    for i in range(8):
        pipeline = "churn" if i % 3 else "ctr"
        status = "failed" if i in (1, 4) else "succeeded"
        run, _ = store.create_run(make_run(f"k{i}", pipeline=pipeline, status=status))
        made.append(run)
    ids = [run.id or 0 for run in made]

    assert store.list_runs(before=ids[4]) == made[3::-1]
    assert store.list_runs(limit=2, before=ids[4]) == [made[3], made[2]]
    assert store.list_runs(pipeline="churn", before=ids[4]) == [made[2], made[1]]
    assert store.list_runs(status="failed", before=ids[4]) == [made[1]]
    assert store.list_runs(before=ids[0]) == []
    assert store.list_runs(before=ids[-1] + 100) == made[::-1]
    assert store.list_runs(limit=0, before=ids[4]) == []

    # following the cursor page by page lists every run once, newest first
    pages, cursor = [], None
    while page := store.list_runs(pipeline="churn", limit=2, before=cursor):
        pages.append(page)
        cursor = page[-1].id
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [run for p in pages for run in p] == store.list_runs(pipeline="churn", limit=None)


def test_get_run_of_unknown_id_raises(store: MetadataStore) -> None:
    with pytest.raises(ModelNotFoundError, match="42"):
        store.get_run(42)


@pytest.mark.parametrize(("expected", "wins"), [(ANY, True), (3, True), (2, False), (4, False)])
def test_update_run_compare_and_set_on_the_epoch(
    store: MetadataStore, expected: Any, wins: bool
) -> None:
    with_pipeline(store)
    stored, _ = store.create_run(make_run(epoch=3, owner="host-1"))
    claimed = replace(stored, epoch=4, owner="host-2", attempts=1)
    if wins:
        assert store.update_run(claimed, expected_epoch=expected) == claimed
        assert store.get_run(stored.id or 0) == claimed
    else:
        with pytest.raises(ConcurrencyError, match="epoch 3"):
            store.update_run(claimed, expected_epoch=expected)
        assert store.get_run(stored.id or 0) == stored


def test_update_run_expected_epoch_none_is_a_mistake(store: MetadataStore) -> None:
    with_pipeline(store)
    stored, _ = store.create_run(make_run())
    with pytest.raises(ValueError, match="expected_epoch"):
        store.update_run(replace(stored, epoch=1), expected_epoch=None)
    assert store.get_run(stored.id or 0) == stored


def test_update_run_epoch_race_has_exactly_one_winner(store: MetadataStore) -> None:
    with_pipeline(store)
    stored, _ = store.create_run(make_run(epoch=7))
    owners = iter(range(100))
    lock = threading.Lock()

    def claim() -> str:
        with lock:
            owner = f"w{next(owners)}"
        try:
            store.update_run(replace(stored, epoch=8, owner=owner), expected_epoch=7)
        except ConcurrencyError:
            return "lost"
        return owner

    results = in_threads(5, claim)
    [winner] = [r for r in results if r != "lost"]
    assert results.count("lost") == 4
    assert store.get_run(stored.id or 0) == replace(stored, epoch=8, owner=winner)


@pytest.mark.parametrize(
    ("status", "epoch", "renewed"),
    [("running", 3, True), ("running", 2, False), ("queued", 3, False), ("failed", 3, False)],
)
def test_renew_lease_moves_only_the_lease_of_a_claim_still_held(
    store: MetadataStore, status: str, epoch: int, renewed: bool
) -> None:
    with_pipeline(store)
    stored, _ = store.create_run(
        make_run(status=status, epoch=3, owner="host-1:7", lease_expires_at=T0)
    )
    later = T0 + timedelta(minutes=5)
    assert store.renew_lease(stored.id or 0, epoch=epoch, until=later) is renewed
    expected = replace(stored, lease_expires_at=later) if renewed else stored
    assert store.get_run(stored.id or 0) == expected  # nothing else changes


def test_create_run_and_update_run_store_their_event_in_the_same_write(
    store: MetadataStore,
) -> None:
    with_pipeline(store)

    def queued(run: Run) -> Event:
        return make_event("run.queued", pipeline="churn", run_id=run.id, version=None)

    stored, created = store.create_run(make_run(), event=queued)
    again, created_again = store.create_run(make_run(), event=queued)
    assert created and not created_again and again == stored
    started = make_event("run.started", pipeline="churn", run_id=stored.id, version=None)
    store.update_run(replace(stored, status="running", epoch=1), expected_epoch=0, event=started)
    with pytest.raises(ConcurrencyError):  # a lost compare-and-set stores no event either
        store.update_run(replace(stored, epoch=9), expected_epoch=0, event=started)
    assert [(e.kind, e.run_id) for e in store.list_events()] == [
        ("run.queued", stored.id),
        ("run.started", stored.id),
    ]


def test_put_state_stores_its_event_in_the_same_write(store: MetadataStore) -> None:
    with_pipeline(store)
    fired = make_event("trigger.fired", pipeline="churn", version=None)
    store.put_state("churn", "policy", {"n": 1}, at=T0, expected_revision=None, event=fired)
    with pytest.raises(ConcurrencyError):
        store.put_state("churn", "policy", {"n": 2}, at=T0, expected_revision=None, event=fired)
    assert [e.kind for e in store.list_events()] == ["trigger.fired"]


# -- model versions ------------------------------------------------------------------------------


def test_register_version_round_trips_every_field(store: MetadataStore) -> None:
    with_pipeline(store)
    run, _ = store.create_run(make_run())
    draft = make_draft(run_id=run.id, version=99)
    stored = store.register_version(draft)

    assert stored.version == 1  # draft.version is ignored
    assert stored.snapshot.id is not None
    assert stored == replace(
        draft, version=1, snapshot=replace(draft.snapshot, id=stored.snapshot.id)
    )
    assert store.get_version("churn", 1) == stored
    assert store.list_versions("churn") == [stored]
    assert store.get_snapshot(stored.snapshot.id) == stored.snapshot
    # the nested records survive whole
    assert stored.blessing.evidence[1].slice == "plan=basic"
    assert stored.blessing.evidence[1].champion is None
    assert stored.code == CodeVersion(pipeline_hash="p" * 16, git_commit="c" * 40, git_dirty=False)


def test_list_versions_can_leave_the_profiles_out(store: MetadataStore) -> None:
    # listings (models list, status) read every version: the profiles are most of their bytes
    with_pipeline(store)
    stored = store.register_version(make_draft())
    assert stored.profile is not None
    assert store.list_versions("churn", profiles=False) == [replace(stored, profile=None)]
    assert store.list_versions("churn") == [stored]
    # one version too (the dashboard's overview reads each champion's metrics)
    assert store.get_version("churn", 1, profile=False) == replace(stored, profile=None)
    assert store.get_version("churn", 1) == stored


@pytest.mark.parametrize("passed", [True, False])
def test_register_version_keeps_the_verdict_and_no_profile(
    store: MetadataStore, passed: bool
) -> None:
    with_pipeline(store)
    draft = make_draft(
        blessing=make_verdict(passed),
        profile=None,
        code=CodeVersion(pipeline_hash="h"),
        environment={},
    )
    stored = store.register_version(draft)
    fetched = store.get_version("churn", stored.version)
    assert fetched.blessing == make_verdict(passed)
    assert fetched.profile is None
    assert fetched.code == CodeVersion(pipeline_hash="h")


def test_register_version_reuses_a_stored_snapshot(store: MetadataStore) -> None:
    with_pipeline(store)
    snap = store.add_snapshot(make_snapshot())
    first = store.register_version(make_draft(snapshot=snap))
    second = store.register_version(make_draft(snapshot=snap))
    assert first.snapshot == second.snapshot == snap


def test_versions_are_numbered_per_pipeline(store: MetadataStore) -> None:
    with_pipeline(store, "churn", "ctr")
    assert register(store, 3, "churn") == [1, 2, 3]
    assert register(store, 2, "ctr") == [1, 2]
    assert register(store, 1, "churn") == [4]
    assert [v.version for v in store.list_versions("churn")] == [1, 2, 3, 4]
    assert [v.version for v in store.list_versions("ctr")] == [1, 2]
    assert {v.pipeline for v in store.list_versions("ctr")} == {"ctr"}


def test_versions_never_collide_across_threads(store: MetadataStore) -> None:
    with_pipeline(store)
    got = in_threads(4, lambda: register(store, 5))
    assert sorted(v for versions in got for v in versions) == list(range(1, 21))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"pipeline": "nope", "snapshot": make_snapshot("nope")}, "nope"),
        ({"run_id": 999}, "999"),
        ({"snapshot": replace(make_snapshot(), id=999)}, "999"),
    ],
    ids=["unknown-pipeline", "unknown-run", "unknown-snapshot"],
)
def test_register_version_refuses_unknown_references(
    store: MetadataStore, changes: dict[str, Any], match: str
) -> None:
    with_pipeline(store)
    with pytest.raises(ModelNotFoundError, match=match):
        store.register_version(make_draft(**changes), event=make_event(pipeline="churn"))
    assert store.list_versions("churn") == []
    assert store.list_events() == []


def test_register_version_stores_its_event_in_the_same_write(store: MetadataStore) -> None:
    with_pipeline(store)
    register(store, 1)
    event = make_event("registered", pipeline="churn", data={"sha": "a" * 8}, version=None)
    stored = store.register_version(make_draft(), event=event)
    [written] = store.list_events()
    assert written == replace(event, version=stored.version, id=written.id)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"params": {"when": T0}}, r"ModelVersion\.params must hold only JSON values"),
        ({"environment": ["numpy"]}, r"ModelVersion\.environment must be a dict"),
        ({"profile": {"bins": {1, 2}}}, r"ModelVersion\.profile must hold only JSON values"),
    ],
)
def test_a_version_field_that_is_not_json_is_named(
    store: MetadataStore, changes: dict[str, Any], message: str
) -> None:
    with_pipeline(store)
    with pytest.raises(TypeError, match=message):
        store.register_version(make_draft(**changes))
    assert store.list_versions("churn") == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"timings": {"load": T0}}, r"Run\.timings must hold only JSON values"),
        ({"metrics": [0.5]}, r"Run\.metrics must be a dict"),
    ],
)
def test_a_run_field_that_is_not_json_is_named(
    store: MetadataStore, changes: dict[str, Any], message: str
) -> None:
    with_pipeline(store)
    with pytest.raises(TypeError, match=message):
        store.create_run(make_run(**changes))
    assert store.list_runs("churn") == []


def test_register_version_writes_nothing_when_its_event_is_invalid(store: MetadataStore) -> None:
    with_pipeline(store)
    bad = make_event(data={"when": datetime(2024, 1, 1)})  # not a JSON value
    with pytest.raises(TypeError, match=r"Event\.data"):
        store.register_version(make_draft(), event=bad)
    assert store.list_versions("churn") == []
    assert store.list_events() == []
    assert register(store, 1) == [1]


def test_unknown_versions_and_pipelines_raise(store: MetadataStore) -> None:
    with_pipeline(store)
    register(store, 2)
    with pytest.raises(ModelNotFoundError, match="version 3"):
        store.get_version("churn", 3)
    with pytest.raises(ModelNotFoundError, match="nope"):
        store.get_version("nope", 1)


# -- aliases -------------------------------------------------------------------------------------


def test_move_alias_records_the_previous_version(store: MetadataStore) -> None:
    with_pipeline(store)
    register(store, 3)
    first = move(store, "champion", 1, T0)
    assert (first.version, first.previous, first.alias, first.pipeline) == (
        1,
        None,
        "champion",
        "churn",
    )
    assert (first.reason, first.actor, first.at) == ("test", "tester", T0)
    assert first.id is not None

    second = move(store, "champion", 3, T0 + timedelta(hours=1))
    assert (second.version, second.previous) == (3, 1)
    assert store.get_alias("churn", "champion") == 3
    assert store.alias_history("churn", "champion") == [first, second]


def test_aliases_lists_current_aliases_only(store: MetadataStore) -> None:
    with_pipeline(store)
    register(store, 3)
    assert store.aliases("churn") == {}
    assert store.get_alias("churn", "champion") is None
    move(store, "champion", 1, T0)
    move(store, "challenger", 2, T0)
    move(store, "champion", 2, T0 + timedelta(hours=1))
    move(store, "shadow", 3, T0)
    move(store, "shadow", None, T0 + timedelta(hours=2))  # cleared
    assert store.aliases("churn") == {"challenger": 2, "champion": 2}
    assert store.get_alias("churn", "shadow") is None


def test_alias_history_is_append_only_and_oldest_first(store: MetadataStore) -> None:
    with_pipeline(store, "churn", "ctr")
    register(store, 2)
    register(store, 1, "ctr")
    moves = [
        move(store, "champion", 1, T0),
        move(store, "challenger", 2, T0 + timedelta(minutes=1)),
        move(store, "champion", 2, T0 + timedelta(minutes=2)),
        move(store, "champion", None, T0 + timedelta(minutes=3)),
    ]
    store.move_alias("ctr", "champion", 1, at=T0, reason="r", actor="a")
    assert store.alias_history("churn") == moves
    assert store.alias_history("churn", "champion") == [moves[0], moves[2], moves[3]]
    assert store.alias_history("churn", "never") == []
    ids = [m.id or 0 for m in store.alias_history("churn")]
    assert ids == sorted(ids)
    # the newest few, still oldest first (the dashboard reads each champion's last move)
    assert store.alias_history("churn", "champion", limit=2) == [moves[2], moves[3]]
    assert store.alias_history("churn", limit=1) == [moves[3]]
    assert store.alias_history("churn", limit=0) == []
    assert store.alias_history("churn", "champion", limit=10) == [moves[0], moves[2], moves[3]]


def test_alias_at_answers_which_version_served_when(store: MetadataStore) -> None:
    with_pipeline(store)
    register(store, 2)
    move(store, "champion", 1, T0)
    move(store, "champion", 2, T0 + timedelta(days=1))
    move(store, "champion", None, T0 + timedelta(days=2))

    assert store.alias_at("churn", "champion", T0 - timedelta(seconds=1)) is None
    assert store.alias_at("churn", "champion", T0) == 1
    assert store.alias_at("churn", "champion", T0 + timedelta(hours=12)) == 1
    assert store.alias_at("churn", "champion", T0 + timedelta(days=1)) == 2
    assert store.alias_at("churn", "champion", T0 + timedelta(days=3)) is None
    assert store.alias_at("churn", "other", T0 + timedelta(days=1)) is None
    # naive and non-UTC times mean the same instants
    assert store.alias_at("churn", "champion", datetime(2024, 5, 2, 12)) == 2
    plus2 = timezone(timedelta(hours=2))
    assert store.alias_at("churn", "champion", datetime(2024, 5, 2, 13, 59, tzinfo=plus2)) == 1


def test_alias_heads_are_each_pipelines_last_move_in_one_read(store: MetadataStore) -> None:
    with_pipeline(store, "churn", "ctr", "fresh")
    register(store, 2)
    register(store, 1, "ctr")
    move(store, "champion", 1, T0)
    move(store, "challenger", 2, T0 + timedelta(minutes=1))
    move(store, "champion", 2, T0 + timedelta(minutes=2))
    store.move_alias("ctr", "champion", 1, at=T0, reason="r", actor="a")
    store.move_alias("ctr", "champion", None, at=T0 + timedelta(hours=1), reason="r", actor="a")
    heads = store.alias_heads("champion")
    # what alias_history(limit=1) gives each pipeline; a cleared alias's head has no version
    assert heads == {p: store.alias_history(p, "champion", limit=1)[0] for p in ("churn", "ctr")}
    assert heads["churn"].version == 2
    assert heads["ctr"].version is None
    assert "fresh" not in heads  # never moved
    assert store.alias_heads("challenger") == {
        "churn": store.alias_history("churn", "challenger")[-1]
    }
    assert store.alias_heads("never") == {}
    # narrowed to some pipelines, unknown names finding nothing
    assert store.alias_heads("champion", ["ctr", "nope", "fresh"]) == {"ctr": heads["ctr"]}
    assert store.alias_heads("champion", []) == {}


def test_alias_heads_narrowed_to_many_pipelines(store: MetadataStore) -> None:
    # more names than one statement binds (SQLite's old limit: 999 parameters)
    names = [f"p{i:04d}" for i in range(1100)]
    with_pipeline(store, "churn")
    register(store, 1)
    move(store, "champion", 1, T0)
    heads = store.alias_heads("champion", [*names, "churn"])
    assert list(heads) == ["churn"]
    assert store.get_states(["k"], [*names, "churn"]) == {}


@pytest.mark.parametrize(
    ("expected", "wins"),
    [(ANY, True), (1, True), (None, False), (2, False)],
)
def test_move_alias_compare_and_set(store: MetadataStore, expected: Any, wins: bool) -> None:
    with_pipeline(store)
    register(store, 3)
    move(store, "champion", 1, T0)
    before = store.alias_history("churn")
    event = make_event("promoted", pipeline="churn", version=3)
    if wins:
        done = move(store, "champion", 3, T0 + timedelta(hours=1), expected=expected, event=event)
        assert (done.version, done.previous) == (3, 1)
        assert store.get_alias("churn", "champion") == 3
        assert [e.kind for e in store.list_events()] == ["promoted"]
    else:
        with pytest.raises(ConcurrencyError, match="champion"):
            move(store, "champion", 3, T0 + timedelta(hours=1), expected=expected, event=event)
        assert store.alias_history("churn") == before
        assert store.get_alias("churn", "champion") == 1
        assert store.list_events() == []


def test_move_alias_expected_none_means_unset(store: MetadataStore) -> None:
    with_pipeline(store)
    register(store, 2)
    assert move(store, "champion", 1, T0, expected=None).version == 1
    with pytest.raises(ConcurrencyError):
        move(store, "champion", 2, T0, expected=None)
    move(store, "champion", None, T0, expected=1)
    assert move(store, "champion", 2, T0, expected=None).previous is None


def test_move_alias_stores_its_event_with_the_move(store: MetadataStore) -> None:
    with_pipeline(store)
    register(store, 1)
    event = make_event("promoted", pipeline="churn", version=1, data={"by": "gate"})
    moved = move(store, "champion", 1, T0, event=event)
    [written] = store.list_events()
    assert written == replace(event, id=written.id)
    assert store.alias_history("churn") == [moved]


@pytest.mark.parametrize(
    ("pipeline", "version"), [("churn", 5), ("nope", 1)], ids=["version", "pipeline"]
)
def test_move_alias_to_unknown_things_changes_nothing(
    store: MetadataStore, pipeline: str, version: int
) -> None:
    with_pipeline(store)
    register(store, 1)
    with pytest.raises(ModelNotFoundError):
        store.move_alias(
            pipeline, "champion", version, at=T0, reason="r", actor="a", event=make_event()
        )
    assert store.alias_history("churn") == []
    assert store.list_events() == []


def test_reads_of_an_unknown_pipeline_find_nothing(store: MetadataStore) -> None:
    # A configured pipeline that never ran is not an error for `retrainer status`.
    assert store.list_versions("nope") == []
    assert store.aliases("nope") == {}
    assert store.get_alias("nope", "champion") is None
    assert store.alias_history("nope") == []
    assert store.alias_at("nope", "champion", T0) is None
    assert store.list_runs(pipeline="nope") == []
    assert store.list_events(pipeline="nope") == []
    assert store.list_monitor_results("nope") == []
    assert store.get_state("nope", "adwin") is None
    assert store.list_state("nope") == {}


# -- events --------------------------------------------------------------------------------------


def test_append_event_round_trips(store: MetadataStore) -> None:
    event = make_event(
        "blessed",
        pipeline="churn",
        run_id=7,
        version=3,
        data={"evidence": [{"metric": "auc", "delta": 0.02}], "ok": True, "none": None},
    )
    stored = store.append_event(event)
    assert stored.id is not None
    assert stored == replace(event, id=stored.id)
    assert store.list_events() == [stored]
    assert store.append_event(make_event()).id != stored.id


def test_list_events_filters_and_keeps_the_most_recent(store: MetadataStore) -> None:
    made = [
        store.append_event(make_event("a", T0, pipeline="churn")),
        store.append_event(make_event("b", T0 + timedelta(hours=1), pipeline="ctr")),
        store.append_event(make_event("a", T0 + timedelta(hours=2), pipeline="churn")),
        store.append_event(make_event("c", T0 + timedelta(hours=3))),
        store.append_event(make_event("b", T0 + timedelta(hours=4), pipeline="churn")),
    ]
    assert store.list_events() == made
    assert store.list_events(pipeline="churn") == [made[0], made[2], made[4]]
    assert store.list_events(since=T0 + timedelta(hours=2)) == made[2:]
    assert store.list_events(kinds=["a", "c"]) == [made[0], made[2], made[3]]
    assert store.list_events(kinds=[]) == []
    assert store.list_events(limit=2) == made[3:]
    assert store.list_events(limit=10) == made
    assert store.list_events(limit=0) == []
    assert store.list_events(pipeline="churn", kinds=["a", "b"], limit=2) == [made[2], made[4]]
    assert store.list_events(pipeline="unknown") == []


def test_list_events_until_keeps_the_events_at_or_before_it(store: MetadataStore) -> None:
    made = [
        store.append_event(make_event("a", T0 + timedelta(hours=h), pipeline="churn"))
        for h in range(5)
    ]
    assert store.list_events(until=T0 + timedelta(hours=2)) == made[:3]
    assert store.list_events(until=T0 - timedelta(seconds=1)) == []
    assert (
        store.list_events(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=3))
        == (made[1:4])
    )
    # with a limit: the most recent of those at or before ``until``
    assert store.list_events(until=T0 + timedelta(hours=3), limit=2) == made[2:4]
    # the same instant in another time zone
    plus_two = timezone(timedelta(hours=2))
    assert store.list_events(until=(T0 + timedelta(hours=1)).astimezone(plus_two)) == made[:2]


def test_list_events_pages_with_a_before_cursor(store: MetadataStore) -> None:
    made = [
        store.append_event(
            make_event("a" if i % 3 else "b", T0 + timedelta(minutes=i), pipeline="churn")
        )
        if i % 2
        else store.append_event(make_event("a", T0 + timedelta(minutes=i), pipeline="ctr"))
        for i in range(12)
    ]
    ids = [e.id or 0 for e in made]

    assert store.list_events(before=ids[5]) == made[:5]
    assert store.list_events(before=ids[5], limit=2) == made[3:5]
    assert store.list_events(before=ids[0]) == []
    assert store.list_events(before=ids[-1] + 100) == made
    assert store.list_events(before=ids[5], limit=0) == []
    assert store.list_events(pipeline="churn", before=ids[7]) == [made[1], made[3], made[5]]
    assert store.list_events(kinds=["b"], before=ids[9], limit=5) == [made[3]]
    assert store.list_events(before=ids[8], until=T0 + timedelta(minutes=4)) == made[:5]
    assert store.list_events(before=ids[8], since=T0 + timedelta(minutes=6)) == made[6:8]

    # the dashboard's "older" link: the next page is before the oldest id shown; every
    # event comes once, and the pages put back together are the whole trail
    pages, cursor = [], None
    while page := store.list_events(pipeline="churn", kinds=["a"], limit=2, before=cursor):
        pages.append(page)
        cursor = page[0].id
    assert [len(p) for p in pages] == [2, 2]
    assert [e for p in reversed(pages) for e in p] == store.list_events(
        pipeline="churn", kinds=["a"]
    )


def test_list_events_every_filter_combination_agrees_with_filtering_the_trail(
    store: MetadataStore,
) -> None:
    # times out of id order (a backtest records simulated times), kinds common and rare
    rng = random.Random(18)
    for _ in range(60):
        store.append_event(
            make_event(
                rng.choice(["a", "a", "a", "b", "c"]),
                T0 + timedelta(minutes=rng.randrange(60)),
                pipeline=rng.choice(["churn", "ctr", None]),
            )
        )
    trail = store.list_events()
    ids = [e.id or 0 for e in trail]
    for pipeline, kinds, since, until, before, limit in itertools.product(
        [None, "churn"],
        [None, ["a"], ["b", "c"], ["c", "a", "b"], ["b", "b"], []],
        [None, T0 + timedelta(minutes=20)],
        [None, T0 + timedelta(minutes=40)],
        [None, ids[40]],
        [None, 0, 3, 100],
    ):
        kept = [
            e
            for e in trail
            if (pipeline is None or e.pipeline == pipeline)
            and (kinds is None or e.kind in kinds)
            and (since is None or e.at >= since)
            and (until is None or e.at <= until)
            and (before is None or (e.id or 0) < before)
        ]
        expected = kept if limit is None else kept[max(len(kept) - limit, 0) :] if limit else []
        got = store.list_events(pipeline, since, kinds, limit, until=until, before=before)
        assert got == expected, (pipeline, kinds, since, until, before, limit)


@pytest.mark.parametrize(
    ("method", "names"), [("list_events", ["until", "before"]), ("list_runs", ["before"])]
)
def test_the_new_list_arguments_are_keyword_only(
    store: MetadataStore, method: str, names: list[str]
) -> None:
    # positional calls written for the older signatures keep their meaning
    parameters = inspect.signature(getattr(store, method)).parameters
    assert [parameters[n].kind for n in names] == [inspect.Parameter.KEYWORD_ONLY] * len(names)
    assert all(parameters[n].default is None for n in names)


# -- stored state is the store's own -------------------------------------------------------------


def test_mutating_inputs_or_outputs_never_changes_stored_state(store: MetadataStore) -> None:
    with_pipeline(store)
    run = make_run()
    stored, _ = store.create_run(run)
    run.params["model"]["max_depth"] = 99
    run.evidence.clear()
    stored.metrics["auc"] = 0.0
    fetched = store.get_run(stored.id or 0)
    fetched.params["model"]["features"].append("extra")
    assert store.get_run(stored.id or 0) == make_run(id=stored.id)

    draft = make_draft()
    version = store.register_version(draft)
    draft.metrics["auc"] = 0.0
    draft.snapshot.schema["new"] = "int64"
    assert draft.profile is not None
    draft.profile["features"]["age"]["hist"].append(4)
    version.environment["python"] = "2.7"
    store.get_version("churn", 1).params["max_depth"] = 1
    assert store.get_version("churn", 1) == replace(
        make_draft(), version=1, snapshot=replace(make_snapshot(), id=version.snapshot.id)
    )

    event = make_event(data={"list": [1, 2]})
    stored_event = store.append_event(event)
    event.data["list"].append(3)
    stored_event.data["list"].append(4)
    store.list_events()[0].data["list"].append(5)
    assert store.list_events()[0].data == {"list": [1, 2]}

    summary: dict[str, Any] = {"psi": [0.1]}
    record = store.add_monitor_result(make_monitor(summary=summary))
    summary["psi"].append(0.2)
    record.summary["psi"].append(0.3)
    store.list_monitor_results("churn")[0].summary["psi"].append(0.4)
    assert store.list_monitor_results("churn")[0].summary == {"psi": [0.1]}

    value: dict[str, Any] = {"window": [1.0]}
    store.put_state("churn", "adwin", value, at=T0)
    value["window"].append(2.0)
    got = store.get_state("churn", "adwin")
    assert got is not None
    got[0]["window"].append(3.0)
    store.list_state("churn")["adwin"]["window"].append(4.0)
    assert store.get_state("churn", "adwin") == ({"window": [1.0]}, 1)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.create_run(make_run(params={"when": datetime(2024, 1, 1)})),
        lambda s: s.create_run(make_run(metrics={"auc": object()})),
        lambda s: s.append_event(make_event(data={"x": {1, 2}})),
        lambda s: s.register_version(make_draft(environment={"python": b"3.11"})),
    ],
    ids=["datetime", "object", "set", "bytes"],
)
def test_dicts_must_hold_json_values(store: MetadataStore, call: Any) -> None:
    with_pipeline(store)
    with pytest.raises(TypeError, match="JSON"):
        call(store)
    assert store.list_runs() == []
    assert store.list_events() == []
    assert store.list_versions("churn") == []


def test_dicts_come_back_as_json_would_give_them(store: MetadataStore) -> None:
    with_pipeline(store)
    stored, _ = store.create_run(make_run(params={"pair": (1, 2), "ids": {3: "c"}}))
    assert stored.params == {"pair": [1, 2], "ids": {"3": "c"}}
    assert store.get_run(stored.id or 0).params == stored.params


# -- monitoring ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [{}, {"version": 1, "drifted": True}, {"drifted": None, "summary": {}}],
    ids=["no-version", "version", "undecided"],
)
def test_monitor_result_round_trips(store: MetadataStore, changes: dict[str, Any]) -> None:
    with_pipeline(store)
    register(store, 1)
    record = make_monitor(**changes)
    stored = store.add_monitor_result(record)
    assert stored.id is not None
    assert stored == replace(record, id=stored.id)
    assert store.list_monitor_results("churn") == [stored]


def test_monitor_result_times_are_aware_utc(store: MetadataStore) -> None:
    with_pipeline(store)
    plus2 = timezone(timedelta(hours=2))
    record = make_monitor(
        window_start=datetime(2024, 5, 1, 11),  # naive: UTC
        window_end=datetime(2024, 5, 1, 14, tzinfo=plus2),
        created_at=datetime(2024, 5, 1, 14, 1, tzinfo=plus2),
    )
    stored = store.add_monitor_result(record)
    [fetched] = store.list_monitor_results("churn")
    for got in (stored, fetched):
        assert got.window_start == T0 - timedelta(hours=1)
        assert got.window_end == T0
        assert got.created_at == T0 + timedelta(minutes=1)
        assert got.window_end.utcoffset() == timedelta(0)


def test_monitor_results_order_filters_and_limit(store: MetadataStore) -> None:
    with_pipeline(store, "churn", "ctr")
    # added out of order; two windows end at T0 + 2h (ties go by id)
    ends = [2, 0, 1, 2, 3]
    made = [store.add_monitor_result(make_monitor(end=T0 + timedelta(hours=h))) for h in ends]
    store.add_monitor_result(make_monitor("ctr", end=T0))
    wide = store.add_monitor_result(make_monitor(end=T0 + timedelta(hours=3), hours=3))
    by_time = [made[1], made[2], made[0], made[3], made[4], wide]

    assert store.list_monitor_results("churn") == by_time
    assert store.list_monitor_results("churn", limit=2) == by_time[-2:]
    assert store.list_monitor_results("churn", limit=0) == []
    assert store.list_monitor_results("churn", limit=100) == by_time
    # windows inside [since, until]; the 3-hour window starts at T0 and ends at T0 + 3h
    assert store.list_monitor_results("churn", since=T0 + timedelta(hours=1)) == by_time[2:5]
    assert store.list_monitor_results("churn", until=T0 + timedelta(hours=1)) == by_time[:2]
    assert store.list_monitor_results(
        "churn", since=T0, until=T0 + timedelta(hours=2), limit=2
    ) == [made[0], made[3]]
    naive = datetime(2024, 5, 1, 14)  # T0 + 2h, taken as UTC
    assert store.list_monitor_results("churn", until=naive) == by_time[:4]
    assert [r.pipeline for r in store.list_monitor_results("ctr")] == ["ctr"]


def test_add_monitor_result_stores_its_event_in_the_same_write(store: MetadataStore) -> None:
    with_pipeline(store)
    event = make_event("drift_detected", pipeline="churn", data={"share": 0.4})
    store.add_monitor_result(make_monitor(drifted=True), event=event)
    [written] = store.list_events()
    assert written == replace(event, id=written.id)


@pytest.mark.parametrize(
    ("record", "event", "error"),
    [
        (make_monitor("nope"), make_event(), ModelNotFoundError),
        (make_monitor(version=2), make_event(), ModelNotFoundError),
        (make_monitor(), make_event(data={"when": T0}), TypeError),
        (make_monitor(summary={"when": T0}), make_event(), TypeError),
        (make_monitor(window_start=T0 + timedelta(seconds=1)), make_event(), ValueError),
    ],
    ids=["unknown-pipeline", "unknown-version", "bad-event", "bad-summary", "window-backwards"],
)
def test_add_monitor_result_refuses_and_writes_nothing(
    store: MetadataStore, record: MonitorRecord, event: Event, error: type[Exception]
) -> None:
    with_pipeline(store)
    register(store, 1)
    with pytest.raises(error):
        store.add_monitor_result(record, event=event)
    assert store.list_monitor_results("churn") == []
    assert store.list_events() == []


# -- state ---------------------------------------------------------------------------------------


def test_state_revisions_start_at_one_and_count_up(store: MetadataStore) -> None:
    with_pipeline(store)
    assert store.get_state("churn", "ddm") is None
    assert store.put_state("churn", "ddm", {"n": 1, "p": [0.5]}, at=T0) == 1
    assert store.get_state("churn", "ddm") == ({"n": 1, "p": [0.5]}, 1)
    assert store.put_state("churn", "ddm", {"n": 2}, at=T0, expected_revision=1) == 2
    assert store.put_state("churn", "ddm", {"n": 3}, at=T0) == 3  # ANY: no check
    assert store.get_state("churn", "ddm") == ({"n": 3}, 3)
    assert store.put_state("churn", "cron", {}, at=T0, expected_revision=None) == 1


@pytest.mark.parametrize("expected", [None, 1, 3], ids=["must-not-exist", "stale", "ahead"])
def test_put_state_compare_and_set_failure_changes_nothing(
    store: MetadataStore, expected: int | None
) -> None:
    with_pipeline(store)
    store.put_state("churn", "ddm", {"n": 1}, at=T0)
    store.put_state("churn", "ddm", {"n": 2}, at=T0)
    with pytest.raises(ConcurrencyError, match="ddm"):
        store.put_state("churn", "ddm", {"n": 99}, at=T0, expected_revision=expected)
    assert store.get_state("churn", "ddm") == ({"n": 2}, 2)
    assert store.list_state("churn") == {"ddm": {"n": 2}}


def test_put_state_expecting_a_revision_of_a_missing_key_fails(store: MetadataStore) -> None:
    with_pipeline(store)
    with pytest.raises(ConcurrencyError, match="does not exist"):
        store.put_state("churn", "ddm", {"n": 1}, at=T0, expected_revision=1)
    assert store.get_state("churn", "ddm") is None
    assert store.list_state("churn") == {}


def test_state_is_per_pipeline_and_listed_by_key(store: MetadataStore) -> None:
    with_pipeline(store, "churn", "ctr")
    store.put_state("churn", "trigger:cron", {"last": "2024-05-01"}, at=T0)
    store.put_state("churn", "detector:adwin", {"width": 30}, at=T0)
    store.put_state("ctr", "detector:adwin", {"width": 7}, at=T0)
    listed = store.list_state("churn")
    assert listed == {"detector:adwin": {"width": 30}, "trigger:cron": {"last": "2024-05-01"}}
    assert list(listed) == ["detector:adwin", "trigger:cron"]
    assert store.list_state("ctr") == {"detector:adwin": {"width": 7}}
    assert store.get_state("ctr", "trigger:cron") is None


def test_get_states_reads_every_pipelines_keys_at_once(store: MetadataStore) -> None:
    with_pipeline(store, "churn", "ctr", "fresh")
    store.put_state("churn", "trigger", {"last": "2024-05-01"}, at=T0)
    store.put_state("churn", "trigger", {"last": "2024-05-02"}, at=T0)
    store.put_state("churn", "manual", {"requests": []}, at=T0)
    store.put_state("churn", "other", {"x": 1}, at=T0)
    store.put_state("ctr", "trigger", {"armed": True}, at=T0)
    keys = ["trigger", "manual", "rollout"]
    states = store.get_states(keys)
    # each value is what get_state returns for its pair; pairs with nothing stored are left out
    assert states == {
        p: {k: store.get_state(p, k) for k in keys if store.get_state(p, k) is not None}
        for p in ("churn", "ctr")
    }
    assert states["churn"]["trigger"] == ({"last": "2024-05-02"}, 2)
    assert store.get_states(keys, ["ctr", "nope"]) == {"ctr": {"trigger": ({"armed": True}, 1)}}
    assert store.get_states(keys, []) == {}
    assert store.get_states([]) == {}
    # copied out: changing what came back changes nothing stored
    states["churn"]["trigger"][0]["last"] = "changed"
    assert store.get_state("churn", "trigger") == ({"last": "2024-05-02"}, 2)


@pytest.mark.parametrize(
    ("pipeline", "key", "value", "error"),
    [
        ("nope", "k", {}, ModelNotFoundError),
        ("churn", "", {}, ValueError),
        ("churn", "k" * 256, {}, ValueError),
        ("churn", "k", [1, 2], TypeError),
        ("churn", "k", {"when": T0}, TypeError),
    ],
    ids=["unknown-pipeline", "empty-key", "long-key", "not-a-dict", "not-json"],
)
def test_put_state_refuses_bad_input(
    store: MetadataStore, pipeline: str, key: str, value: Any, error: type[Exception]
) -> None:
    with_pipeline(store)
    with pytest.raises(error):
        store.put_state(pipeline, key, value, at=T0)
    assert store.list_state("churn") == {}


def test_put_state_race_has_exactly_one_winner(store: MetadataStore) -> None:
    with_pipeline(store)
    store.put_state("churn", "ddm", {"writer": None}, at=T0)
    names = iter(range(100))
    lock = threading.Lock()

    def write() -> str:
        with lock:
            name = f"w{next(names)}"
        try:
            store.put_state("churn", "ddm", {"writer": name}, at=T0, expected_revision=1)
        except ConcurrencyError:
            return "lost"
        return name

    results = in_threads(5, write)
    [winner] = [r for r in results if r != "lost"]
    assert results.count("lost") == 4
    assert store.get_state("churn", "ddm") == ({"writer": winner}, 2)


def test_first_put_state_race_has_exactly_one_winner(store: MetadataStore) -> None:
    with_pipeline(store)
    results = in_threads(
        4,
        lambda: _try(lambda: store.put_state("churn", "new", {}, at=T0, expected_revision=None)),
    )
    assert sorted(results, key=str) == [1, "lost", "lost", "lost"]
    assert store.get_state("churn", "new") == ({}, 1)


def _try(write: Callable[[], int]) -> int | str:
    try:
        return write()
    except ConcurrencyError:
        return "lost"


# -- NaN and infinities in JSON ------------------------------------------------------------------


def _same(got: Any, expected: Any) -> bool:
    """Equality where NaN equals NaN."""
    if isinstance(got, float) and isinstance(expected, float):
        return got == expected or (math.isnan(got) and math.isnan(expected))
    if isinstance(got, dict) and isinstance(expected, dict):
        return got.keys() == expected.keys() and all(_same(got[k], expected[k]) for k in got)
    return bool(got == expected)


NON_FINITE_METRICS = {"auc": float("nan"), "lift": float("inf"), "loss": -math.inf, "n": None}
AS_STORED = {"auc": math.nan, "lift": math.nan, "loss": math.nan, "n": math.nan}


def test_non_finite_version_metrics_come_back_as_nan(store: MetadataStore) -> None:
    with_pipeline(store)
    metrics = {**NON_FINITE_METRICS, "acc": 0.5}
    expected = {**AS_STORED, "acc": 0.5}
    stored = store.register_version(make_draft(metrics=metrics))
    for got in (stored, store.get_version("churn", 1), store.list_versions("churn")[0]):
        assert _same(got.metrics, expected), got.metrics
        assert all(isinstance(v, float) for v in got.metrics.values())


def test_non_finite_run_metrics_come_back_as_nan(store: MetadataStore) -> None:
    with_pipeline(store)
    created, _ = store.create_run(make_run(metrics=NON_FINITE_METRICS))
    assert _same(created.metrics, AS_STORED)
    assert _same(store.get_run(created.id or 0).metrics, AS_STORED)
    updated = store.update_run(replace(created, metrics={"auc": math.nan, "acc": 0.75}))
    for got in (updated, store.get_run(created.id or 0), store.list_runs()[0]):
        assert _same(got.metrics, {"auc": math.nan, "acc": 0.75}), got.metrics


def test_non_finite_floats_elsewhere_are_stored_as_null(store: MetadataStore) -> None:
    with_pipeline(store)
    nan, inf = float("nan"), float("inf")
    run, _ = store.create_run(
        make_run(params={"alpha": nan, "grid": [1.0, inf]}, timings={"train": -inf})
    )
    verdict = Verdict(
        passed=False,
        evidence=(
            EvidenceRow(
                rule="min_improvement",
                metric="auc",
                candidate=nan,
                champion=None,
                delta=nan,
                threshold=">= 0.005",
                passed=False,
            ),
        ),
    )
    store.register_version(
        make_draft(params={"alpha": nan}, profile={"age": {"mean": nan}}, blessing=verdict)
    )
    store.append_event(make_event(data={"p_value": nan, "nested": {"x": [inf, 1]}}))
    store.add_monitor_result(make_monitor(summary={"psi": nan, "ks": [inf, 0.1]}))
    store.put_state("churn", "ddm", {"mean": nan, "n": 3}, at=T0)

    got_run = store.get_run(run.id or 0)
    assert got_run.params == {"alpha": None, "grid": [1.0, None]}
    assert got_run.timings == {"train": None}
    version = store.get_version("churn", 1)
    assert version.params == {"alpha": None}
    assert version.profile == {"age": {"mean": None}}
    [row] = version.blessing.evidence
    assert (row.candidate, row.champion, row.delta) == (None, None, None)
    assert store.list_events()[0].data == {"p_value": None, "nested": {"x": [None, 1]}}
    assert store.list_monitor_results("churn")[0].summary == {"psi": None, "ks": [None, 0.1]}
    assert store.get_state("churn", "ddm") == ({"mean": None, "n": 3}, 1)


def test_evidence_rows_with_none_stay_none(store: MetadataStore) -> None:
    with_pipeline(store)
    stored = store.register_version(make_draft())
    row = store.get_version("churn", stored.version).blessing.evidence[1]
    assert (row.champion, row.delta) == (None, None)
    assert row.candidate == 0.7


# -- tokens --------------------------------------------------------------------------------------


def make_token(token_id: str = "0123456789ab", **changes: Any) -> TokenRecord:
    fields: dict[str, Any] = {
        "id": token_id,
        "name": "checkout-service",
        "scopes": ("predict", "feedback"),
        "secret_sha256": "a" * 64,
        "created_at": T0,
    }
    fields.update(changes)
    return TokenRecord(**fields)


def test_a_token_round_trips_with_aware_utc_times(store: MetadataStore) -> None:
    plus_two = timezone(timedelta(hours=2))
    added = store.add_token(make_token(created_at=T0.astimezone(plus_two), scopes=["read"]))
    assert added == make_token(scopes=("read",))
    got = store.get_token("0123456789ab")
    assert got == added
    assert got is not None and got.created_at.tzinfo is not None
    assert got.created_at.utcoffset() == timedelta(0)
    assert got.revoked_at is None and got.last_used_at is None
    assert store.get_token("ffffffffffff") is None


def test_tokens_are_listed_oldest_first_revoked_ones_too(store: MetadataStore) -> None:
    store.add_token(make_token("cccccccccccc", created_at=T0 + timedelta(minutes=1)))
    store.add_token(make_token("bbbbbbbbbbbb", created_at=T0))
    store.add_token(make_token("aaaaaaaaaaaa", created_at=T0 + timedelta(minutes=1)))
    store.revoke_token("bbbbbbbbbbbb", at=T0 + timedelta(hours=1))
    assert [t.id for t in store.list_tokens()] == ["bbbbbbbbbbbb", "aaaaaaaaaaaa", "cccccccccccc"]
    assert [t.revoked_at is not None for t in store.list_tokens()] == [True, False, False]


def test_add_token_refuses_a_duplicate_id_and_writes_nothing(store: MetadataStore) -> None:
    store.add_token(make_token(name="first"))
    event = Event(kind="token.created", at=T0, message="again")
    with pytest.raises(ValueError, match="'0123456789ab' already exists"):
        store.add_token(make_token(name="second"), event)
    assert [t.name for t in store.list_tokens()] == ["first"]
    assert store.list_events() == []


@pytest.mark.parametrize(
    "changes",
    [
        {"id": ""},
        {"id": "x" * 65},
        {"name": ""},
        {"secret_sha256": "rt_0123456789ab_the-secret-itself"},
        {"secret_sha256": "A" * 64},
        {"scopes": "predict"},
        {"scopes": ("predict", 3)},
    ],
)
def test_add_token_refuses_bad_records(store: MetadataStore, changes: dict[str, Any]) -> None:
    with pytest.raises((ValueError, TypeError)) as caught:
        store.add_token(make_token(**changes))
    assert "the-secret-itself" not in str(caught.value)
    assert store.list_tokens() == []


def test_add_token_stores_its_event_in_the_same_write(store: MetadataStore) -> None:
    event = Event(kind="token.created", at=T0, message="made", data={"token_id": "0123456789ab"})
    store.add_token(make_token(), event)
    assert [(e.kind, e.data) for e in store.list_events()] == [
        ("token.created", {"token_id": "0123456789ab"})
    ]


def test_revoke_token_sets_revoked_at_once_with_its_event(store: MetadataStore) -> None:
    store.add_token(make_token())
    first = Event(kind="token.revoked", at=T0, message="first")
    revoked = store.revoke_token("0123456789ab", at=T0 + timedelta(hours=1), event=first)
    assert revoked.revoked_at == T0 + timedelta(hours=1)
    assert store.get_token("0123456789ab") == revoked
    again = Event(kind="token.revoked", at=T0, message="second")
    assert store.revoke_token("0123456789ab", at=T0 + timedelta(hours=2), event=again) == revoked
    assert [e.message for e in store.list_events()] == ["first"]


def test_revoke_token_of_an_unknown_id_names_it_and_changes_nothing(
    store: MetadataStore,
) -> None:
    store.add_token(make_token())
    event = Event(kind="token.revoked", at=T0, message="never")
    with pytest.raises(TokenNotFoundError, match="'ffffffffffff'") as caught:
        store.revoke_token("ffffffffffff", at=T0, event=event)
    assert isinstance(caught.value, LookupError)
    assert "'0123456789ab'" in str(caught.value)  # the known ids, to pick from
    assert store.list_events() == []
    assert store.list_tokens() == [make_token()]


def test_mark_token_used_is_a_guarded_write(store: MetadataStore) -> None:
    store.add_token(make_token())
    minute = timedelta(minutes=1)
    assert store.mark_token_used("0123456789ab", at=T0, if_before=T0 - minute)
    got = store.get_token("0123456789ab")
    assert got is not None and got.last_used_at == T0
    # used 30 s ago: not before the threshold, nothing written
    later = T0 + timedelta(seconds=30)
    assert not store.mark_token_used("0123456789ab", at=later, if_before=later - minute)
    got = store.get_token("0123456789ab")
    assert got is not None and got.last_used_at == T0
    much_later = T0 + timedelta(minutes=5)
    assert store.mark_token_used("0123456789ab", at=much_later, if_before=much_later - minute)
    got = store.get_token("0123456789ab")
    assert got is not None and got.last_used_at == much_later
    assert not store.mark_token_used("ffffffffffff", at=T0, if_before=T0)
    assert store.list_events() == []


def test_mark_token_used_race_writes_once(store: MetadataStore) -> None:
    store.add_token(make_token())
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def mark() -> None:
        barrier.wait()
        results.append(store.mark_token_used("0123456789ab", at=T0, if_before=T0))

    threads = [threading.Thread(target=mark) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, False, False, True]
