"""Contract tests run against every ArtifactStore adapter, plus local-disk specifics."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fsspec
import pytest

from retrainer.adapters.artifacts import (
    ArtifactRef,
    ArtifactStore,
    FsspecArtifactStore,
    InMemoryArtifactStore,
    LocalArtifactStore,
    open_artifact_store,
)
from retrainer.errors import ArtifactIntegrityError, ModelNotFoundError

BLOB = b"a model's bytes " * 1000


def _local(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "artifacts")


def _memory(tmp_path: Path) -> InMemoryArtifactStore:
    return InMemoryArtifactStore()


@pytest.fixture(params=[_local, _memory, "s3"], ids=["local", "memory", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> FsspecArtifactStore:
    if request.param == "s3":  # a real S3 API: moto's server on loopback (tests/s3.py)
        bucket = request.getfixturevalue("s3_bucket")
        opened = open_artifact_store(f"s3://{bucket}/artifacts")
        assert isinstance(opened, FsspecArtifactStore)
        return opened
    make: Callable[[Path], FsspecArtifactStore] = request.param
    return make(tmp_path)


def _overwrite(url: str, data: bytes) -> None:
    """Change a stored blob behind the store's back."""
    with fsspec.open(url, "wb") as f:
        f.write(data)


def _read(url: str) -> bytes:
    with fsspec.open(url, "rb") as f:
        data: bytes = f.read()
    return data


# --- contract: every adapter -------------------------------------------------------------


def test_put_then_get_round_trips(store: ArtifactStore) -> None:
    ref = store.put(BLOB)
    assert ref == ArtifactRef(
        sha256=hashlib.sha256(BLOB).hexdigest(), size=len(BLOB), url=store.url(ref.sha256)
    )
    assert store.exists(ref.sha256)
    assert store.get(ref.sha256) == BLOB
    assert _read(ref.url) == BLOB


def test_put_is_idempotent(store: ArtifactStore) -> None:
    first = store.put(BLOB)
    second = store.put(BLOB)
    assert first == second
    assert store.get(first.sha256) == BLOB


def test_empty_blob_round_trips(store: ArtifactStore) -> None:
    ref = store.put(b"")
    assert ref.size == 0
    assert store.get(ref.sha256) == b""


def test_key_is_case_insensitive(store: ArtifactStore) -> None:
    ref = store.put(BLOB)
    assert store.get(ref.sha256.upper()) == BLOB


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: b[:10] + bytes([b[10] ^ 0x01]) + b[11:], id="flipped-byte"),
        pytest.param(lambda b: b[: len(b) // 2], id="truncated"),
    ],
)
def test_damaged_blob_is_refused(store: ArtifactStore, damage: Callable[[bytes], bytes]) -> None:
    ref = store.put(BLOB)
    damaged = damage(BLOB)
    _overwrite(ref.url, damaged)
    with pytest.raises(ArtifactIntegrityError) as info:
        store.get(ref.sha256)
    message = str(info.value)
    assert ref.url in message
    assert ref.sha256 in message
    assert hashlib.sha256(damaged).hexdigest() in message
    assert f"{len(damaged)} bytes" in message
    assert "must not be loaded" in message


def test_integrity_error_names_the_expected_size_when_given(store: FsspecArtifactStore) -> None:
    ref = store.put(BLOB)
    _overwrite(ref.url, BLOB[:-1])
    with pytest.raises(ArtifactIntegrityError, match=f"{len(BLOB)} bytes"):
        store.get(ref.sha256, size=ref.size)


def test_put_repairs_a_truncated_blob(store: ArtifactStore) -> None:
    ref = store.put(BLOB)
    _overwrite(ref.url, BLOB[:100])
    assert store.put(BLOB) == ref
    assert store.get(ref.sha256) == BLOB


def test_missing_blob_is_not_found(store: ArtifactStore) -> None:
    sha = hashlib.sha256(b"never stored").hexdigest()
    assert not store.exists(sha)
    with pytest.raises(ModelNotFoundError, match=sha):
        store.get(sha)


@pytest.mark.parametrize("key", ["../../etc/passwd", "abc", "g" * 64, ""])
def test_malformed_key_is_refused(store: ArtifactStore, key: str) -> None:
    with pytest.raises(ModelNotFoundError, match="64 hexadecimal digits"):
        store.get(key)


# --- in-memory specifics ------------------------------------------------------------------


def test_memory_blobs_are_visible_to_another_store_on_the_same_root() -> None:
    writer = InMemoryArtifactStore("memory://tests/shared-root")
    ref = writer.put(BLOB)
    assert ref.url.startswith("memory://")
    assert open_artifact_store("memory://tests/shared-root").get(ref.sha256) == BLOB


def test_default_memory_stores_do_not_share_blobs() -> None:
    ref = InMemoryArtifactStore().put(BLOB)
    assert not InMemoryArtifactStore().exists(ref.sha256)


# --- local-disk specifics -----------------------------------------------------------------


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_local_layout_and_no_temp_files_left(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    refs = [store.put(BLOB), store.put(b"other"), store.put(BLOB)]
    expected = sorted({tmp_path / "sha256" / r.sha256[:2] / r.sha256 for r in refs})
    assert _files(tmp_path) == expected
    for ref in refs:
        path = tmp_path / "sha256" / ref.sha256[:2] / ref.sha256
        assert path.read_bytes() == (BLOB if ref.size == len(BLOB) else b"other")
        assert ref.url == path.as_uri()


def test_leftover_temp_file_from_crashed_writer_is_ignored(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    sha = hashlib.sha256(BLOB).hexdigest()
    folder = tmp_path / "sha256" / sha[:2]
    folder.mkdir(parents=True)
    leftover = folder / f".{sha}.deadbeef.tmp"
    leftover.write_bytes(BLOB[:100])  # a writer died half-way

    assert not store.exists(sha)
    with pytest.raises(ModelNotFoundError):
        store.get(sha)
    ref = store.put(BLOB)
    assert store.get(ref.sha256) == BLOB
    assert (folder / sha).read_bytes() == BLOB
    assert leftover.read_bytes() == BLOB[:100]  # not ours to delete; never read


def test_failed_write_leaves_no_blob_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalArtifactStore(tmp_path)

    def crash(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("retrainer.adapters.artifacts.os.fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        store.put(BLOB)
    monkeypatch.undo()
    assert _files(tmp_path) == []
    assert not store.exists(hashlib.sha256(BLOB).hexdigest())


def test_relative_path_is_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_artifact_store("artifacts")
    assert isinstance(store, LocalArtifactStore)
    ref = store.put(BLOB)
    monkeypatch.chdir("/")
    assert ref.url == (tmp_path / "artifacts" / "sha256" / ref.sha256[:2] / ref.sha256).as_uri()
    assert _read(ref.url) == BLOB
    assert store.get(ref.sha256) == BLOB


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("memory://tests/open", InMemoryArtifactStore),
        ("some/folder", LocalArtifactStore),
        ("file:///tmp/some/folder", LocalArtifactStore),
    ],
)
def test_open_artifact_store_picks_the_adapter(url: str, kind: type) -> None:
    assert type(open_artifact_store(url)) is kind


def test_concurrent_puts_of_the_same_blob(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    blobs = [BLOB, BLOB + b"!"] * 8
    with ThreadPoolExecutor(max_workers=8) as pool:
        refs = list(pool.map(store.put, blobs))
    assert len({r.sha256 for r in refs}) == 2
    for ref, blob in zip(refs, blobs, strict=True):
        assert store.get(ref.sha256) == blob
    assert len(_files(tmp_path)) == 2


# --- verify: what promote, rollback and a run's deploy step check -----------------------------


def test_verify_passes_an_intact_blob(store: FsspecArtifactStore) -> None:
    ref = store.put(BLOB)
    store.verify(ref.sha256, ref.size)


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        pytest.param(lambda b: None, "missing (no such file)", id="deleted"),
        pytest.param(
            lambda b: b[:10] + bytes([b[10] ^ 0x01]) + b[11:], "sha256 differs", id="flipped"
        ),
        pytest.param(
            lambda b: b + b"x",
            f"size differs (expected {len(BLOB)} bytes, found {len(BLOB) + 1})",
            id="appended",
        ),
        pytest.param(
            lambda b: b[:-1],
            f"size differs (expected {len(BLOB)} bytes, found {len(BLOB) - 1})",
            id="truncated",
        ),
    ],
)
def test_verify_says_what_is_wrong_in_one_line(
    store: FsspecArtifactStore, damage: Callable[[bytes], bytes | None], problem: str
) -> None:
    ref = store.put(BLOB)
    damaged = damage(BLOB)
    if damaged is None:
        assert store.remove(ref.url)
    else:
        _overwrite(ref.url, damaged)
    with pytest.raises(ArtifactIntegrityError) as info:
        store.verify(ref.sha256, ref.size)
    assert str(info.value) == f"artifact {ref.url}: {problem}" or (
        problem == "sha256 differs"
        and str(info.value).startswith(f"artifact {ref.url}: sha256 differs (expected {ref.sha256}")
    )
    assert "\n" not in str(info.value)


def test_the_integrity_message_never_says_size_not_recorded(store: FsspecArtifactStore) -> None:
    # the size is recorded with every version; a caller that did not pass it got this text
    ref = store.put(BLOB)
    _overwrite(ref.url, BLOB[:-1])
    with pytest.raises(ArtifactIntegrityError) as info:
        store.get(ref.sha256)
    assert "not recorded" not in str(info.value)
    assert "sha256 differs" in str(info.value)


# --- files, remove and the age of a blob: what retrainer gc works from ------------------------


def _age(store: FsspecArtifactStore, url: str, when: datetime) -> None:
    fs, path = fsspec.core.url_to_fs(url)
    if isinstance(store, InMemoryArtifactStore):
        fs.store[path].modified = when
    elif url.startswith("s3://"):
        # S3 has no call to backdate an object; moto's server runs in this process
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        bucket, _, key = path.partition("/")
        obj = s3_backends[DEFAULT_ACCOUNT_ID]["global"].get_object(bucket, key)
        obj.last_modified = when.replace(tzinfo=None)  # moto keeps naive UTC
        fs.invalidate_cache()
    else:
        os.utime(path, (when.timestamp(), when.timestamp()))


def test_files_lists_blobs_and_leftover_temp_files_only(store: FsspecArtifactStore) -> None:
    ref = store.put(BLOB)
    folder = ref.url.rsplit("/", 1)[0]
    _overwrite(f"{folder}/.{ref.sha256}.{'0' * 32}.tmp", BLOB[:5])  # an interrupted put
    _overwrite(f"{folder}/notes.txt", b"not ours")
    _overwrite(f"{folder.rsplit('/', 2)[0]}/README", b"not ours either")
    files = store.files()
    assert sorted((f.sha256, f.size) for f in files if f.sha256) == [(ref.sha256, len(BLOB))]
    [tmp] = [f for f in files if f.sha256 is None]
    assert tmp.size == 5 and tmp.url.endswith(".tmp")
    assert all(f.modified.tzinfo is not None for f in files)


def test_remove_is_idempotent_and_stays_inside_the_store(store: FsspecArtifactStore) -> None:
    ref = store.put(BLOB)
    assert store.remove(ref.url) and not store.remove(ref.url)
    assert not store.exists(ref.sha256)
    with pytest.raises(ValueError, match="not a file of the artifact store"):
        store.remove("memory:///elsewhere/x")


def test_putting_bytes_already_stored_makes_the_blob_young_again(
    store: FsspecArtifactStore,
) -> None:
    # a run that stores bytes already present is about to reference that old blob: gc must
    # see it as just written, or it could remove it between the put and the register
    ref = store.put(BLOB)
    old = datetime.now(UTC) - timedelta(days=30)
    _age(store, ref.url, old)
    [before] = store.files()
    assert before.modified < old + timedelta(minutes=1)
    assert store.put(BLOB) == ref
    [after] = store.files()
    assert after.modified > datetime.now(UTC) - timedelta(minutes=5)
    assert store.get(ref.sha256) == BLOB


def test_putting_bytes_already_stored_works_on_a_read_only_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalArtifactStore(tmp_path)
    ref = store.put(BLOB)

    def refused(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("retrainer.adapters.artifacts.os.utime", refused)
    monkeypatch.setattr("retrainer.adapters.artifacts.write_local_atomically", refused)
    assert store.put(BLOB) == ref  # the whole blob is there: as before, no error
    with pytest.raises(PermissionError):
        store.put(b"new bytes")  # a blob that is not there cannot be written
