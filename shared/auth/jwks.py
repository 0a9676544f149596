"""Each identity provider's keys: fetched lazily, refreshed in the background, served stale on failure.

The shape is go-oidc's and Envoy's: keys are fetched on first use; once they are `refresh_ahead` of
their TTL old a background refresh starts while requests keep using them; an unknown key id causes at
most one refetch per cooldown per provider, shared by every request that wants it (single-flight); a
failed or garbage answer never replaces good keys, which keep being served for up to `max_stale` past
their TTL ("stale keys are better than no keys"). There is no lock: the event loop is single-threaded,
and concurrent requests share the in-flight refresh task instead of queueing behind a lock held across
network I/O. Refresh tasks are shielded, so a caller that goes away does not cancel a shared fetch.

Sources are keyed by the provider's name and everything that decides where its keys come from, so a
configuration change takes effect at once and never serves one provider's keys to another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from ..config.model import IdentityProvider
from ..telemetry import KEY_REFRESHES
from .discovery import DiscoveryError, discovery_url, jwks_uri_from
from .fetch import Fetcher, FetchError
from .jwk import KeySet, KeySetError, PublicKey, parse_jwks
from .redact import show
from .trace import Refused

log = logging.getLogger("gateway.auth.jwks")


@dataclass(frozen=True, slots=True)
class CachePolicy:
    ttl: float = 600.0
    max_stale: float = 86400.0      # how long past the TTL last-known-good keys are still served
    cooldown: float = 30.0          # least time between two refetches caused by unknown key ids
    retry: float = 1.0              # first retry after a failure; doubles up to the cooldown
    deadline: float = 5.0           # one whole refresh, discovery included
    refresh_ahead: float = 0.9      # background refresh once keys are this fraction of the TTL old


@dataclass(frozen=True, slots=True)
class SourceId:
    provider: str
    jwks_uri: str | None
    issuer: str | None
    discovery: bool
    allow_private_network: bool

    @classmethod
    def of(cls, p: IdentityProvider) -> SourceId:
        return cls(p.name, p.jwks_uri, p.issuer, p.discovery, p.allow_private_network)


@dataclass(frozen=True, slots=True)
class Fetched:
    keyset: KeySet
    jwks_uri: str
    mono: float      # monotonic time of the fetch, for ages
    wall: float      # wall time of the fetch, for reports
    raw: bytes = b""             # the JWKS document as served, kept so the timer can store it
    origin: str = "provider"     # provider | table (last-known-good stored by the timer)


@dataclass(frozen=True, slots=True)
class SavedKeys:
    """A provider's JWKS as last fetched by the timer: public data, stored so that a cold process
    can serve known key ids before (or without) reaching the provider."""

    source: SourceId
    jwks_uri: str
    raw: bytes
    fetched_at: float   # wall clock


# One read of every provider's saved keys; a cold process calls it once, before any provider.
Seeder = Callable[[], Awaitable[Mapping[SourceId, SavedKeys]]]


@dataclass(frozen=True, slots=True)
class KeyHit:
    key: PublicKey
    jwks_uri: str
    state: str       # fresh | stale | fetched
    age: float


@dataclass(frozen=True, slots=True)
class KeyStatus:
    provider: str
    jwks_uri: str | None
    kids: tuple[str, ...]
    fetched_at: float | None        # wall clock
    age_seconds: float | None
    stale: bool
    usable: bool
    last_error: str | None
    last_error_at: float | None     # wall clock
    fetches: int
    origin: str | None = None       # provider | table (last-known-good from the timer)


class KeySource:
    """One provider's keys and the state of their refreshes."""

    def __init__(self, source: SourceId, *, fetcher: Fetcher, policy: CachePolicy,
                 monotonic: Callable[[], float], wall: Callable[[], float],
                 tasks: set[asyncio.Task[str | None]], seeder: Seeder | None = None) -> None:
        self.source = source
        self._fetcher = fetcher
        self._policy = policy
        self._mono = monotonic
        self._wall = wall
        self._tasks = tasks
        self.fetched: Fetched | None = None
        self.last_attempt: float | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.failures = 0
        self.fetches = 0
        self._inflight: asyncio.Task[str | None] | None = None
        self._seeder = seeder

    # -- state ------------------------------------------------------------------------------------

    def usable(self, now: float) -> Fetched | None:
        f = self.fetched
        if f is None or now - f.mono > self._policy.ttl + self._policy.max_stale:
            return None
        return f

    def _backoff(self) -> float:
        if not self.failures:
            return 0.0
        ceiling = max(self._policy.cooldown, self._policy.retry)
        return min(ceiling, self._policy.retry * 2 ** min(self.failures - 1, 30))

    def _elapsed(self, now: float) -> float:
        return float("inf") if self.last_attempt is None else now - self.last_attempt

    # -- fetching ---------------------------------------------------------------------------------

    def _start(self, now: float) -> asyncio.Task[str | None]:
        if self._inflight is not None:
            return self._inflight
        self.last_attempt = now
        self.fetches += 1
        task = asyncio.get_running_loop().create_task(self._run(), name=f"jwks:{self.source.provider}")
        self._inflight = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _maybe_start(self, now: float, min_interval: float) -> asyncio.Task[str | None] | None:
        """The in-flight refresh, or a new one if the last attempt is at least `min_interval` old."""
        if self._inflight is not None:
            return self._inflight
        if self._elapsed(now) >= min_interval:
            return self._start(now)
        return None

    def maybe_background(self, now: float) -> None:
        f = self.fetched
        if f is not None and now - f.mono >= self._policy.ttl * self._policy.refresh_ahead:
            self._maybe_start(now, self._backoff())

    async def refresh(self) -> str | None:
        """Refresh now (joining one in flight); the error text, or None on success."""
        return await asyncio.shield(self._start(self._mono()))

    async def _run(self) -> str | None:
        s = self.source
        uri = s.jwks_uri or ""
        try:
            async with asyncio.timeout(self._policy.deadline):
                if s.discovery and s.issuer:
                    uri = discovery_url(s.issuer)
                    raw = await self._fetcher.get(uri, allow_private_network=s.allow_private_network)
                    uri = jwks_uri_from(raw, s.issuer)
                raw = await self._fetcher.get(uri, allow_private_network=s.allow_private_network)
            keyset, dropped = parse_jwks(raw)
        except TimeoutError:
            error = f"no complete answer within {self._policy.deadline:g} s"
        except (FetchError, KeySetError, DiscoveryError) as exc:
            error = str(exc)
        except Exception:
            log.exception("jwks refresh failed unexpectedly provider=%s", s.provider)
            error = "internal error while refreshing keys"
        else:
            for kid, reason in dropped:
                log.warning("jwks key refused provider=%s kid=%s reason=%s", s.provider, show(kid), reason)
            self.fetched = Fetched(keyset, uri, self._mono(), self._wall(), raw, "provider")
            self.failures, self.last_error = 0, None
            KEY_REFRESHES.add(1, {"gateway.provider": s.provider, "gateway.outcome": "ok"})
            log.info("jwks refreshed provider=%s uri=%s keys=%d kids=%s", s.provider, uri, len(keyset),
                     ",".join(show(k, 40) for k in keyset.kids()))
            return None
        finally:
            self._inflight = None
        self.failures += 1
        self.last_error, self.last_error_at = error, self._wall()
        KEY_REFRESHES.add(1, {"gateway.provider": s.provider, "gateway.outcome": "failed"})
        held = len(self.fetched.keyset) if self.fetched else 0
        log.warning("jwks refresh failed provider=%s uri=%s error=%s keeping=%d last-known-good keys",
                    s.provider, uri, error, held)
        return error

    # -- lookups ----------------------------------------------------------------------------------

    async def seed(self) -> None:
        """Adopt the keys the timer stored for exactly this source, if still within max-stale: once."""
        seeder, self._seeder = self._seeder, None
        if seeder is None or self.fetched is not None:
            return
        saved = (await seeder()).get(self.source)
        if saved is None:
            return
        age = max(0.0, self._wall() - saved.fetched_at)
        if age > self._policy.ttl + self._policy.max_stale:
            return
        try:
            keyset, _ = parse_jwks(saved.raw)
        except KeySetError as exc:
            log.warning("stored keys of provider=%s ignored: %s", self.source.provider, exc)
            return
        if self.fetched is None:
            self.fetched = Fetched(keyset, saved.jwks_uri, self._mono() - age, saved.fetched_at,
                                   saved.raw, "table")
            log.info("jwks seeded from last-known-good provider=%s keys=%d age=%.0fs",
                     self.source.provider, len(keyset), age)

    async def key(self, kid: str | None) -> KeyHit:
        """The key with this id (or the only key, for a token without one), or `Refused`."""
        if self._seeder is not None:
            await self.seed()
        now = self._mono()
        current = self.usable(now)
        state = "fresh"
        if current is None:
            task = self._maybe_start(now, self._backoff())
            if task is not None:
                await asyncio.shield(task)
                state = "fetched"
            current = self.usable(self._mono())
            if current is None:
                raise Refused("key", self._unavailable(),
                              "the identity provider's signing keys are unavailable")
        else:
            if now - current.mono > self._policy.ttl:
                state = "stale"
            self.maybe_background(now)
        key = self._find(current.keyset, kid)
        if (key is None and kid is not None and kid not in current.keyset.refused
                and state != "fetched"):
            task = self._maybe_start(now, self._policy.cooldown)
            if task is not None:
                await asyncio.shield(task)
                state = "fetched"
                current = self.usable(self._mono()) or current
                key = self._find(current.keyset, kid)
        if key is None:
            raise Refused("key", *self._why_not(kid, current.keyset))
        return KeyHit(key, current.jwks_uri, state, self._mono() - current.mono)

    def holds(self, kid: str | None, thumbprint: str) -> bool:
        """Whether the current keys still hold this key (no fetch), for verified-token cache hits."""
        now = self._mono()
        current = self.usable(now)
        if current is None:
            return False
        self.maybe_background(now)
        key = self._find(current.keyset, kid)
        return key is not None and key.thumbprint == thumbprint

    @staticmethod
    def _find(keyset: KeySet, kid: str | None) -> PublicKey | None:
        return keyset.sole() if kid is None else keyset.by_kid.get(kid)

    def _unavailable(self) -> str:
        name = self.source.provider
        if self.fetched is not None:
            return (f"signing keys of identity provider {name!r} are unavailable: the last-known-good keys "
                    f"are past the max-stale limit and the last refresh failed ({self.last_error})")
        return (f"signing keys of identity provider {name!r} are unavailable: "
                f"{self.last_error or 'not fetched yet'}")

    def _why_not(self, kid: str | None, keyset: KeySet) -> tuple[str, str]:
        """The reason (for the log and explain) and its public form (for the caller)."""
        name = self.source.provider
        if kid is None:
            return (f"token has no kid and identity provider {name!r} has {len(keyset)} keys: "
                    "a kid is required to choose one", "token has no kid and its issuer has several keys")
        if kid in keyset.refused:
            return (f"key {show(kid)} of identity provider {name!r} is not usable: {keyset.refused[kid]}",
                    "the key with this key id is not usable")
        if self.failures:
            return (f"unknown key id {show(kid)} for identity provider {name!r}: its signing keys are "
                    f"unavailable (the last refresh failed: {self.last_error}); only "
                    f"{len(keyset)} last-known-good keys are held",
                    "unknown key id (the identity provider's signing keys are unavailable)")
        return f"unknown key id {show(kid)} for identity provider {name!r}", "unknown key id"

    def status(self) -> KeyStatus:
        now = self._mono()
        f = self.fetched
        age = None if f is None else now - f.mono
        return KeyStatus(
            provider=self.source.provider, jwks_uri=f.jwks_uri if f else self.source.jwks_uri,
            kids=tuple(f.keyset.kids()) if f else (), fetched_at=f.wall if f else None, age_seconds=age,
            stale=age is not None and age > self._policy.ttl, usable=self.usable(now) is not None,
            last_error=self.last_error, last_error_at=self.last_error_at, fetches=self.fetches,
            origin=f.origin if f else None)

    def saved(self) -> SavedKeys | None:
        """What the timer stores: keys fetched from the provider itself, never re-stored seeds."""
        f = self.fetched
        if f is None or f.origin != "provider" or not f.raw:
            return None
        return SavedKeys(self.source, f.jwks_uri, f.raw, f.wall)


class KeyCache:
    """Every provider's `KeySource`, created on first use (no I/O at construction)."""

    def __init__(self, *, fetcher: Fetcher, policy: CachePolicy, monotonic: Callable[[], float],
                 wall: Callable[[], float], load_saved: Seeder | None = None) -> None:
        self._fetcher = fetcher
        self._policy = policy
        self._mono = monotonic
        self._wall = wall
        self._sources: dict[SourceId, KeySource] = {}
        self._tasks: set[asyncio.Task[str | None]] = set()
        self._load_saved = load_saved
        self._saved: asyncio.Task[Mapping[SourceId, SavedKeys]] | None = None

    async def _saved_keys(self) -> Mapping[SourceId, SavedKeys]:
        """Every provider's stored keys from one shared read; a failed read means none."""
        if self._saved is None:
            assert self._load_saved is not None
            self._saved = asyncio.get_running_loop().create_task(self._read_saved())
        return await asyncio.shield(self._saved)

    async def _read_saved(self) -> Mapping[SourceId, SavedKeys]:
        assert self._load_saved is not None
        try:
            return await self._load_saved()
        except Exception as exc:
            log.warning("last-known-good keys could not be read: %s", exc)
            return {}

    def source(self, provider: IdentityProvider) -> KeySource:
        sid = SourceId.of(provider)
        src = self._sources.get(sid)
        if src is None:
            src = self._sources[sid] = KeySource(
                sid, fetcher=self._fetcher, policy=self._policy, monotonic=self._mono, wall=self._wall,
                tasks=self._tasks, seeder=self._saved_keys if self._load_saved is not None else None)
        return src

    def detached(self, provider: IdentityProvider) -> KeySource:
        """A source for `provider` that the cache does not keep: a one-off check of its keys."""
        return KeySource(SourceId.of(provider), fetcher=self._fetcher, policy=self._policy,
                         monotonic=self._mono, wall=self._wall, tasks=self._tasks)

    def now(self) -> float:
        return self._mono()

    def peek(self, provider: IdentityProvider) -> KeySource | None:
        return self._sources.get(SourceId.of(provider))

    def prune(self, providers: Iterable[IdentityProvider]) -> None:
        """Forget sources no provider of the configuration uses any more."""
        keep = {SourceId.of(p) for p in providers}
        for sid in [s for s in self._sources if s not in keep]:
            del self._sources[sid]

    async def quiesce(self) -> None:
        """Wait for every refresh in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self._tasks.clear()
