"""The Parquet log store: day-partitioned segments on any fsspec filesystem."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import fsspec.core
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from retrainer.adapters._atomic import write_local_atomically
from retrainer.adapters.locations import filesystem
from retrainer.adapters.logstore.connection import shared_connection
from retrainer.adapters.logstore.protocol import KINDS, Kind
from retrainer.adapters.logstore.query import (
    DuckDBLogStore,
    literal,
)
from retrainer.adapters.logstore.segments import (
    COMPACTED_PREFIX,
    REPLACES_KEY,
    day_folder_name,
    in_range,
    parquet_bytes,
    parse_day_folder,
    union_by_name,
)
from retrainer.errors import ConfigError

# --- Parquet on a filesystem -----------------------------------------------------------------


class ParquetLogStore(DuckDBLogStore):
    """Prediction and feedback logs as day-partitioned Parquet segments, queried with DuckDB.

    Layout: ``<root>/<kind>/date=YYYY-MM-DD/<sha256 prefix>.parquet`` (kind is
    ``predictions`` or ``feedback``), one segment per appended batch and day, rows sorted by
    time; compacted segments are named ``c-<sha256 prefix>.parquet``. Any reader that skips
    files starting with ``.`` (temporary files) and honours compaction (see :meth:`compact`)
    can read the log; DuckDB, Spark and pyarrow see the ``date`` partition column.

    On a local disk a segment is written to a temporary file (``.<name>.<random>.tmp``) in
    its day folder, fsynced, renamed into place and the folder fsynced: after ``append_*``
    returns, the rows survive a crash, and a crash during the write leaves at most a temporary
    file, which readers ignore. On object stores (S3, GCS) a segment is one PUT, which is
    atomic there.

    Off the local disk (``s3://``, ``memory://``...) the segments are read with pyarrow
    datasets over the fsspec filesystem and DuckDB queries the Arrow data: DuckDB never
    loads its own S3 extension (downloaded at run time, which locked-down hosts cannot do).

    Parameters
    ----------
    url
        The root: a local folder or an fsspec URL (``s3://bucket/logs``). Relative paths are
        resolved against the current directory once, here.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> from datetime import datetime
    >>> with tempfile.TemporaryDirectory() as root:
    ...     store = ParquetLogStore(root)
    ...     _ = store.append_predictions(pd.DataFrame({"id": ["a", "b"], "pipeline": "p",
    ...         "timestamp": ["2024-01-01T10:00", "2024-01-02T10:00"], "model_version": 1,
    ...         "prediction": [1, 0]}))
    ...     print(sorted(p.parent.name for p in Path(root).rglob("*.parquet")))
    ...     print(store.predictions("p", datetime(2024, 1, 2), None)["id"].tolist())
    ['date=2024-01-01', 'date=2024-01-02']
    ['b']
    """

    def __init__(self, url: str | os.PathLike[str]) -> None:
        super().__init__()
        text = os.fspath(url)
        protocol, _ = fsspec.core.split_protocol(text)
        if protocol is None:
            text = str(Path(text).expanduser().resolve())
        fs, root = filesystem(text)
        self._fs: Any = fs
        self._root: str = root.rstrip("/") or "/"
        self._local = isinstance(fs, LocalFileSystem)
        self._arrow_fs = None if self._local else pafs.PyFileSystem(pafs.FSSpecHandler(fs))
        self._replaces_cache: dict[str, frozenset[str]] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._fs.unstrip_protocol(self._root)!r})"

    # layout ------------------------------------------------------------------------------

    def _folder(self, kind: Kind, day: date | None = None) -> str:
        base = f"{self._root.rstrip('/')}/{kind}"
        return base if day is None else f"{base}/{day_folder_name(day)}"

    def _ls(self, folder: str) -> list[str]:
        """Names (not paths) in ``folder``; empty if it does not exist."""
        try:
            if self._local:
                return [p.name for p in Path(folder).iterdir()]
            # another process may have written since the last listing: never trust the cache
            self._fs.invalidate_cache(folder)
            return [p.rstrip("/").rsplit("/", 1)[-1] for p in self._fs.ls(folder, detail=False)]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def days(self, kind: Kind = "predictions") -> list[date]:
        """The days that hold segments of ``kind``, sorted.

        Examples
        --------
        >>> ParquetLogStore("memory://docs/logstore-days").days()
        []
        """
        if kind not in KINDS:
            raise ConfigError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
        found = (parse_day_folder(n) for n in self._ls(self._folder(kind)))
        return sorted(d for d in found if d is not None and self._segments(kind, d)[0])

    def _replaces(self, path: str) -> frozenset[str]:
        """The segment names a compacted segment replaces (cached: segments are immutable)."""
        cached = self._replaces_cache.get(path)
        if cached is not None:
            return cached
        if self._local:
            meta = pq.read_metadata(path).metadata or {}
        else:
            with self._fs.open(path, "rb") as f:
                meta = pq.read_metadata(f).metadata or {}
        names = frozenset(json.loads(meta.get(REPLACES_KEY, b"[]")))
        self._replaces_cache[path] = names
        return names

    def _segments(self, kind: Kind, day: date) -> tuple[list[str], set[str]]:
        """``(live, replaced)``: live segment names of a day, and the names compactions replaced.

        Temporary files (leading dot) and anything that is not ``.parquet`` are ignored; a
        segment named in a compacted segment's list is replaced, whether it still exists
        (a compaction that died before deleting it) or reappears (a retried append).
        """
        folder = self._folder(kind, day)
        names = [n for n in self._ls(folder) if n.endswith(".parquet") and not n.startswith(".")]
        replaced: set[str] = set()
        for name in names:
            if name.startswith(COMPACTED_PREFIX):
                replaced |= self._replaces(f"{folder}/{name}")
        return sorted(n for n in names if n not in replaced), replaced

    def _relation(
        self, cur: duckdb.DuckDBPyConnection, kind: Kind, first: date | None, last: date | None
    ) -> str | None:
        files: list[str] = []
        for name in sorted(self._ls(self._folder(kind))):
            day = parse_day_folder(name)
            if day is None or not in_range(day, first, last):
                continue
            live, _ = self._segments(kind, day)
            files.extend(f"{self._folder(kind, day)}/{n}" for n in live)
        if not files:
            return None
        if self._local:
            listed = ", ".join(literal(f) for f in files)
            return f"read_parquet([{listed}], union_by_name = true, hive_partitioning = false)"
        name = f"_{kind}"
        cur.register(name, self._read_arrow(files))
        return name

    def _read_arrow(self, paths: Sequence[str]) -> pa.Table:
        """The segments at ``paths`` (on the fsspec filesystem) as one Arrow table.

        Each segment is its own dataset (batches may add columns), merged with DuckDB's
        ``union_by_name`` rules as the in-memory store does.
        """
        tables = [
            pads.dataset(p, filesystem=self._arrow_fs, format="parquet").to_table() for p in paths
        ]
        return union_by_name(tables)

    # writes ------------------------------------------------------------------------------

    def _put(self, folder: str, name: str, data: bytes) -> None:
        path = f"{folder}/{name}"
        if self._local:
            tmp = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"
            write_local_atomically(folder, tmp, path, data, setting="storage.logs_url")
        else:
            self._fs.makedirs(folder, exist_ok=True)
            self._fs.pipe_file(path, data)

    def _write_segment(self, kind: Kind, day: date, table: pa.Table) -> bool:
        data = parquet_bytes(table)
        name = hashlib.sha256(data).hexdigest()[:32] + ".parquet"
        folder = self._folder(kind, day)
        if self._fs.exists(f"{folder}/{name}") or name in self._segments(kind, day)[1]:
            return False  # the same batch, retried: already stored (or compacted, and replaced)
        self._put(folder, name, data)
        return True

    def _compact_day(self, kind: Kind, day: date) -> int:
        """Merge a day's live segments: write the merged one, then delete what it replaces.

        The merged segment lists, in its Parquet metadata, every segment name it replaces
        (including those its predecessors replaced). Readers skip listed names, so:

        - before the merged segment exists, readers see the old segments;
        - once it exists, they see it and skip the old ones, even those not deleted yet
          (or never, if the compaction dies here: the next one deletes them);
        - a reader that listed the old segments and finds one deleted lists again.

        A manifest would do the same but every append would have to update it (a
        read-modify-write race between appending processes); this way appends stay lock-free
        and only the compactor writes metadata. Two compactions of one day at the same time
        could each replace a different set and duplicate rows: run one compactor (the
        controller's maintenance step, under its lease).
        """
        folder = self._folder(kind, day)
        live, replaced = self._segments(kind, day)
        leftovers = sorted(replaced & set(self._ls(folder)))
        if len(live) <= 1:
            self._delete(folder, leftovers)
            return 0
        cur = shared_connection().cursor()
        try:
            paths = [f"{folder}/{n}" for n in live]
            if self._local:
                files = ", ".join(literal(p) for p in paths)
                source = f"read_parquet([{files}], union_by_name = true, hive_partitioning = false)"
            else:
                cur.register("_segments", self._read_arrow(paths))
                source = "_segments"
            merged = cur.sql(f'SELECT * FROM {source} ORDER BY "timestamp", id').to_arrow_table()
        finally:
            cur.close()
        replaces = sorted(set(live) | replaced)
        merged = merged.replace_schema_metadata(
            {REPLACES_KEY: json.dumps(replaces).encode("utf-8")}
        )
        data = parquet_bytes(merged)
        name = COMPACTED_PREFIX + hashlib.sha256(data).hexdigest()[:32] + ".parquet"
        self._put(folder, name, data)
        self._delete(folder, sorted(set(replaces) & set(self._ls(folder))))
        return len(live)

    def _delete(self, folder: str, names: Sequence[str]) -> None:
        for name in names:
            try:
                if self._local:
                    Path(folder, name).unlink()
                else:
                    self._fs.rm_file(f"{folder}/{name}")
            except FileNotFoundError:
                pass
