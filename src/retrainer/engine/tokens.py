"""API tokens: bearer tokens with scopes, made once, stored hashed, revocable.

A token reads ``rt_<id>_<secret>``: ``id`` (12 hex digits) is public, it names the token in
``retrainer token list``, in events and in the one indexed lookup that :func:`verify_token`
makes; ``secret`` is 32 random bytes (URL-safe base64) from the operating system's CSPRNG,
shown once by :func:`create_token` and never stored: the store keeps its sha256.

Why sha256 and not a slow password hash (bcrypt, scrypt, Argon2): a slow hash protects secrets
people choose, which an attacker holding the database can guess from a dictionary. A 256-bit
random secret cannot be guessed, fast hash or not (2**256 tries), so a slow hash would buy no
safety and would cost tens of milliseconds on every request. The digests are compared with
:func:`hmac.compare_digest`, in constant time.

No token comes from the environment: a secret in ``RETRAINER_*`` would be unlisted, not
revocable, and as weak as whoever chose it. A deployment makes one with ``retrainer token
create --json`` against its store instead.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from hmac import compare_digest
from typing import TYPE_CHECKING

from retrainer.adapters.metadata.outage import unavailable
from retrainer.core.clock import as_utc
from retrainer.core.types import Event, TokenRecord
from retrainer.errors import ConfigError, RetrainerError

if TYPE_CHECKING:
    from retrainer.engine.project import Project

__all__ = [
    "LAST_USED_EVERY",
    "SCOPES",
    "Token",
    "TokenCache",
    "create_token",
    "list_tokens",
    "revoke_token",
    "verify_token",
]

SCOPES: tuple[str, ...] = ("predict", "feedback", "read", "admin")
"""What a token may do: ``predict``, post ``feedback``, ``read`` the management API; ``admin``
grants every scope (promote, rollback, rollouts)."""

LAST_USED_EVERY = timedelta(minutes=1)
"""A token's ``last_used_at`` is written at most this often: verifying stays a read."""

PREFIX = "rt"
_ID_HEX = 12  # 48 bits: ids never collide in practice, and the store refuses a duplicate
_SECRET_BYTES = 32  # 256 bits, 43 URL-safe base64 characters
_FORMAT = re.compile(r"rt_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_NAME_MAX = 255


@dataclass(frozen=True, slots=True)
class Token:
    """An API token as the API and the CLI see it: no secret, no hash.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> made = datetime(2024, 5, 1, tzinfo=timezone.utc)
    >>> token = Token(id="0123456789ab", name="app", scopes=("predict",), created_at=made,
    ...               revoked_at=None)
    >>> token.allows("predict"), token.allows("read")
    (True, False)
    >>> Token(id="ba9876543210", name="ops", scopes=("admin",), created_at=made,
    ...       revoked_at=None).allows("feedback")
    True
    """

    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        """Whether the token was revoked (it then allows nothing)."""
        return self.revoked_at is not None

    def allows(self, scope: str) -> bool:
        """Whether this token may act in ``scope``: ``admin`` allows every scope, a revoked
        token none."""
        if self.revoked_at is not None:
            return False
        return scope in self.scopes or "admin" in self.scopes


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _view(record: TokenRecord) -> Token:
    return Token(
        id=record.id,
        name=record.name,
        scopes=record.scopes,
        created_at=record.created_at,
        revoked_at=record.revoked_at,
        last_used_at=record.last_used_at,
    )


def _check_scopes(scopes: Sequence[str]) -> tuple[str, ...]:
    """The scopes, known ones only, each once, in :data:`SCOPES` order."""
    if isinstance(scopes, str):
        scopes = [scopes]
    unknown = [s for s in dict.fromkeys(scopes) if s not in SCOPES]
    if unknown:
        raise ConfigError(
            f"--scope: unknown scope{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; expected some of {', '.join(SCOPES)}"
        )
    if not scopes:
        raise ConfigError(
            f"--scope: a token needs at least one scope; expected some of {', '.join(SCOPES)}"
        )
    return tuple(s for s in SCOPES if s in scopes)


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > _NAME_MAX:
        raise ConfigError(
            f"--name: a token's name is 1 to {_NAME_MAX} characters, not blank, saying who or "
            f"what uses it (e.g. 'checkout-service'). Got {name!r}"
        )
    return name


def create_token(
    project: Project, *, name: str, scopes: Sequence[str], now: datetime
) -> tuple[Token, str]:
    """Make a token with ``scopes``; return it and its secret, which is not stored anywhere.

    The store keeps the secret's sha256, and a ``token.created`` event (without the secret)
    in the same write.

    Parameters
    ----------
    project
        The project whose metadata store keeps the token.
    name
        Who or what uses the token (``checkout-service``, ``dashboard``).
    scopes
        Some of :data:`SCOPES`; ``admin`` grants them all.
    now
        When the token is made.

    Returns
    -------
    tuple
        The token and its secret, ``rt_<id>_<secret>``: give it to the client now, it cannot
        be shown again.

    Raises
    ------
    ConfigError
        An unknown scope, no scope, or a blank name.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> from retrainer.engine.tokens import create_token, verify_token
    >>> from retrainer.testing import in_memory_project
    >>> now = datetime(2024, 5, 1, tzinfo=timezone.utc)
    >>> project = in_memory_project()
    >>> token, secret = create_token(project, name="app", scopes=["read", "predict"], now=now)
    >>> token.scopes, secret.startswith(f"rt_{token.id}_")
    (('predict', 'read'), True)
    >>> verify_token(project, secret).name
    'app'
    >>> verify_token(project, secret[:-1] + "x") is None
    True
    >>> project.close()
    """
    name, checked = _check_name(name), _check_scopes(scopes)
    now = as_utc(now)
    token_id = secrets.token_hex(_ID_HEX // 2)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    record = TokenRecord(
        id=token_id, name=name, scopes=checked, secret_sha256=_digest(secret), created_at=now
    )
    event = Event(
        kind="token.created",
        at=now,
        message=f"token {token_id} ({name}) created with scopes {', '.join(checked)}",
        data={"token_id": token_id, "name": name, "scopes": list(checked)},
    )
    stored = project.store.add_token(record, event)
    return _view(stored), f"{PREFIX}_{token_id}_{secret}"


def verify_token(project: Project, secret: str) -> Token | None:
    """The token whose secret is ``secret`` (``rt_<id>_<secret>``), or None if it is
    malformed, unknown, wrong or revoked.

    One lookup by id (the store's primary key), then a constant-time compare of the sha256.
    At most once per :data:`LAST_USED_EVERY` it records the token's ``last_used_at``
    (``project.clock``); that write is bookkeeping: a locked or unreachable database skips it
    rather than fail the request.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> from retrainer.engine.tokens import create_token, revoke_token, verify_token
    >>> from retrainer.testing import in_memory_project
    >>> now = datetime(2024, 5, 1, tzinfo=timezone.utc)
    >>> project = in_memory_project()
    >>> token, secret = create_token(project, name="ops", scopes=["admin"], now=now)
    >>> verify_token(project, secret).allows("feedback")
    True
    >>> verify_token(project, "Bearer " + secret) is None  # the secret only
    True
    >>> _ = revoke_token(project, token.id, now=now)
    >>> verify_token(project, secret) is None
    True
    >>> project.close()
    """
    found = _FORMAT.fullmatch(secret) if isinstance(secret, str) else None
    if found is None:
        return None
    digest = _digest(found[2])  # before the lookup: an unknown id costs the same work
    record = project.store.get_token(found[1])
    if record is None:
        return None
    if not compare_digest(record.secret_sha256, digest):
        return None
    if record.revoked_at is not None:
        return None
    now = project.clock.now()
    due = now - LAST_USED_EVERY
    if record.last_used_at is None or record.last_used_at < due:
        try:
            if project.store.mark_token_used(record.id, at=now, if_before=due):
                record = replace(record, last_used_at=as_utc(now))
        except Exception as exc:
            if not (isinstance(exc, RetrainerError) or unavailable(exc)):
                raise
    return _view(record)


def list_tokens(project: Project) -> list[Token]:
    """Every token of the project, revoked ones too, oldest first; never a secret or a hash.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> from retrainer.engine.tokens import create_token, list_tokens
    >>> from retrainer.testing import in_memory_project
    >>> now = datetime(2024, 5, 1, tzinfo=timezone.utc)
    >>> project = in_memory_project()
    >>> _ = create_token(project, name="app", scopes=["predict"], now=now)
    >>> [(t.name, t.scopes, t.revoked) for t in list_tokens(project)]
    [('app', ('predict',), False)]
    >>> project.close()
    """
    return [_view(record) for record in project.store.list_tokens()]


def revoke_token(project: Project, token_id: str, *, now: datetime) -> Token:
    """Revoke the token ``token_id``: from now on it verifies as no token at all.

    Records a ``token.revoked`` event in the same write. Revoking a revoked token changes
    nothing and returns it (with its first ``revoked_at``).

    Raises
    ------
    TokenNotFoundError
        No token has that id (``retrainer token list`` shows them).

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> from retrainer.engine.tokens import create_token, revoke_token
    >>> from retrainer.testing import in_memory_project
    >>> now = datetime(2024, 5, 1, tzinfo=timezone.utc)
    >>> project = in_memory_project()
    >>> token, _ = create_token(project, name="app", scopes=["predict"], now=now)
    >>> revoke_token(project, token.id, now=now).allows("predict")
    False
    >>> revoke_token(project, "000000000000", now=now)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    retrainer.errors.TokenNotFoundError: No token with id '000000000000' ...
    >>> project.close()
    """
    now = as_utc(now)
    existing = project.store.get_token(token_id)
    name = existing.name if existing is not None else ""
    event = Event(
        kind="token.revoked",
        at=now,
        message=f"token {token_id} ({name}) revoked",
        data={"token_id": token_id, "name": name},
    )
    return _view(project.store.revoke_token(token_id, at=now, event=event))


class TokenCache:
    """:func:`verify_token` with a short memory, for a server's hot path.

    A token verified less than ``ttl`` ago is trusted again without reading the store (a
    sha256 and a dict lookup instead of a database read, ~0.4 ms on SQLite); so a revocation
    reaches a server within ``ttl``. Only tokens that verified are kept (at most ``size``, the
    least recently used go first): an unknown or wrong secret always reads the store. Time is
    ``project.liveness_clock`` (the wall clock, whatever clock the project replays).
    Thread-safe.

    Parameters
    ----------
    project
        The project whose store holds the tokens.
    ttl
        How long a verified token is trusted without a read, in seconds.
    size
        How many verified tokens are kept.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> from retrainer.engine.tokens import TokenCache, create_token, revoke_token
    >>> from retrainer.testing import in_memory_project
    >>> now = datetime(2024, 5, 1, tzinfo=timezone.utc)
    >>> project = in_memory_project()
    >>> token, secret = create_token(project, name="app", scopes=["predict"], now=now)
    >>> cache = TokenCache(project, ttl=0)  # ttl=0: every call reads the store
    >>> cache.verify(secret).name
    'app'
    >>> _ = revoke_token(project, token.id, now=now)
    >>> cache.verify(secret) is None
    True
    >>> project.close()
    """

    def __init__(self, project: Project, *, ttl: float = 5.0, size: int = 4096) -> None:
        self.project = project
        self.ttl = ttl
        self.size = size
        self._lock = threading.Lock()
        self._tokens: OrderedDict[str, tuple[Token, datetime]] = OrderedDict()

    def verify(self, secret: str) -> Token | None:
        """The token whose secret is ``secret``, as :func:`verify_token` answers it (at most
        ``ttl`` seconds ago), or None."""
        if not isinstance(secret, str):
            return None
        key = hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()
        now = self.project.liveness_clock.now()
        with self._lock:
            hit = self._tokens.get(key)
            if hit is not None and hit[1] > now:
                self._tokens.move_to_end(key)
                return hit[0]
        token = verify_token(self.project, secret)
        with self._lock:
            if token is None:
                self._tokens.pop(key, None)
            elif self.ttl > 0:
                self._tokens[key] = (token, now + timedelta(seconds=self.ttl))
                self._tokens.move_to_end(key)
                while len(self._tokens) > self.size:
                    self._tokens.popitem(last=False)
        return token

    def clear(self) -> None:
        """Forget every token (the next calls read the store)."""
        with self._lock:
            self._tokens.clear()
