"""Counters for limits that must hold across every web process (unknown card numbers per terminal, ...).

With a shared cache configured (CACHE_URL, e.g. Redis) a counter is the cache's atomic increment; on Redis the
count is started with its expiry, incremented and returned in one round trip. Without one the default cache is
local to each process, where a limit would be multiplied by the number of workers, so the count lives in the
database instead: one upsert that increments and returns the new count atomically.

cache_counter_hit counts in the default cache whichever it is, for limits that may be kept per process (the
POS rate limit without a shared cache, as it always was).
"""

from datetime import timedelta

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.db import connection
from django.utils import timezone

from core.models import RateCounter
from core.sql import execute_prepared

_PROCESS_LOCAL_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


def shared_cache() -> bool:
    """Whether the default cache is one every process shares."""
    return settings.CACHES["default"]["BACKEND"] not in _PROCESS_LOCAL_CACHES


def cache_counter_hit(key: str, *, seconds: int, reads: tuple[str, ...] = ()) -> tuple[int, list[int]]:
    """Count one event under `key` in the default cache, kept for `seconds`; return the count so far and the
    counts under `reads` (0 for none).

    On Redis this is one round trip: MULTI, SET key 0 EX seconds NX, INCRBY key 1, GET each read, EXEC. The count
    is created with its expiry in the same transaction as its increment, so it can never be left without one.
    """
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        full_key = backend.make_and_validate_key(key)
        client = backend._cache.get_client(full_key, write=True)
        with client.pipeline(transaction=True) as pipe:
            pipe.set(full_key, 0, ex=seconds, nx=True)
            pipe.incr(full_key)
            for read in reads:
                pipe.get(backend.make_and_validate_key(read))
            results = pipe.execute()
        return int(results[1]), [int(value or 0) for value in results[2:]]
    backend.add(key, 0, timeout=seconds)
    try:
        count = backend.incr(key)
    except ValueError:  # the entry expired between add and incr: the first of a new count
        backend.add(key, 1, timeout=seconds)
        count = 1
    return count, [backend.get(read) or 0 for read in reads]


def counter_hit(key: str, *, seconds: int) -> int:
    """Count one event under `key`, kept for `seconds`; return the count so far."""
    if shared_cache():
        return cache_counter_hit(key, seconds=seconds)[0]
    quote = connection.ops.quote_name
    table, count, expires = quote(RateCounter._meta.db_table), quote("count"), quote("expires_at")
    now = timezone.now()
    # A row left from an expired count starts again at 1 (rows are purged nightly, not at expiry).
    sql = (
        f"INSERT INTO {table} ({quote('key')}, {count}, {expires}) VALUES (%s, 1, %s) "  # noqa: S608 (model's table)
        f"ON CONFLICT ({quote('key')}) DO UPDATE SET "
        f"{count} = CASE WHEN {table}.{expires} <= %s THEN 1 ELSE {table}.{count} + 1 END, "
        f"{expires} = CASE WHEN {table}.{expires} <= %s THEN EXCLUDED.{expires} ELSE {table}.{expires} END "
        f"RETURNING {count}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [key, now + timedelta(seconds=seconds), now, now])
        return cursor.fetchone()[0]


def counter_get(key: str) -> int:
    """The count under `key` (0 when none or expired)."""
    if shared_cache():
        return cache.get(key) or 0
    quote = connection.ops.quote_name
    # Read on every card call of the POS: one prepared statement rather than a query compiled each time.
    sql = (
        f"SELECT {quote('count')} FROM {quote(RateCounter._meta.db_table)} "  # noqa: S608 (model's table)
        f"WHERE {quote('key')} = %s AND {quote('expires_at')} > %s"
    )
    rows = execute_prepared(sql, [key, timezone.now()])
    return rows[0][0] if rows else 0


def counters_purge(*, now=None) -> int:
    """Delete expired database counters; return how many went."""
    deleted, _ = RateCounter.objects.filter(expires_at__lte=now or timezone.now()).delete()
    return deleted
