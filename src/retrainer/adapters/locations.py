"""Where stores and data live: a configured path or URL resolved against the project folder,
and the fsspec filesystem that reads and writes it.

Kept apart from the sources (pandas) and the stores so that opening a project imports neither.
Credentials for object stores never come from ``retrainer.yaml``: s3fs reads them from the
environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``...) or the
standard AWS config files, and fsspec's own ``FSSPEC_S3_*`` variables.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic_core import PydanticCustomError

from retrainer.errors import ConfigError
from retrainer.extras import missing_extra

__all__ = ["resolve_url"]  # filesystem and the rest: used inside the adapters only

# The fsspec protocols whose writes are one atomic PUT per object (no rename needed), and the
# extra of retrainer that installs each backend.
OBJECT_STORE_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})
_EXTRAS = {"s3": "s3", "s3a": "s3"}


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


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem of ``url`` and the path inside it.

    A backend that is not installed (``s3fs`` for ``s3://``) is a :class:`ConfigError` of one
    line naming the extra to install.

    Examples
    --------
    >>> fs, path = filesystem("memory://docs/locations")
    >>> type(fs).__name__, path
    ('MemoryFileSystem', '/docs/locations')
    """
    import fsspec.core

    try:
        fs, path = fsspec.core.url_to_fs(url)
    except ImportError as exc:
        protocol = fsspec.core.split_protocol(url)[0] or "file"
        raise ConfigError(missing_backend_message(url, protocol, exc)) from None
    return fs, path


def missing_backend_message(url: str, protocol: str, exc: BaseException | None = None) -> str:
    """One line: which package ``url`` needs and how to install it.

    Examples
    --------
    >>> missing_backend_message("s3://bucket/x", "s3")
    "s3://bucket/x needs the 's3fs' package. Install it with: pip install 'retrainer[s3]'"
    """
    if _EXTRAS.get(protocol) == "s3":
        return str(missing_extra("s3", "s3fs", url))
    detail = f" ({exc})" if exc is not None else ""
    return f"{url} needs the fsspec backend of {protocol}:// installed{detail}"


# --- credentials never come from retrainer.yaml (config.py's validators call these) ---

_SECRET_WORDS = ("secret", "key", "token", "password", "credential")
_URL_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@]*:[^/@]*@")


def refuse_secret_keys(data: Any) -> Any:
    """Refuse a key that looks like a credential: object-store secrets come from the
    environment (``AWS_ACCESS_KEY_ID``...), never from ``retrainer.yaml`` in clear."""
    if not isinstance(data, dict):
        return data
    for name in data:
        if isinstance(name, str) and any(w in name.lower() for w in _SECRET_WORDS):
            raise PydanticCustomError(  # the value is a secret: never repeated
                "retrainer_secret",
                f"key {name!r} looks like a credential, and secrets are never read from "
                "retrainer.yaml; remove it and set the credentials in the environment "
                "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL) or the standard "
                "AWS config files",
            )
    return data


def refuse_url_secret(url: str) -> str:
    """``url`` unless it carries credentials (``scheme://user:secret@...``)."""
    if _URL_USERINFO.match(url):
        raise PydanticCustomError(  # the value is a secret: never repeated
            "retrainer_secret",
            "the URL must not carry credentials (user:secret@); set them in the environment "
            "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or the standard AWS config files",
        )
    return url
