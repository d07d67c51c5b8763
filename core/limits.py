"""Counters for limits that must hold across every web process (unknown card numbers per terminal, ...).

With a shared cache configured (CACHE_URL, e.g. Redis) a counter is the cache's atomic increment. Without one
the default cache is local to each process, where a limit would be multiplied by the number of workers, so the
count lives in the database instead: one upsert that increments and returns the new count atomically.
"""

from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
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


def counter_hit(key: str, *, seconds: int) -> int:
    """Count one event under `key`, kept for `seconds`; return the count so far."""
    if shared_cache():
        cache.add(key, 0, timeout=seconds)
        try:
            return cache.incr(key)
        except ValueError:  # the entry expired between add and incr: the first of a new count
            cache.add(key, 1, timeout=seconds)
            return 1
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
