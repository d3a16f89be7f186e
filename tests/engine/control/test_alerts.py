"""The alerter: dedupe, rate limits, retries, the audit trail and state kept in the store."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from retrainer.adapters.metadata.memory import InMemoryMetadataStore
from retrainer.adapters.metadata.protocol import ANY
from retrainer.adapters.metadata.sql import SQLMetadataStore
from retrainer.adapters.notifiers import Alert, RecordingNotifier, WebhookNotifier
from retrainer.core.types import Event
from retrainer.engine.control.alerts import DEFAULT_SEVERITIES, STATE_KEY, Alerter
from retrainer.errors import ConfigError
from tests.adapters.test_notifiers import HTTPSink

NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def store() -> InMemoryMetadataStore:
    store = InMemoryMetadataStore()
    for name in ("churn", "fraud"):
        store.ensure_pipeline(name, "h", NOW)
    return store


@pytest.fixture
def http_sink() -> Iterator[HTTPSink]:
    with HTTPSink() as sink:
        yield sink


class Sleeps(list[float]):
    """An injected sleep that records the waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def event(kind: str = "run.failed", pipeline: str | None = "churn", **fields: Any) -> Event:
    fields.setdefault("at", NOW)
    fields.setdefault("message", f"{kind} happened")
    return Event(kind=kind, pipeline=pipeline, **fields)


def alert_events(store: InMemoryMetadataStore) -> list[Event]:
    return store.list_events(kinds=["alert.sent", "alert.suppressed", "alert.failed"])


# -- which events alert -----------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "severity"), sorted(DEFAULT_SEVERITIES.items()))
def test_default_kinds_alert_with_their_severity(store, kind, severity):
    rec = RecordingNotifier()
    [outcome] = Alerter(store, [rec]).handle([event(kind)], NOW)
    assert outcome.status == "sent"
    assert rec.alerts[0].kind == kind
    assert rec.alerts[0].severity == severity


@pytest.mark.parametrize("kind", ["run.started", "run.succeeded", "alert.sent", "alert.failed"])
def test_other_kinds_do_not_alert(store, kind):
    rec = RecordingNotifier()
    assert Alerter(store, [rec]).handle([event(kind)], NOW) == []
    assert rec.attempts == 0 and alert_events(store) == []


def test_alert_carries_the_event(store):
    source = store.append_event(
        event("blessing.rejected", run_id=4, version=2, data={"reason": "accuracy -0.08"})
    )
    rec = RecordingNotifier()
    [outcome] = Alerter(store, [rec]).handle([source], NOW + timedelta(minutes=5))
    assert rec.alerts == [
        Alert(
            kind="blessing.rejected",
            pipeline="churn",
            message="blessing.rejected happened",
            at=NOW,
            severity="warning",
            data={"reason": "accuracy -0.08"},
            dedupe_key="blessing.rejected|churn|v2|run4",
            version=2,
            run_id=4,
        )
    ]
    stored = outcome.event
    assert stored is not None and stored.id is not None
    assert (stored.kind, stored.at, stored.pipeline, stored.run_id, stored.version) == (
        "alert.sent",
        NOW + timedelta(minutes=5),
        "churn",
        4,
        2,
    )
    assert stored.data == {
        "status": "sent",
        "notifier": "recording",
        "alert_kind": "blessing.rejected",
        "severity": "warning",
        "dedupe_key": "blessing.rejected|churn|v2|run4",
        "attempts": 1,
        "source_event_id": source.id,
    }


def test_non_json_event_data_is_made_json(store):
    rec = RecordingNotifier()
    Alerter(store, [rec]).handle([event(data={"psi": float("nan"), "n": 3})], NOW)
    assert rec.alerts[0].data == {"psi": None, "n": 3}


# -- rules ------------------------------------------------------------------------------------


def test_rules_restrict_kinds_and_filter_each_notifier(store):
    pager, chat, log = (RecordingNotifier(name=n) for n in ("pager", "chat", "log"))
    rules = {
        "kinds": {"run.failed": "critical", "model.promoted": "info", "run.succeeded": "info"},
        "notifiers": {
            "pager": {"min_severity": "critical"},
            "chat": {"kinds": ["model.promoted", "run.succeeded"]},
        },
    }
    alerter = Alerter(store, [pager, chat, log], rules=rules)
    events = [
        event("run.failed", run_id=1),
        event("model.promoted", version=2),
        event("drift.detected", version=2),  # not in kinds: no alert at all
        event("run.succeeded", run_id=3),
    ]
    alerter.handle(events, NOW)
    assert [a.kind for a in pager.alerts] == ["run.failed"]
    assert [a.kind for a in chat.alerts] == ["model.promoted", "run.succeeded"]
    assert [a.kind for a in log.alerts] == ["run.failed", "model.promoted", "run.succeeded"]


def test_rules_kinds_as_a_list_keeps_default_severities(store):
    rec = RecordingNotifier()
    alerter = Alerter(store, [rec], rules={"kinds": ["drift.detected"]})
    alerter.handle([event("run.failed"), event("drift.detected")], NOW)
    assert [(a.kind, a.severity) for a in rec.alerts] == [("drift.detected", "warning")]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"rules": {"kind": ["run.failed"]}}, "unknown key(s) kind"),
        ({"rules": {"kinds": ["run.faild"]}}, "'run.faild' has no default severity"),
        ({"rules": {"kinds": {"run.failed": "urgent"}}}, "rules.kinds.run.failed: severity"),
        ({"rules": {"kinds": "run.failed"}}, "must be a list of event kinds or a mapping"),
        ({"rules": {"kinds": {"alert.failed": "critical"}}}, "alert.* events never alert"),
        ({"rules": {"notifiers": {"slack": {}}}}, "no notifier is named 'slack'"),
        ({"rules": {"notifiers": {"rec": {"min_severity": "high"}}}}, "min_severity must be"),
        ({"rules": {"notifiers": {"rec": {"kinds": ["run.started"]}}}}, "'run.started' does not alert"),
        ({"rules": {"notifiers": {"rec": {"channel": "#x"}}}}, "unknown key(s) channel"),
        ({"dedupe_window": "soon"}, "dedupe_window: invalid duration 'soon'"),
        ({"dedupe_window": 60}, "dedupe_window must be a duration"),
        ({"rate_limit": (0, "1h")}, "rate_limit count must be an integer >= 1"),
        ({"rate_limit": (5, "0s")}, "rate_limit period must be > 0"),
        ({"rate_limit": "10/h"}, "rate_limit must be (count, period)"),
        ({"retries": -1}, "retries must be an integer >= 0"),
        ({"backoff_s": float("inf")}, "backoff_s must be a number >= 0"),
    ],
)  # fmt: skip
def test_bad_parameters_are_config_errors(store, kwargs, fragment):
    with pytest.raises(ConfigError) as caught:
        Alerter(store, [RecordingNotifier(name="rec")], **kwargs)
    assert fragment in str(caught.value)


def test_notifier_names_must_be_unique(store):
    with pytest.raises(ConfigError, match="recording appear more than once"):
        Alerter(store, [RecordingNotifier(), RecordingNotifier()])


# -- dedupe -----------------------------------------------------------------------------------


def test_same_alert_within_the_window_is_sent_once(store):
    rec = RecordingNotifier()
    alerter = Alerter(store, [rec], dedupe_window="1h")
    drift = event("drift.detected", version=2)
    first = alerter.handle([drift, drift], NOW)
    assert [o.status for o in first] == ["sent", "deduplicated"]
    assert [o.status for o in alerter.handle([drift], NOW + timedelta(minutes=59))] == [
        "deduplicated"
    ]
    assert [o.status for o in alerter.handle([drift], NOW + timedelta(minutes=61))] == ["sent"]
    # another version is another alert
    assert [o.status for o in alerter.handle([event("drift.detected", version=3)], NOW)] == ["sent"]
    assert len(rec.alerts) == 3
    suppressed = [e for e in alert_events(store) if e.kind == "alert.suppressed"]
    assert len(suppressed) == 2
    assert suppressed[0].data["status"] == "deduplicated"
    assert suppressed[0].data["last_sent"] == NOW.isoformat()
    assert "within the dedupe window of 1h" in suppressed[0].message


def test_dedupe_keys(store):
    rec = RecordingNotifier()
    alerter = Alerter(store, [rec])
    events = [
        event("trigger.fired", data={"trigger": "nightly"}),
        event("trigger.fired", data={"trigger": "nightly"}),
        event("trigger.fired", data={"trigger": "ctr"}),
        event("run.failed", run_id=1),
        event("run.failed", run_id=2),
        event("run.failed", pipeline="fraud", run_id=1),
        event("drift.detected", data={"dedupe_key": "drift-any-version"}, version=1),
        event("drift.detected", data={"dedupe_key": "drift-any-version"}, version=2),
    ]
    statuses = [o.status for o in alerter.handle(events, NOW)]
    assert statuses == [
        "sent",
        "deduplicated",
        "sent",
        "sent",
        "sent",
        "sent",
        "sent",
        "deduplicated",
    ]
    assert rec.alerts[0].dedupe_key == "trigger.fired|churn|trigger=nightly"


def test_dedupe_is_per_notifier_and_a_failed_send_is_not_remembered(store):
    flaky, steady = RecordingNotifier(name="flaky", fail_times=1), RecordingNotifier(name="steady")
    alerter = Alerter(store, [flaky, steady], retries=0)
    failed = event("run.failed", run_id=9)
    assert [o.status for o in alerter.handle([failed], NOW)] == ["failed", "sent"]
    later = NOW + timedelta(minutes=1)
    assert [o.status for o in alerter.handle([failed], later)] == ["sent", "deduplicated"]


def test_no_dedupe_window(store):
    rec = RecordingNotifier()
    alerter = Alerter(store, [rec], dedupe_window=None)
    assert [o.status for o in alerter.handle([event(), event()], NOW)] == ["sent", "sent"]


# -- rate limit -------------------------------------------------------------------------------


def test_rate_limit_suppresses_and_records_the_excess(store):
    rec = RecordingNotifier()
    alerter = Alerter(store, [rec], rate_limit=(2, "1h"))
    burst = [event(run_id=i) for i in range(4)]
    assert [o.status for o in alerter.handle(burst, NOW)] == [
        "sent",
        "sent",
        "rate_limited",
        "rate_limited",
    ]
    suppressed = [e for e in alert_events(store) if e.kind == "alert.suppressed"]
    assert [e.run_id for e in suppressed] == [2, 3]
    assert suppressed[0].data["rate_limit"] == "2 per 1h"
    assert "rate limit of 2 per 1h reached" in suppressed[0].message
    # the limit is per pipeline
    assert alerter.handle([event(pipeline="fraud", run_id=1)], NOW)[0].status == "sent"
    # a sliding window: one hour after the first sends there is room again
    again = [event(run_id=i) for i in range(10, 13)]
    statuses = [o.status for o in alerter.handle(again, NOW + timedelta(hours=1))]
    assert statuses == ["sent", "sent", "rate_limited"]


def test_deduplicated_alerts_do_not_use_the_rate(store):
    rec = RecordingNotifier()
    alerter = Alerter(store, [rec], rate_limit=(2, "1h"))
    statuses = [o.status for o in alerter.handle([event(), event(), event(), event(run_id=5)], NOW)]
    assert statuses == ["sent", "deduplicated", "deduplicated", "sent"]


# -- retries ----------------------------------------------------------------------------------


def test_retry_then_success_against_a_real_server(store):
    sleeps = Sleeps()
    with HTTPSink(fail_times=2) as sink:
        hook = WebhookNotifier(sink.url + "/hook", timeout=2)
        alerter = Alerter(store, [hook], retries=3, backoff_s=0.01, sleep=sleeps)
        [outcome] = alerter.handle([event(run_id=3)], NOW)
        assert len(sink.requests) == 3
        assert sink.requests[-1].json()["kind"] == "run.failed"
    assert (outcome.status, outcome.attempts, outcome.error) == ("sent", 3, None)
    assert sleeps == [0.01, 0.02]
    assert outcome.event is not None and outcome.event.message.endswith("on attempt 3")


def test_retries_exhausted_record_a_failure_and_never_raise(store, caplog):
    sleeps = Sleeps()
    dead = RecordingNotifier(name="dead", fail_times=100)
    ok = RecordingNotifier(name="ok")
    alerter = Alerter(store, [dead, ok], retries=2, backoff_s=0.05, sleep=sleeps)
    with caplog.at_level(logging.WARNING, logger="retrainer.engine.control.alerts"):
        outcomes = alerter.handle([event(run_id=1), event(run_id=2)], NOW)
    assert [(o.notifier, o.status, o.attempts) for o in outcomes] == [
        ("dead", "failed", 3),
        ("ok", "sent", 1),
        # used up its retries in this batch: one try, no more backoff
        ("dead", "failed", 1),
        ("ok", "sent", 1),
    ]
    assert sleeps == [0.05, 0.1]
    assert outcomes[0].error == "dead failed on purpose"
    failed = [e for e in alert_events(store) if e.kind == "alert.failed"]
    assert len(failed) == 2
    assert failed[0].data["error"] == "dead failed on purpose"
    assert failed[0].data["attempts"] == 3
    assert "could not be sent via dead (3 attempts): dead failed on purpose" in failed[0].message
    assert "not sent via dead after 3 attempt(s)" in caplog.text
    assert len(ok.alerts) == 2


def test_a_notifier_recovering_in_the_batch_gets_its_retries_back(store):
    sleeps = Sleeps()
    flaky = RecordingNotifier(name="flaky", fail_times=2)
    alerter = Alerter(store, [flaky], retries=1, backoff_s=0.01, sleep=sleeps)
    outcomes = alerter.handle([event(run_id=i) for i in (1, 2, 3)], NOW)
    # 1: two tries fail; 2: one try succeeds; 3: sent first time
    assert [(o.status, o.attempts) for o in outcomes] == [("failed", 2), ("sent", 1), ("sent", 1)]
    assert sleeps == [0.01]


class BrokenNotifier:
    name = "broken"

    def send(self, alert: Alert) -> None:
        raise KeyError("not a NotifierError")


def test_any_exception_from_a_notifier_is_recorded_not_raised(store):
    [outcome] = Alerter(store, [BrokenNotifier()], retries=1, sleep=Sleeps()).handle([event()], NOW)
    assert outcome.status == "failed"
    assert outcome.error == "KeyError: 'not a NotifierError'"


def test_a_failed_alert_is_tried_again_on_the_next_tick(store):
    rec = RecordingNotifier(fail_times=1)
    alerter = Alerter(store, [rec], retries=0)
    failed = event(run_id=8)
    assert alerter.handle([failed], NOW)[0].status == "failed"
    assert alerter.handle([failed], NOW + timedelta(minutes=1))[0].status == "sent"


# -- ordering ---------------------------------------------------------------------------------


def test_alerts_go_out_and_are_recorded_in_event_order(store):
    a, b = RecordingNotifier(name="a"), RecordingNotifier(name="b")
    sources = [
        store.append_event(e)
        for e in (
            event("run.failed", run_id=1),
            event("run.started", run_id=2),
            event("model.promoted", version=2),
            event("drift.detected", pipeline="fraud", version=1),
        )
    ]
    outcomes = Alerter(store, [a, b]).handle(sources, NOW)
    expected = [
        ("run.failed", "a"),
        ("run.failed", "b"),
        ("model.promoted", "a"),
        ("model.promoted", "b"),
        ("drift.detected", "a"),
        ("drift.detected", "b"),
    ]
    assert [(o.alert.kind, o.notifier) for o in outcomes] == expected
    recorded = alert_events(store)
    assert [(e.data["alert_kind"], e.data["notifier"]) for e in recorded] == expected
    assert [e.data["source_event_id"] for e in recorded] == [1, 1, 3, 3, 4, 4]
    assert [e.id for e in recorded] == sorted(e.id for e in recorded)
    assert [x.kind for x in a.alerts] == ["run.failed", "model.promoted", "drift.detected"]


# -- state in the store -----------------------------------------------------------------------


def test_state_survives_a_new_alerter(store):
    Alerter(store, [RecordingNotifier()], rate_limit=(1, "1d")).handle([event(run_id=1)], NOW)
    value, revision = store.get_state("churn", STATE_KEY)
    assert revision == 1
    assert value == {
        "sent": {"recording": {"run.failed|churn|run1": NOW.isoformat()}},
        "recent": {"recording": [NOW.isoformat()]},
    }
    rec = RecordingNotifier()
    restarted = Alerter(store, [rec], rate_limit=(1, "1d"))
    later = NOW + timedelta(minutes=10)
    statuses = [o.status for o in restarted.handle([event(run_id=1), event(run_id=2)], later)]
    assert statuses == ["deduplicated", "rate_limited"]
    assert rec.alerts == []


def test_state_survives_a_restart_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'retrainer.db'}"
    with SQLMetadataStore(url) as first:
        first.ensure_pipeline("churn", "h", NOW)
        Alerter(first, [RecordingNotifier()]).handle([event("model.promoted", version=5)], NOW)
    with SQLMetadataStore(url) as second:
        rec = RecordingNotifier()
        [outcome] = Alerter(second, [rec]).handle(
            [event("model.promoted", version=5)], NOW + timedelta(minutes=30)
        )
        assert outcome.status == "deduplicated"
        assert [e.kind for e in second.list_events()] == ["alert.sent", "alert.suppressed"]


def test_old_entries_are_pruned(store):
    alerter = Alerter(store, [RecordingNotifier()], dedupe_window="1h", rate_limit=(5, "2h"))
    alerter.handle([event(run_id=1)], NOW)
    alerter.handle([event(run_id=2)], NOW + timedelta(hours=3))
    value, _ = store.get_state("churn", STATE_KEY)
    later = (NOW + timedelta(hours=3)).isoformat()
    assert value == {
        "sent": {"recording": {"run.failed|churn|run2": later}},
        "recent": {"recording": [later]},
    }


def test_a_damaged_state_does_not_stop_alerts(store):
    store.put_state(
        "churn", STATE_KEY, {"sent": {"recording": {"k": "yesterday"}}, "recent": 3}, at=NOW
    )
    rec = RecordingNotifier()
    assert Alerter(store, [rec]).handle([event()], NOW)[0].status == "sent"


def test_a_concurrent_writer_is_merged_with(store):
    """Another alerter writes the state while this one is sending: re-read and merge."""
    other = Alerter(store, [RecordingNotifier(name="meddler")])

    class Meddling:
        name = "meddling"

        def send(self, alert: Alert) -> None:
            other.handle([event("model.promoted", version=7)], NOW)

    [outcome] = Alerter(store, [Meddling()]).handle([event(run_id=1)], NOW)
    assert outcome.status == "sent"
    value, revision = store.get_state("churn", STATE_KEY)
    assert revision == 2
    assert value["sent"] == {
        "meddler": {"model.promoted|churn|v7": NOW.isoformat()},
        "meddling": {"run.failed|churn|run1": NOW.isoformat()},
    }


class ContestedStore(InMemoryMetadataStore):
    """A store where another writer gets in before each of the next ``contests`` writes."""

    contests = 0

    def put_state(self, pipeline, key, value, *, at, expected_revision=ANY):
        if self.contests:
            self.contests -= 1
            super().put_state(pipeline, key, {"sent": {}, "recent": {}}, at=at)
        return super().put_state(pipeline, key, value, at=at, expected_revision=expected_revision)


def test_a_second_conflict_is_logged_not_raised(caplog):
    store = ContestedStore()
    store.ensure_pipeline("churn", "h", NOW)
    store.contests = 2
    rec = RecordingNotifier()
    with caplog.at_level(logging.WARNING, logger="retrainer.engine.control.alerts"):
        [outcome] = Alerter(store, [rec]).handle([event()], NOW)
    assert outcome.status == "sent" and len(rec.alerts) == 1
    assert "alert memory of churn not saved" in caplog.text


def test_events_without_a_known_pipeline_are_deduplicated_in_memory(store):
    rec = RecordingNotifier()
    alerter = Alerter(store, [rec])
    events = [
        event(pipeline=None),
        event(pipeline=None),
        event(pipeline="ghost"),
        event(pipeline="ghost"),
    ]
    statuses = [o.status for o in alerter.handle(events, NOW)]
    assert statuses == ["sent", "deduplicated", "sent", "deduplicated"]
    assert store.get_state("ghost", STATE_KEY) is None
    assert [e.pipeline for e in alert_events(store)] == [None, None, "ghost", "ghost"]
