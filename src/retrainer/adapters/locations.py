"""Where stores and data live: a configured path or URL resolved against the project folder.

Kept apart from the sources (pandas) and the stores so that opening a project imports neither.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["resolve_url"]


def resolve_url(url: str, base: Path) -> str:
    """Make a relative local path absolute against ``base``; leave URLs with a scheme alone.

    Examples
    --------
    >>> resolve_url("s3://bucket/artifacts", Path("/project"))
    's3://bucket/artifacts'
    >>> resolve_url("/data/elec2.parquet", Path("/project"))
    '/data/elec2.parquet'
    """
    if "://" in url:
        return url
    p = Path(url).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())
