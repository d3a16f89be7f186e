"""The artifact store port (content-addressed blobs); adapters are written below."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True, kw_only=True)
class ArtifactRef:
    """Where a stored blob is and what it must hash to."""

    sha256: str
    size: int
    url: str


class ArtifactStore(Protocol):
    """Content-addressed, write-once blob storage.

    Contract: ``put`` is atomic (a reader sees the whole blob or none) and idempotent (the same
    bytes give the same ref); ``get`` verifies the sha256 and raises ``ArtifactIntegrityError``
    on a mismatch (tampered or truncated) and ``ModelNotFoundError`` when absent.
    """

    def put(self, data: bytes) -> ArtifactRef: ...

    def get(self, sha256: str) -> bytes: ...

    def exists(self, sha256: str) -> bool: ...

    def url(self, sha256: str) -> str:
        """An fsspec URL another process can read the blob from."""
        ...
