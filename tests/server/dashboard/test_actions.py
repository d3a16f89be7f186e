"""Promote (and roll back) from the browser: an admin moves the champion through the
confirmation page; a read token sees the page but cannot act; a POST without the csrf field
is refused. This module's project copy is changed by its tests, so they run in order."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

from tests.server.dashboard.conftest import Dashboard, Watch


def champion(history: Dashboard) -> int | None:
    return history.project.store.get_alias(history.pipeline, "champion")


def promotable(history: Dashboard) -> int:
    """A blessed version that is not the champion (the newest such)."""
    current = champion(history)
    blessed = [
        v.version
        for v in history.project.store.list_versions(history.pipeline, profiles=False)
        if v.blessing.passed and v.version != current
    ]
    assert blessed, "the history has no blessed non-champion version: the fixture changed"
    return blessed[-1]


def csrf_of(page: Any) -> str | None:
    field = page.locator("input[name=csrf]")
    return field.first.get_attribute("value") if field.count() else None


def test_read_token_sees_the_confirmation_without_a_button_and_cannot_post(
    history: Dashboard, page: Any, watch: Watch
):
    name, before = history.pipeline, champion(history)
    version = promotable(history)
    history.login(page, history.read, f"/ui/pipelines/{name}/promote?version={version}")
    assert page.url.endswith(f"/ui/pipelines/{name}/promote?version={version}")
    assert page.locator("button#confirm").count() == 0
    assert "admin" in page.locator("main").inner_text().lower()
    watch.allow(403, f"/ui/pipelines/{name}/promote")
    # the read cookie, with and without a csrf value: refused either way
    url = f"{history.url}/ui/pipelines/{name}/promote?version={version}"
    for form in ({"version": str(version)}, {"version": str(version), "csrf": "x" * 32}):
        response = page.request.post(url, form=form, max_redirects=0)
        assert response.status == 403, (form, response.status)
    assert champion(history) == before


def test_admin_post_without_the_csrf_field_is_refused(history: Dashboard, page: Any, watch: Watch):
    name, before = history.pipeline, champion(history)
    version = promotable(history)
    history.login(page, history.admin, f"/ui/pipelines/{name}/promote?version={version}")
    assert page.locator("button#confirm").count() == 1
    good = csrf_of(page)
    assert good, "the confirmation form has no csrf field"
    watch.allow(403, f"/ui/pipelines/{name}/promote")
    url = f"{history.url}/ui/pipelines/{name}/promote?version={version}"
    for form in ({"version": str(version)}, {"version": str(version), "csrf": good[::-1]}):
        response = page.request.post(url, form=form, max_redirects=0)
        assert response.status == 403, (form, response.status)
    assert champion(history) == before


def test_admin_rolls_back_through_the_confirmation_page(history: Dashboard, page: Any):
    from retrainer.engine.runs.registry import rollback_target

    name, before = history.pipeline, champion(history)
    target = rollback_target(history.project, name)
    history.login(page, history.admin, f"/ui/pipelines/{name}")
    rollback = page.locator("a.rollback")  # one on the page, by the champion
    assert rollback.count() == 1
    rollback.click()
    page.locator("button#confirm").wait_for()
    with page.expect_navigation():
        page.click("button#confirm")
    assert urlparse(page.url).path == f"/ui/pipelines/{name}"
    assert champion(history) == target != before
    last = history.project.store.list_events(name)[-1]
    assert (last.kind, last.version) == ("model.rolled_back", target)
    flash = page.locator(".flash")
    assert flash.count() >= 1 and str(target) in flash.first.inner_text()


def test_admin_promotes_through_the_confirmation_page(history: Dashboard, page: Any):
    name, before = history.pipeline, champion(history)
    version = promotable(history)
    history.login(page, history.admin, f"/ui/pipelines/{name}")
    page.click(f'#versions tr[data-version="{version}"] a.promote')
    page.wait_for_url(re.compile(rf"/ui/pipelines/{name}/promote\?version={version}$"))
    with page.expect_navigation():
        page.click("button#confirm")
    assert urlparse(page.url).path == f"/ui/pipelines/{name}"
    flash = page.locator(".flash")
    assert flash.count() >= 1 and str(version) in flash.first.inner_text()

    # the store moved, recorded as the CLI records it
    assert champion(history) == version
    moved = history.project.store.list_events(name, kinds=["model.promoted"])[-1]
    assert moved.version == version
    # and the page says so: the new champion has no promote link, the old one has
    assert page.locator(f'#versions tr[data-version="{version}"] a.promote').count() == 0
    assert page.locator(f'#versions tr[data-version="{before}"] a.promote').count() == 1
    assert "champion" in page.locator(f'#versions tr[data-version="{version}"]').inner_text()
