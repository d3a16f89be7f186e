"""The backtests page on a project with a real backtest output (one policy, ~15-30 s: slow),
each row opening its report without a failed request (the report works offline)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.server.dashboard.conftest import (
    Dashboard,
    Watch,
    copy_project,
    open_dashboard,
    with_refresh,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def with_backtest(
    history_dir: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dashboard]:
    from retrainer.engine.backtest import run_backtest

    root = copy_project(history_dir, tmp_path_factory.mktemp("backtest") / "elec2")
    config = root / "backtest.yaml"
    text = re.sub(
        r"(?m)^# policies:.*$",
        "policies: [{name: weekly, triggers: [{schedule: every 7d}]}]",
        config.read_text(),
    )
    config.write_text(text)
    run_backtest(config, root / "backtest-out")
    with_refresh(root)
    yield from open_dashboard(root)


@pytest.mark.xfail(
    strict=True,
    reason="dashboard bug: the report (the backtest's own report.html) has no icon link and the "
    "app no /favicon.ico, so chromium's request for it is a 404 and a console error",
)
def test_the_backtest_is_listed_and_opens_its_report(
    with_backtest: Dashboard, page: Any, watch: Watch
):
    with_backtest.login(page, with_backtest.read, "/ui/backtests")
    rows = page.locator("table#backtests tbody tr")
    assert rows.count() == 1
    assert "weekly" in rows.first.inner_text()
    link = rows.first.locator("a[href*='/report']")
    assert link.count() == 1
    link.click()
    page.wait_for_load_state("load")
    assert "/ui/backtests/" in page.url and page.url.endswith("/report")
    assert "weekly" in page.content()
    page.wait_for_timeout(500)  # chromium asks for the icon after the load
    # the icon's 404 fails the test here (xfail), not the fixture's teardown
    icon = [p for p in watch.problems if "/favicon.ico" in p]
    watch.problems[:] = [p for p in watch.problems if "/favicon.ico" not in p]
    assert not icon, icon
