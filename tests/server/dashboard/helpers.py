"""What the browser tests check on any page: charts drawn with points and a table fallback."""

from __future__ import annotations

from typing import Any

CHARTS_DRAWN = """() => [...document.querySelectorAll('div.chart')]
    .every(c => c.dataset.drawn === '1')"""

CHARTS = """() => [...document.querySelectorAll('div.chart')].map(c => {
    // the chart's table fallback: a details.chart-table in the same figure/section
    let box = c.parentElement, table = null;
    while (box && !table) {
        table = box.querySelector('details.chart-table table');
        if (box.tagName === 'SECTION' || box.tagName === 'MAIN') break;
        box = box.parentElement;
    }
    return {
        id: c.id || (c.closest('section') || {}).id || '?',
        drawn: c.dataset.drawn || null,
        points: c.dataset.points === undefined ? null : Number(c.dataset.points),
        plotted: c.querySelectorAll('.main-svg').length,
        tableRows: table ? table.querySelectorAll('tbody tr').length : null,
    };
})"""


def charts_checked(
    page: Any, *, at_least: int = 1, timeout: float = 15_000
) -> list[dict[str, Any]]:
    """Wait until every ``div.chart`` of ``page`` is drawn, then check each: points > 0, a
    Plotly plot inside, and a table fallback with rows. Returns the charts seen."""
    page.wait_for_function(CHARTS_DRAWN, timeout=timeout)
    charts: list[dict[str, Any]] = page.evaluate(CHARTS)
    assert len(charts) >= at_least, f"{page.url}: {len(charts)} chart(s), expected {at_least}+"
    for chart in charts:
        where = f"{page.url} chart {chart['id']}"
        assert chart["drawn"] == "1", f"{where}: not drawn"
        assert chart["points"] and chart["points"] > 0, f"{where}: data-points={chart['points']}"
        assert chart["plotted"] > 0, f"{where}: no Plotly svg inside"
        assert chart["tableRows"] is not None, f"{where}: no details.chart-table table"
        assert chart["tableRows"] > 0, f"{where}: its table fallback has no rows"
    return charts
