"""Self-contained HTML reports: Jinja2 templates (autoescaped), Plotly inlined once, no network
needed to open them.

The templates are package data under ``retrainer/templates/``; every value they show is
escaped unless it is trusted markup (a Plotly figure, the inlined plotly.js). The page is
written atomically (temp file + rename), so a reader never sees half a page.
"""

from __future__ import annotations

import functools
import html
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from retrainer.adapters._atomic import write_local_atomically
from retrainer.core.jsonsafe import dumps

__all__ = ["Muted", "Pill", "esc", "figure_html", "fmt", "render_page", "write_page"]


def esc(value: Any) -> str:
    """``value`` as text escaped for HTML (Plotly titles, hover texts and legends take HTML)."""
    return html.escape(str(value))


def fmt(value: Any, digits: int = 4) -> str:
    """A table cell as text: ``-`` for None, floats to ``digits`` places (small ones in
    significant digits), anything else as ``str``.

    Examples
    --------
    >>> fmt(None), fmt(0.5), fmt(0.00012345), fmt(float("nan")), fmt(3)
    ('-', '0.5000', '0.0001234', 'NaN', '3')
    """
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:
            return "NaN"
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"
    return str(value)


@dataclass(frozen=True, slots=True)
class Pill:
    """A table cell drawn as a green (``ok``) or red pill saying ``yes`` or ``no``."""

    ok: bool
    yes: str
    no: str = ""


@dataclass(frozen=True, slots=True)
class Muted:
    """A table cell of grey words."""

    texts: tuple[str, ...]


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("retrainer", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
    )
    env.filters["fmt"] = fmt
    env.filters["json_text"] = lambda data: dumps(data, indent=2, default=str)
    env.tests["pill"] = lambda value: isinstance(value, Pill)
    env.tests["muted"] = lambda value: isinstance(value, Muted)
    return env


def figure_html(fig: Any, *, height: int = 320) -> Markup:
    """A Plotly figure as a div (plotly.js itself is inlined once, in the page head)."""
    fig.update_layout(height=height, margin={"l": 40, "r": 10, "t": 40, "b": 40})
    div: str = fig.to_html(include_plotlyjs=False, full_html=False, config={"displaylogo": False})
    return Markup(div)


def render_page(template: str, *, plotly: bool, **context: Any) -> str:
    """Render ``templates/<template>`` (a page extending ``_page.html.j2``).

    ``plotly``: whether the page holds figures, so plotly.js is inlined in its head.

    Examples
    --------
    >>> page = render_page("_page.html.j2", plotly=False, title="<x>", subtitle="")
    >>> "<title>&lt;x&gt;</title>" in page
    True
    """
    plotly_js = Markup("")
    if plotly:
        from plotly.offline import get_plotlyjs

        plotly_js = Markup(f"<script>{get_plotlyjs()}</script>")
    return _environment().get_template(template).render(plotly_js=plotly_js, **context)


def write_page(text: str, path: str | os.PathLike[str]) -> Path:
    """Write the page atomically and return its path."""
    target = Path(path).resolve()
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    write_local_atomically(str(target.parent), str(tmp), str(target), text.encode())
    return target
