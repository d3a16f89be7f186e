"""Reading the files of predictions or feedback a user wants to log (CSV, Parquet, JSON)."""

from __future__ import annotations

import io
import os
from typing import Any

import fsspec.core
import pandas as pd
import pyarrow as pa

from retrainer.adapters.logstore.schema import FILE_COLUMNS
from retrainer.errors import DataError, SourceError

# --- user files ------------------------------------------------------------------------------

_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
}
_COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst", ".zip")
_TEXT_COLUMNS = {"id": "str", "pipeline": "str"}


def _format_of(path: str) -> str:
    name = path.rstrip("/").rsplit("/", 1)[-1].lower()
    for suffix in _COMPRESSIONS:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    for suffix, fmt in _FORMATS.items():
        if name.endswith(suffix):
            return fmt
    raise DataError(
        f"{path}: cannot tell the format from the file name; expected one of "
        f"{', '.join(_FORMATS)} (CSV and JSON lines may be compressed: "
        f"{', '.join(_COMPRESSIONS)})"
    )


def read_log_file(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a file of predictions or feedback that a user wants to log.

    The format follows the extension: ``.csv``, ``.tsv``, ``.parquet``/``.pq``,
    ``.jsonl``/``.ndjson`` (one JSON object per line) or ``.json`` (an array of objects);
    text formats may be compressed (``.csv.gz``...). ``id`` and ``pipeline`` are read as
    text, so ids such as ``007`` keep their zeros; timestamps are parsed when the batch is
    appended (ISO 8601 strings). The path may be an fsspec URL.

    Raises
    ------
    SourceError
        The file does not exist or cannot be opened.
    DataError
        The extension is not one of the above, or the content cannot be parsed as that format.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder, "feedback.csv")
    ...     _ = path.write_text("id,timestamp,outcome\\n007,2024-01-02T10:00:00Z,1\\n")
    ...     read_log_file(path)
        id             timestamp  outcome
    0  007  2024-01-02T10:00:00Z        1
    """
    text = os.fspath(path)
    fmt = _format_of(text)
    try:
        opened = fsspec.open(text, "rb", compression="infer")
        handle = opened.open()
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise SourceError(f"{text}: cannot open the file: {exc}") from None
    frame = _read(handle, fmt, text)
    frame.attrs[FILE_COLUMNS] = tuple(frame.columns)
    return frame


def _read(handle: Any, fmt: str, text: str) -> pd.DataFrame:
    """The frame in an opened file of format ``fmt``; errors name the file."""
    try:
        with handle as f:
            if fmt in ("csv", "tsv"):
                return pd.read_csv(f, sep="," if fmt == "csv" else "\t", dtype=_TEXT_COLUMNS)
            if fmt == "parquet":
                return pd.read_parquet(f)
            with io.TextIOWrapper(f, encoding="utf-8") as text_file:
                frame = pd.read_json(
                    text_file,
                    lines=fmt == "jsonl",
                    orient="records",
                    dtype=False,
                    precise_float=True,
                )
            for name in _TEXT_COLUMNS:
                if name in frame.columns and pd.api.types.is_integer_dtype(frame[name]):
                    frame[name] = frame[name].astype("str")
            return frame
    except pd.errors.EmptyDataError:
        raise DataError(f"{text}: the file is empty; expected a header row") from None
    except (ValueError, OSError, pa.ArrowException, UnicodeDecodeError) as exc:
        raise DataError(f"{text}: cannot read it as {fmt}: {exc}") from None
