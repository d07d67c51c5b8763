"""Counters for limits that must hold across every web process (unknown card numbers per terminal, ...).

With a shared cache configured (CACHE_URL, e.g. Redis) a counter is the cache's atomic increment; on Redis the
count is incremented, given its expiry and returned by one script, in one round trip. Without one the default cache is
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


# Count under KEYS[1] kept ARGV[1] seconds, then read KEYS[2...]: run by Redis as one command, atomically. A count
# without an expiry (just created) is given one in the same step, so it can never be left without one.
_COUNT_AND_READ = """
local count = redis.call('INCR', KEYS[1])
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local counts = {count}
for i = 2, #KEYS do counts[i] = tonumber(redis.call('GET', KEYS[i])) or 0 end
return counts
"""
_scripts: dict[int, object] = {}


def cache_counter_hit(key: str, *, seconds: int, reads: tuple[str, ...] = ()) -> tuple[int, list[int]]:
    """Count one event under `key` in the default cache, kept for `seconds`; return the count so far and the
    counts under `reads` (0 for none).

    On Redis this is one command (a script, sent by its digest once Redis knows it), one round trip.
    """
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        full_key = backend.make_and_validate_key(key)
        client = backend._cache.get_client(full_key, write=True)
        script = _scripts.get(id(client))
        if script is None:
            script = _scripts[id(client)] = client.register_script(_COUNT_AND_READ)
        counts = script(keys=[full_key, *(backend.make_and_validate_key(read) for read in reads)], args=[seconds])
        return int(counts[0]), [int(count) for count in counts[1:]]
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
