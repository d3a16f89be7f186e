"""How the server answers an error: a status code and ``{"error": ..., "detail": ...}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ApiError(Exception):
    """An answer other than 2xx: ``status``, a short ``error`` code and its ``detail``."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: Any,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = dict(headers or {})
        self.counted = False

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "detail": self.detail}
