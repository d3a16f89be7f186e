"""API tokens: made once, stored hashed, verified by one lookup, scoped, revocable."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from retrainer import Project, SimulatedClock
from retrainer.engine import tokens
from retrainer.engine.tokens import (
    LAST_USED_EVERY,
    SCOPES,
    Token,
    TokenCache,
    create_token,
    list_tokens,
    revoke_token,
    verify_token,
)
from retrainer.errors import ConcurrencyError, ConfigError, TokenNotFoundError
from retrainer.testing import in_memory_project

T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(T0)


@pytest.fixture
def project(clock: SimulatedClock) -> Iterator[Project]:
    with in_memory_project(clock=clock) as opened:
        yield opened


def test_create_returns_the_token_and_a_secret_that_verifies(project: Project) -> None:
    token, secret = create_token(project, name="app", scopes=["read", "predict"], now=T0)
    assert token == Token(
        id=token.id, name="app", scopes=("predict", "read"), created_at=T0, revoked_at=None
    )
    prefix, token_id, raw = secret.split("_", 2)
    assert (prefix, token_id) == ("rt", token.id)
    assert len(token.id) == 12 and len(raw) == 43  # 256 random bits, URL-safe base64
    verified = verify_token(project, secret)
    assert verified is not None and verified.id == token.id and verified.allows("predict")


def test_only_the_sha256_of_the_secret_is_stored(project: Project) -> None:
    token, secret = create_token(project, name="app", scopes=["predict"], now=T0)
    record = project.store.get_token(token.id)
    assert record is not None
    raw = secret.split("_", 2)[2]
    assert record.secret_sha256 == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in repr(record) and secret not in repr(record)
    event = project.store.list_events(kinds=["token.created"])[0]
    assert event.data == {"token_id": token.id, "name": "app", "scopes": ["predict"]}
    assert raw not in repr(event) and record.secret_sha256 not in repr(event)


def test_each_token_gets_its_own_id_and_secret(project: Project) -> None:
    made = [create_token(project, name="app", scopes=["predict"], now=T0) for _ in range(20)]
    assert len({t.id for t, _ in made}) == 20
    assert len({s for _, s in made}) == 20
    assert [verify_token(project, s).id for _, s in made] == [t.id for t, _ in made]


def _flip(secret: str, at: int) -> str:
    at %= len(secret)
    char = "A" if secret[at] != "A" else "B"
    return secret[:at] + char + secret[at + 1 :]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: _flip(s, -1),  # wrong secret
        lambda s: _flip(s, len("rt_")),  # another (unknown) id
        lambda s: s[:-1],  # too short
        lambda s: s + "A",  # too long
        lambda s: "Bearer " + s,
        lambda s: s + "\n",
        lambda s: " " + s,
        lambda s: s.upper(),
        lambda s: s.replace("rt_", "xx_", 1),
        lambda s: s.replace("_", "-", 1),
        lambda s: "",
        lambda s: "rt__",
        lambda s: s.split("_", 2)[2],  # the secret without prefix and id
    ],
)
def test_a_wrong_or_malformed_secret_verifies_as_none(project: Project, mangle) -> None:
    _, secret = create_token(project, name="app", scopes=["admin"], now=T0)
    assert verify_token(project, mangle(secret)) is None


@pytest.mark.parametrize("value", [None, 42, b"rt_0123456789ab_" + b"a" * 43])
def test_a_secret_that_is_not_a_string_verifies_as_none(project: Project, value: object) -> None:
    assert verify_token(project, value) is None


def test_a_malformed_secret_costs_no_lookup(project: Project, monkeypatch) -> None:
    def refuse(token_id: str) -> None:
        raise AssertionError(f"looked up {token_id}")

    monkeypatch.setattr(project.store, "get_token", refuse)
    assert verify_token(project, "rt_nothex_xyz") is None


def test_verify_makes_one_lookup_by_id_and_a_constant_time_compare(
    project: Project, monkeypatch
) -> None:
    token, secret = create_token(project, name="app", scopes=["read"], now=T0)
    lookups: list[str] = []
    compares: list[tuple[str, str]] = []
    get_token = project.store.get_token

    def counted(token_id: str):
        lookups.append(token_id)
        return get_token(token_id)

    def spy(a: str, b: str) -> bool:
        compares.append((a, b))
        return a == b

    monkeypatch.setattr(project.store, "get_token", counted)
    monkeypatch.setattr(project.store, "list_tokens", lambda: pytest.fail("scanned every token"))
    monkeypatch.setattr(tokens, "compare_digest", spy)
    assert verify_token(project, secret) is not None
    assert verify_token(project, _flip(secret, -1)) is None
    assert lookups == [token.id, token.id]
    assert len(compares) == 2 and all(len(a) == len(b) == 64 for a, b in compares)
    assert compares[0][0] == compares[0][1] and compares[1][0] != compares[1][1]


def test_tokens_module_compares_with_hmac_compare_digest() -> None:
    import hmac

    assert tokens.compare_digest is hmac.compare_digest


@pytest.mark.parametrize(
    ("scopes", "allowed"),
    [
        (["predict"], {"predict"}),
        (["feedback"], {"feedback"}),
        (["read"], {"read"}),
        (["predict", "feedback"], {"predict", "feedback"}),
        (["admin"], set(SCOPES)),
    ],
)
def test_scopes_allow_themselves_and_admin_allows_all(
    project: Project, scopes: list[str], allowed: set[str]
) -> None:
    _, secret = create_token(project, name="app", scopes=scopes, now=T0)
    token = verify_token(project, secret)
    assert token is not None
    assert {s for s in SCOPES if token.allows(s)} == allowed
    assert not token.allows("bogus") or "admin" in scopes


def test_a_revoked_token_allows_nothing() -> None:
    token = Token(id="a" * 12, name="n", scopes=("admin",), created_at=T0, revoked_at=T0)
    assert token.revoked
    assert not any(token.allows(s) for s in SCOPES)


def test_a_revoked_token_no_longer_verifies_and_says_so(project: Project) -> None:
    token, secret = create_token(project, name="app", scopes=["predict"], now=T0)
    later = T0 + timedelta(hours=1)
    revoked = revoke_token(project, token.id, now=later)
    assert revoked.revoked_at == later and not revoked.allows("predict")
    assert verify_token(project, secret) is None
    assert [t.revoked_at for t in list_tokens(project)] == [later]
    event = project.store.list_events(kinds=["token.revoked"])[0]
    assert event.data == {"token_id": token.id, "name": "app"}
    assert event.at == later


def test_revoking_twice_keeps_the_first_time_and_one_event(project: Project) -> None:
    token, _ = create_token(project, name="app", scopes=["predict"], now=T0)
    first = revoke_token(project, token.id, now=T0 + timedelta(hours=1))
    again = revoke_token(project, token.id, now=T0 + timedelta(hours=2))
    assert again == first
    assert len(project.store.list_events(kinds=["token.revoked"])) == 1


def test_revoking_an_unknown_id_is_a_token_not_found_error_naming_it(project: Project) -> None:
    with pytest.raises(TokenNotFoundError, match="'ffffffffffff'"):
        revoke_token(project, "ffffffffffff", now=T0)
    assert project.store.list_events() == []


def test_other_tokens_survive_a_revocation(project: Project) -> None:
    a, secret_a = create_token(project, name="a", scopes=["predict"], now=T0)
    _, secret_b = create_token(project, name="b", scopes=["predict"], now=T0)
    revoke_token(project, a.id, now=T0)
    assert verify_token(project, secret_a) is None
    verified = verify_token(project, secret_b)
    assert verified is not None and verified.name == "b"


@pytest.mark.parametrize(
    ("scopes", "match"),
    [
        ([], "at least one scope"),
        (["predict", "write"], "unknown scope 'write'"),
        (["Admin"], "unknown scope 'Admin'"),
    ],
)
def test_bad_scopes_are_config_errors(project: Project, scopes: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as caught:
        create_token(project, name="app", scopes=scopes, now=T0)
    assert "predict, feedback, read, admin" in str(caught.value)
    assert project.store.list_tokens() == []


@pytest.mark.parametrize("name", ["", "   ", "x" * 256])
def test_a_blank_or_long_name_is_a_config_error(project: Project, name: str) -> None:
    with pytest.raises(ConfigError, match="--name"):
        create_token(project, name=name, scopes=["predict"], now=T0)


def test_scopes_are_kept_once_in_canonical_order(project: Project) -> None:
    token, _ = create_token(project, name="app", scopes=["read", "predict", "read"], now=T0)
    assert token.scopes == ("predict", "read")


def test_list_tokens_shows_no_secret_and_no_hash(project: Project) -> None:
    _, secret = create_token(project, name="app", scopes=["predict"], now=T0)
    listed = list_tokens(project)
    assert [t.name for t in listed] == ["app"]
    assert not hasattr(listed[0], "secret_sha256")
    record = project.store.get_token(listed[0].id)
    assert record is not None and record.secret_sha256 not in repr(listed)
    assert secret.split("_", 2)[2] not in repr(listed)


def test_last_used_is_written_at_most_once_a_minute(
    project: Project, clock: SimulatedClock, monkeypatch
) -> None:
    token, secret = create_token(project, name="app", scopes=["predict"], now=T0)
    writes: list[datetime] = []
    mark = project.store.mark_token_used

    def counted(token_id: str, *, at: datetime, if_before: datetime) -> bool:
        writes.append(at)
        return mark(token_id, at=at, if_before=if_before)

    monkeypatch.setattr(project.store, "mark_token_used", counted)
    first = verify_token(project, secret)
    assert first is not None and first.last_used_at == T0
    for _ in range(50):
        clock.advance(timedelta(seconds=1))
        assert verify_token(project, secret) is not None
    assert writes == [T0]
    clock.advance(LAST_USED_EVERY)
    assert verify_token(project, secret) is not None
    assert len(writes) == 2
    assert list_tokens(project)[0].last_used_at == clock.now()
    assert token.last_used_at is None


@pytest.mark.parametrize(
    "failure",
    [ConcurrencyError("The metadata database x stayed locked for more than 30 s")],
)
def test_a_failed_last_used_write_never_fails_verification(
    project: Project, monkeypatch, failure: Exception
) -> None:
    _, secret = create_token(project, name="app", scopes=["predict"], now=T0)

    def fail(*args: object, **kwargs: object) -> bool:
        raise failure

    monkeypatch.setattr(project.store, "mark_token_used", fail)
    verified = verify_token(project, secret)
    assert verified is not None and verified.last_used_at is None


def test_a_bug_in_the_last_used_write_is_not_hidden(project: Project, monkeypatch) -> None:
    _, secret = create_token(project, name="app", scopes=["predict"], now=T0)

    def bug(*args: object, **kwargs: object) -> bool:
        raise KeyError("bug")

    monkeypatch.setattr(project.store, "mark_token_used", bug)
    with pytest.raises(KeyError):
        verify_token(project, secret)


def test_tokens_live_in_the_project_store_across_opens(tmp_path) -> None:
    from retrainer.testing import write_project

    folder = write_project(tmp_path / "p")
    with Project.open(folder) as first:
        token, secret = create_token(first, name="app", scopes=["feedback"], now=T0)
    with Project.open(folder) as second:
        verified = verify_token(second, secret)
        assert verified is not None and verified.id == token.id
        assert verified.allows("feedback") and not verified.allows("predict")


# -- the cache of the server's hot path ----------------------------------------------------------


@pytest.fixture
def wall() -> SimulatedClock:
    return SimulatedClock(T0)


def test_the_cache_reads_the_store_once_per_ttl(project: Project, wall: SimulatedClock) -> None:
    project.liveness_clock = wall
    token, secret = create_token(project, name="app", scopes=["predict"], now=T0)
    reads: list[str] = []
    get_token = project.store.get_token

    def counted(token_id: str):
        reads.append(token_id)
        return get_token(token_id)

    project.store.get_token = counted
    cache = TokenCache(project, ttl=5)
    for _ in range(10):
        verified = cache.verify(secret)
        assert verified is not None and verified.id == token.id
    assert reads == [token.id]
    wall.advance(timedelta(seconds=5))
    assert cache.verify(secret) is not None
    assert reads == [token.id, token.id]


def test_a_revocation_reaches_the_cache_within_its_ttl(
    project: Project, wall: SimulatedClock
) -> None:
    project.liveness_clock = wall
    token, secret = create_token(project, name="app", scopes=["predict"], now=T0)
    cache = TokenCache(project, ttl=5)
    assert cache.verify(secret) is not None
    revoke_token(project, token.id, now=T0)
    wall.advance(timedelta(seconds=4))
    assert cache.verify(secret) is not None  # within the ttl: still trusted
    wall.advance(timedelta(seconds=1))
    assert cache.verify(secret) is None
    cache2 = TokenCache(project, ttl=5)
    assert cache2.verify(secret) is None


def test_the_cache_never_keeps_a_failed_secret(project: Project, wall: SimulatedClock) -> None:
    project.liveness_clock = wall
    _, secret = create_token(project, name="app", scopes=["predict"], now=T0)
    cache = TokenCache(project, ttl=60)
    wrong = _flip(secret, -1)
    assert cache.verify(wrong) is None
    assert cache.verify(wrong) is None
    assert cache.verify(None) is None
    assert cache.verify("\udcff") is None
    assert len(cache._tokens) == 0
    assert cache.verify(secret) is not None and len(cache._tokens) == 1


def test_the_cache_is_bounded_least_recently_used_first(
    project: Project, wall: SimulatedClock
) -> None:
    project.liveness_clock = wall
    secrets_ = [create_token(project, name=f"t{i}", scopes=["read"], now=T0)[1] for i in range(3)]
    cache = TokenCache(project, ttl=60, size=2)
    for secret in secrets_:
        assert cache.verify(secret) is not None
    assert len(cache._tokens) == 2
    cache.clear()
    assert len(cache._tokens) == 0
