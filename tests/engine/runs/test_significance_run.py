"""A significance rule end to end: execute_run and the orchestrators' stages both test the
candidate against the champion on the same holdout rows and record the test in the evidence."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from retrainer.core.clock import SimulatedClock
from retrainer.engine.runs.run import execute_run
from retrainer.engine.runs.stages import bless, deploy, start_run, train
from retrainer.testing import drifting_frame, in_memory_project

T1 = datetime(2024, 1, 20, tzinfo=UTC)
T2 = datetime(2024, 1, 26, tzinfo=UTC)
RULES = {
    "holdout": 0.25,
    "rules": [
        {"metric": "accuracy", "min": 0.6},
        {"metric": "accuracy", "not_worse": "significant", "margin": 0.05},
        {"metric": "roc_auc", "better": "significant", "alpha": 0.1},
    ],
    "sanity": {"enabled": False},
}


def _rows(verdict):
    return {(r.rule, r.metric): r for r in verdict.evidence}


def test_execute_run_tests_the_candidate_against_the_champion(tmp_path: Path):
    project = in_memory_project(root=tmp_path, blessing=RULES)
    first = execute_run(project, clock=SimulatedClock(T1))
    assert first.ok and first.promoted
    assert _rows(first.verdict)[("significance", "accuracy")].note == "no champion: skipped"
    second = execute_run(project, clock=SimulatedClock(T2))
    rows = _rows(second.verdict)
    accuracy, auc = rows[("significance", "accuracy")], rows[("significance", "roc_auc")]
    assert "Tango score p=" in accuracy.note and "margin 0.05" in accuracy.note
    assert "DeLong p=" in auc.note and "80% CI" in auc.note
    assert accuracy.champion is not None and accuracy.candidate is not None
    # the stored verdict keeps the test's words
    version = project.store.get_version("toy", second.version.version)
    assert [r.note for r in version.blessing.evidence] == [r.note for r in second.verdict.evidence]


def test_the_stages_test_on_the_stored_rows_as_execute_run_does(tmp_path: Path):
    whole = in_memory_project(root=tmp_path, blessing=RULES)
    staged = in_memory_project(root=tmp_path, blessing=RULES)
    expected = [execute_run(whole, clock=SimulatedClock(t)) for t in (T1, T2)]
    for t, result in zip((T1, T2), expected, strict=True):
        run = start_run(staged, "toy", now=t, trigger="schedule", slot=t.isoformat())
        assert run is not None and run.id is not None
        train(staged, run.id, now=t)
        bless(staged, run.id, now=t)
        deploy(staged, run.id, now=t, actor="test")
        version = staged.store.get_version("toy", staged.store.get_run(run.id).version)
        assert [(r.rule, r.metric, r.passed, r.note) for r in version.blessing.evidence] == [
            (r.rule, r.metric, r.passed, r.note) for r in result.verdict.evidence
        ]


def test_no_per_row_answers_without_a_significance_rule(tmp_path: Path):
    frame = drifting_frame(400)
    for blessing, kept in ((None, False), (RULES, True)):
        overrides = {"blessing": blessing} if blessing else {}
        pipeline = in_memory_project(frame, root=tmp_path, **overrides).pipeline()
        assert pipeline.gate.needs_rows is kept
        card = pipeline.score(pipeline.fit(frame.iloc[:300]), frame.iloc[300:])
        assert (card.rows is not None) is kept
        if kept:
            assert card.rows.y_score is not None and len(card.rows) == card.n == 100
