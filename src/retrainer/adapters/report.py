"""Self-contained HTML reports: Plotly inlined once, no network needed to open them.

The report is written atomically (temp file + rename), so a reader never sees half a page.
"""

from __future__ import annotations

import html
import json
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from retrainer.adapters._atomic import write_local_atomically

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#1d232a;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.2rem;margin-top:2rem;
border-bottom:1px solid #dde3ea;padding-bottom:.3rem}
.sub{color:#5b6773;margin-top:0} table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{padding:.35rem .6rem;border-bottom:1px solid #eef1f4;text-align:left}
th{background:#f6f8fa} td.num{text-align:right;font-variant-numeric:tabular-nums}
.bad{color:#b42318;font-weight:600} .ok{color:#067647} .pill{display:inline-block;
padding:.1rem .55rem;border-radius:1rem;font-size:.85rem;font-weight:600}
.pill.bad{background:#fee4e2} .pill.ok{background:#dcfae6}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:.5rem}
.muted{color:#5b6773}
"""


def esc(value: Any) -> str:
    return html.escape(str(value))


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:
            return "NaN"
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"
    return esc(value)


def table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: set[int] | None = None
) -> str:
    """An HTML table; cells are escaped unless they are already marked-up ``Markup``."""
    numeric = numeric or set()
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            text = cell.html if isinstance(cell, Markup) else fmt(cell)
            cls = ' class="num"' if i in numeric else ""
            cells.append(f"<td{cls}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class Markup:
    """Trusted HTML for a table cell."""

    def __init__(self, html_text: str) -> None:
        self.html = html_text


def pill(ok: bool, yes: str, no: str) -> Markup:
    return Markup(f'<span class="pill {"ok" if ok else "bad"}">{esc(yes if ok else no)}</span>')


class HtmlReport:
    """Collects sections and Plotly figures, then writes one self-contained HTML file."""

    def __init__(self, title: str, subtitle: str = "") -> None:
        self.title = title
        self.subtitle = subtitle
        self.parts: list[str] = []
        self._figures = 0

    def section(self, heading: str, body_html: str = "") -> None:
        self.parts.append(f"<h2>{esc(heading)}</h2>{body_html}")

    def html(self, body_html: str) -> None:
        self.parts.append(body_html)

    def figure(self, fig: Any, *, height: int = 320) -> str:
        """Render a Plotly figure to a div (plotly.js is inlined once, in the page head)."""
        self._figures += 1
        fig.update_layout(height=height, margin={"l": 40, "r": 10, "t": 40, "b": 40})
        div: str = fig.to_html(
            include_plotlyjs=False, full_html=False, config={"displaylogo": False}
        )
        return div

    def render(self) -> str:
        plotly_js = ""
        if self._figures:
            from plotly.offline import get_plotlyjs

            plotly_js = f"<script>{get_plotlyjs()}</script>"
        return (
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{esc(self.title)}</title><style>{_CSS}</style>{plotly_js}</head><body>"
            f"<h1>{esc(self.title)}</h1><p class='sub'>{esc(self.subtitle)}</p>"
            + "".join(self.parts)
            + "</body></html>"
        )

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the page atomically and return its path."""
        target = Path(path).resolve()
        tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
        write_local_atomically(str(target.parent), str(tmp), str(target), self.render().encode())
        return target


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as None: strict JSON has no such numbers.

    Examples
    --------
    >>> json_safe({"a": float("nan"), "b": [1.0, float("inf")]})
    {'a': None, 'b': [1.0, None]}
    """
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def json_block(data: Mapping[str, Any]) -> str:
    """Embed the raw data (for people and scripts) in a collapsed block."""
    text = json.dumps(json_safe(data), indent=2, default=str, allow_nan=False)
    return f"<details><summary>raw data (JSON)</summary><pre>{esc(text)}</pre></details>"
