"""Data sources: ``load(start, end)`` over a time column, and the snapshot of what was read.

Built in: Parquet or CSV files and folders at any fsspec URL (:class:`FileSource`), a SQL
query over a SQLAlchemy URL (:class:`SQLSource`) and a Python callable
(:class:`CallableSource`). Every source returns rows with ``start <= time < end`` sorted by
time, with the time column as naive UTC ``datetime64``.

Examples
--------
>>> import pandas as pd
>>> from datetime import datetime
>>> frame = pd.DataFrame({"ts": pd.date_range("2024-01-01", periods=5, freq="D"), "x": range(5)})
>>> src = CallableSource(lambda start, end: frame, time_column="ts", name="doc:frame")
>>> src.load(datetime(2024, 1, 2), datetime(2024, 1, 4))["x"].tolist()
[1, 2]
>>> snapshot_of(src.load(None, None), "ts").rows
5
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from retrainer.adapters.locations import filesystem, resolve_url
from retrainer.errors import ConfigError, DataError, SourceError


class Source(Protocol):
    """Anything that loads the rows of a time range."""

    time_column: str

    @property
    def description(self) -> str:
        """A short, stable description (URL, query...) recorded in snapshots."""
        ...

    def load(self, start: datetime | None, end: datetime | None) -> pd.DataFrame:
        """Rows with ``start <= time < end`` (None = unbounded), sorted by time."""
        ...

    # Optional: ``known_row_hashes(frame) -> np.ndarray | None``, the ``row_hashes`` of a
    # frame this source's ``load`` returned when it knows them without hashing (a replay of
    # an immutable frame does); a run's snapshot then skips hashing the window.


def _naive_utc(value: datetime | None) -> pd.Timestamp | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert(UTC).tz_localize(None)
    return ts


def normalize_time(frame: pd.DataFrame, time_column: str, origin: str) -> pd.DataFrame:
    """Check the time column, convert it to naive UTC datetime64 and sort by it."""
    if time_column not in frame.columns:
        raise DataError(
            f"{origin}: time column '{time_column}' not found; columns are: "
            f"{', '.join(map(str, frame.columns))}"
        )
    col = frame[time_column]
    if not pd.api.types.is_datetime64_any_dtype(col):
        try:
            with warnings.catch_warnings():  # "Could not infer format... specify a format"
                warnings.simplefilter("ignore", UserWarning)
                col = pd.to_datetime(col, utc=True)
        except (ValueError, TypeError, OverflowError) as exc:
            raise _time_error(col, time_column, origin, exc) from None
    if getattr(col.dt, "tz", None) is not None:
        col = col.dt.tz_convert(UTC).dt.tz_localize(None)
    missing = col.isna().to_numpy()
    if missing.any():
        raise DataError(
            f"{origin}: time column '{time_column}' has {int(missing.sum())} missing value(s) "
            f"(first at row {int(np.argmax(missing))}, counting from 0)"
        )
    frame = frame.assign(**{time_column: col})
    if not col.is_monotonic_increasing:
        frame = frame.sort_values(time_column, kind="stable")
    return frame.reset_index(drop=True)


def _shown(value: Any) -> str:
    return repr(value.item() if isinstance(value, np.generic) else value)


def _time_error(col: pd.Series, time_column: str, origin: str, exc: Exception) -> DataError:
    """The error for a time column ``pd.to_datetime`` refused: the first value it cannot
    read and its row, not pandas' message (which shows the format it inferred and advice
    about ``format=``, an argument the user does not set)."""
    what = f"{origin}: time column '{time_column}'"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            parsed = pd.to_datetime(col, utc=True, errors="coerce")
        bad = (parsed.isna() & col.notna()).to_numpy()
    except (ValueError, TypeError, OverflowError):
        bad = np.zeros(len(col), dtype=bool)
    if not bad.any():
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return DataError(f"{what} (dtype {col.dtype}) cannot be read as timestamps: {first}")
    at = int(np.argmax(bad))
    value = col.iloc[at]
    try:  # a value that reads alone, but not in the format of the column's first value
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            pd.to_datetime(pd.Series([value], dtype=object), utc=True)
    except (ValueError, TypeError, OverflowError):
        count = int(bad.sum())
        if count == 1:
            head = "has a value that is not a timestamp:"
        else:
            head = f"has {count} values that are not timestamps; the first:"
        return DataError(f"{what} {head} {_shown(value)} (row {at}, counting from 0)")
    first_at = int(np.argmax(col.notna().to_numpy()))
    return DataError(
        f"{what} mixes timestamp formats: {_shown(col.iloc[first_at])} (row {first_at}) and "
        f"{_shown(value)} (row {at}, counting from 0); write every value in one format, e.g. "
        "ISO 8601 '2024-01-01T12:00:00Z'"
    )


def _filter(frame: pd.DataFrame, time_column: str, start: datetime | None, end: datetime | None):
    lo, hi = _naive_utc(start), _naive_utc(end)
    col = frame[time_column]
    mask = pd.Series(True, index=frame.index)
    if lo is not None:
        mask &= col >= lo
    if hi is not None:
        mask &= col < hi
    return frame if bool(mask.all()) else frame.loc[mask].reset_index(drop=True)


class FileSource:
    """Parquet or CSV files at a local path or fsspec URL (a file or a folder of files).

    Parquet filters the time range while reading (pyarrow dataset pushdown).
    """

    def __init__(self, url: str, *, time_column: str, format: str = "parquet") -> None:
        self.url = url
        self.time_column = time_column
        self.format = format

    @property
    def description(self) -> str:
        return f"{self.format}:{self.url}"

    def load(self, start: datetime | None, end: datetime | None) -> pd.DataFrame:
        fs, path = filesystem(self.url)  # a missing backend: one line naming the extra
        try:
            # a long-lived process (the daemon) must see files added since its last listing
            fs.invalidate_cache(path)
            if not fs.exists(path):
                raise SourceError(f"source {self.url}: no such file or folder")
            if self.format == "parquet":
                frame = self._load_parquet(fs, path, start, end)
            else:
                frame = self._load_csv(fs, path)
        except (SourceError, DataError):
            raise
        except Exception as exc:
            raise SourceError(f"source {self.url}: cannot read {self.format}: {exc}") from None
        frame = normalize_time(frame, self.time_column, f"source {self.url}")
        return _filter(frame, self.time_column, start, end)

    def _load_parquet(self, fs: Any, path: str, start: datetime | None, end: datetime | None):
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.dataset as ds

        dataset = ds.dataset(path, filesystem=fs, format="parquet")
        if self.time_column not in dataset.schema.names:
            raise DataError(
                f"source {self.url}: time column '{self.time_column}' not found; columns are: "
                f"{', '.join(dataset.schema.names)}"
            )
        field_type = dataset.schema.field(self.time_column).type
        expr = None
        if pa.types.is_timestamp(field_type):
            for bound, op in ((start, "ge"), (end, "lt")):
                ts = _naive_utc(bound)
                if ts is None:
                    continue
                if field_type.tz is not None:
                    scalar = pa.scalar(ts.tz_localize(UTC), type=pa.timestamp("us", tz="UTC"))
                else:
                    scalar = pa.scalar(ts.to_pydatetime(), type=pa.timestamp("us"))
                field = pc.field(self.time_column)
                cond = field >= scalar if op == "ge" else field < scalar
                expr = cond if expr is None else expr & cond
        return dataset.to_table(filter=expr).to_pandas()

    def _load_csv(self, fs: Any, path: str) -> pd.DataFrame:
        files = sorted(fs.glob(path.rstrip("/") + "/**/*.csv")) if fs.isdir(path) else [path]
        if not files:
            raise SourceError(f"source {self.url}: the folder holds no .csv files")
        parts = []
        for f in files:
            with fs.open(f, "rb") as fh:
                parts.append(pd.read_csv(fh))
        if len(parts) == 1:
            return parts[0]
        # each file's times are read on their own: an error names the file and its row
        folder = path.rstrip("/") + "/"
        parts = [
            normalize_time(
                part, self.time_column, f"source {self.url} (file {f.removeprefix(folder)})"
            )
            for f, part in zip(files, parts, strict=True)
        ]
        return pd.concat(parts, ignore_index=True)


class SQLSource:
    """A SQL query over a SQLAlchemy URL; the window filter wraps the query.

    The time bounds are bound parameters, never formatted into the SQL text.
    """

    def __init__(self, url: str, query: str, *, time_column: str) -> None:
        self.url = url
        self.query = query.strip().rstrip(";")
        self.time_column = time_column

    @property
    def description(self) -> str:
        return f"sql:{_redact(self.url)}:{hashlib.sha256(self.query.encode()).hexdigest()[:12]}"

    def load(self, start: datetime | None, end: datetime | None) -> pd.DataFrame:
        import sqlalchemy as sa

        clauses: list[Any] = []
        params: dict[str, Any] = {}
        col: Any = sa.column(self.time_column)
        if start is not None:
            clauses.append(col >= sa.bindparam("start"))
            params["start"] = _naive_utc(start).to_pydatetime()  # type: ignore[union-attr]
        if end is not None:
            clauses.append(col < sa.bindparam("end"))
            params["end"] = _naive_utc(end).to_pydatetime()  # type: ignore[union-attr]
        sub = sa.text(self.query).columns().subquery("q")
        stmt = sa.select(sa.text("*")).select_from(sub)
        for c in clauses:
            stmt = stmt.where(c)
        try:
            engine = sa.create_engine(self.url)
        except Exception as exc:
            raise SourceError(f"source {_redact(self.url)}: bad SQLAlchemy URL: {exc}") from None
        try:
            with engine.connect() as conn:
                frame = pd.read_sql(stmt, conn, params=params)
        except Exception as exc:
            first = str(exc).splitlines()[0]
            raise SourceError(f"source {_redact(self.url)}: query failed: {first}") from None
        finally:
            engine.dispose()
        frame = normalize_time(frame, self.time_column, f"source {_redact(self.url)}")
        return _filter(frame, self.time_column, start, end)


def _redact(url: str) -> str:
    try:
        import sqlalchemy as sa

        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


class CallableSource:
    """A Python function ``fn(start, end) -> DataFrame``; the result is filtered again."""

    def __init__(
        self,
        fn: Callable[[datetime | None, datetime | None], pd.DataFrame],
        *,
        time_column: str,
        name: str,
    ) -> None:
        self.fn = fn
        self.time_column = time_column
        self.name = name

    @property
    def description(self) -> str:
        return f"callable:{self.name}"

    def load(self, start: datetime | None, end: datetime | None) -> pd.DataFrame:
        try:
            frame = self.fn(start, end)
        except Exception as exc:
            raise SourceError(f"source {self.name}: raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(frame, pd.DataFrame):
            raise SourceError(
                f"source {self.name}: expected a pandas DataFrame, got {type(frame).__name__}"
            )
        frame = normalize_time(frame, self.time_column, f"source {self.name}")
        return _filter(frame, self.time_column, start, end)


def import_ref(ref: str, base: Path | None = None) -> Any:
    """Import ``module:attribute``; a module file in ``base`` (the project folder) wins.

    A module found as a file in ``base`` is (re)loaded from that file, so two projects with
    their own ``pipeline.py`` in one process each get their own code.
    """
    module_name, _, attr = ref.partition(":")
    module: Any = None
    try:
        local = base / (module_name.replace(".", "/") + ".py") if base is not None else None
        if local is not None and local.is_file():
            loaded = sys.modules.get(module_name)
            loaded_file = getattr(loaded, "__file__", None)
            if (
                loaded is not None
                and loaded_file
                and Path(loaded_file).resolve() == local.resolve()
            ):
                module = loaded
            else:
                spec = importlib.util.spec_from_file_location(module_name, local)
                if spec is None or spec.loader is None:
                    raise ImportError(f"cannot load {local}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[module_name] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    sys.modules.pop(module_name, None)
                    raise
        else:
            module = importlib.import_module(module_name)
    except Exception as exc:
        where = f" ({local})" if local is not None and local.is_file() else ""
        raise ConfigError(
            f"cannot import module '{module_name}'{where} for '{ref}': {type(exc).__name__}: {exc}"
        ) from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(
            f"module '{module_name}' has no attribute '{attr}' (from '{ref}')"
        ) from None


def make_source(spec: Any, base: Path) -> Source:
    """Build a source from its validated config (``retrainer.config`` source models)."""
    kind = spec.kind
    if kind in ("parquet", "csv"):
        return FileSource(resolve_url(spec.url, base), time_column=spec.time_column, format=kind)
    if kind == "sql":
        url = spec.url
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            rel = url.removeprefix("sqlite:///")
            if rel and rel != ":memory:":
                url = "sqlite:///" + str((base / rel).resolve())
        return SQLSource(url, spec.query, time_column=spec.time_column)
    if kind == "callable":
        fn = import_ref(spec.function, base)
        return CallableSource(fn, time_column=spec.time_column, name=spec.function)
    raise ConfigError(f"unknown source kind {kind!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameSummary:
    """What a snapshot records of a loaded frame."""

    rows: int
    schema: dict[str, str]
    fingerprint: str
    min_time: datetime | None
    max_time: datetime | None


def _mixed(vals: np.ndarray) -> np.ndarray:
    """pandas' mixing of 64-bit values (``pandas.core.util.hashing._hash_ndarray``), in place."""
    vals ^= vals >> 30
    vals *= np.uint64(0xBF58476D1CE4E5B9)
    vals ^= vals >> 27
    vals *= np.uint64(0x94D049BB133111EB)
    vals ^= vals >> 31
    return vals


def _plain_hashes(block: np.ndarray) -> np.ndarray | None:
    """``pd.util.hash_array`` of each column of a 2-D NumPy array of one dtype (same values),
    or None for a dtype hashed another way (objects, strings, complex numbers...)."""
    dtype = block.dtype
    if dtype.kind == "b":
        return _mixed(block.astype("u8"))
    if dtype.kind in "mM":
        return _mixed(block.view("i8").astype("u8"))
    if dtype.kind not in "iuf" or dtype.itemsize > 8:
        return None
    uint = f"u{dtype.itemsize}"
    uints = block.view(uint).astype("u8")
    if dtype.kind == "f":  # one bit pattern for every NaN, and for 0.0 and -0.0
        uints[np.isnan(block)] = np.array(np.nan, dtype=dtype).view(uint)
        uints[uints == np.array(-0.0, dtype=dtype).view(uint)] = 0
    return _mixed(uints)


def column_arrays(frame: pd.DataFrame) -> list[Any]:
    """Each column's values (NumPy or extension array), without building a Series per column."""
    arrays = getattr(frame, "_iter_column_arrays", None)
    if arrays is None:  # pragma: no cover - a pandas without it
        return [frame.iloc[:, i].array for i in range(frame.shape[1])]
    return list(arrays())


def row_hashes(frame: pd.DataFrame, arrays: list[Any] | None = None) -> np.ndarray:
    """``pd.util.hash_pandas_object(frame, index=False)`` as a uint64 array: the same values.

    Columns of one plain NumPy dtype (numbers, booleans, datetimes) are hashed together as a
    2-D array, a few NumPy calls for the lot instead of a dozen per column; other columns
    (objects, strings, extension dtypes) are hashed by pandas, one by one. ``arrays``: the
    frame's column arrays, when the caller has them already.
    """
    if arrays is None:
        arrays = column_arrays(frame)
    columns: list[Any] = []
    groups: dict[np.dtype[Any], list[tuple[int, np.ndarray]]] = {}
    for i, values in enumerate(arrays):
        columns.append(None)
        if isinstance(values, np.ndarray) and values.dtype.kind in "biufmM":
            groups.setdefault(values.dtype, []).append((i, values))
        else:
            columns[i] = pd.util.hash_array(values)
    for members in groups.values():
        block = np.stack([values for _, values in members], axis=1)
        hashed = _plain_hashes(block)
        for j, (i, values) in enumerate(members):
            columns[i] = pd.util.hash_array(values) if hashed is None else hashed[:, j]
    # pandas.core.util.hashing.combine_hash_arrays
    out = np.full(len(frame), 0x345678, dtype=np.uint64)
    mult = np.uint64(1000003)
    for i, column in enumerate(columns):
        inverse = len(columns) - i
        out ^= column
        out *= mult
        mult += np.uint64(82520 + inverse + inverse)
    out += np.uint64(97531)
    return out


@functools.lru_cache(maxsize=1024)
def _numpy_dtype_name(dtype: np.dtype[Any]) -> str:
    return str(dtype)  # NumPy builds the name anew on each call: remembered


def _dtype_name(dtype: Any) -> str:
    """``str(dtype)``, remembered for NumPy dtypes."""
    return _numpy_dtype_name(dtype) if isinstance(dtype, np.dtype) else str(dtype)


def _utc_instant(value: Any) -> datetime:
    """A time column's value as an aware UTC datetime (naive values are UTC)."""
    moment = pd.Timestamp(value)
    if moment.tzinfo is not None:
        moment = moment.tz_convert("UTC").tz_localize(None)
    return moment.to_pydatetime().replace(tzinfo=UTC)


def snapshot_of(
    frame: pd.DataFrame, time_column: str, *, hashes: np.ndarray | None = None
) -> FrameSummary:
    """Rows, schema, time range and a sha256 content fingerprint of ``frame``.

    The fingerprint covers column names, dtypes and every value (row order included), so
    the same data gives the same fingerprint in any process. ``hashes``: ``row_hashes(frame)``
    when the caller knows them already (a replay slices them from its whole frame's).
    """
    arrays = column_arrays(frame)
    names = frame.columns.tolist()
    schema = {str(c): _dtype_name(a.dtype) for c, a in zip(names, arrays, strict=True)}
    h = hashlib.sha256()
    h.update(repr(sorted(schema.items())).encode())
    h.update(str(len(frame)).encode())
    lo = hi = None
    if len(frame):
        if hashes is None or len(hashes) != len(frame):
            hashes = row_hashes(frame, arrays)
        h.update(hashes.tobytes())
        at = [i for i, c in enumerate(names) if c == time_column]
        if at:
            times = arrays[at[0]]
            lo, hi = _utc_instant(times[0]), _utc_instant(times[-1])
    return FrameSummary(
        rows=len(frame), schema=schema, fingerprint=h.hexdigest(), min_time=lo, max_time=hi
    )
