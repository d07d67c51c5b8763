"""The POS rate limit per terminal, and the counters in the cache it is kept in.

The limit holds over any window of its length, estimated from two fixed windows; each call is one atomic count,
on Redis in one round trip, so workers sharing the cache share the limit exactly.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import cache, caches
from django.test import override_settings

from core.limits import cache_counter_hit, counter_get, counter_hit
from stores.api_auth import TerminalRateThrottle
from stores.models import Terminal
from tests.servers import redis_emptied

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("TEST_REDIS_CACHE_URL", "redis://127.0.0.1:6379/14")
REDIS_CACHE = {"default": {"BACKEND": "core.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                           "KEY_PREFIX": "rate-limit-tests"}}


class Call:
    """What the throttle reads of a request: the terminal it authenticated."""

    def __init__(self, terminal_id: int):
        self.auth = Terminal(pk=terminal_id)


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _fresh_counts():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def redis_cache():
    redis_emptied(REDIS_URL)
    with override_settings(CACHES=REDIS_CACHE):
        yield caches["default"]
        caches["default"].clear()


def throttle(rate: str, clock: Clock) -> TerminalRateThrottle:
    TerminalRateThrottle.THROTTLE_RATES = {"terminal": rate}
    try:
        made = TerminalRateThrottle()
    finally:
        del TerminalRateThrottle.THROTTLE_RATES
    made.timer = clock
    return made


def calls(rate: str, clock: Clock, count: int, *, terminal_id: int = 1) -> list[bool]:
    return [throttle(rate, clock).allow_request(Call(terminal_id), None) for _ in range(count)]


# --- the limit over a sliding window -------------------------------------------------------------------------


def test_the_limit_is_counted_per_terminal():
    clock = Clock(1_000_020.0)

    assert calls("3/min", clock, 4) == [True, True, True, False]
    assert calls("3/min", clock, 1, terminal_id=2) == [True]


def test_a_burst_at_the_end_of_a_window_still_counts_at_the_start_of_the_next():
    # given: the whole allowance used in the last tenth of a second of one minute
    clock = Clock(60 * 1000 + 59.9)
    assert calls("2/min", clock, 2) == [True, True]

    # when: the next minute begins, then half of it has passed, then all of it
    clock.now = 60 * 1001 + 0.1
    at_once = calls("2/min", clock, 1)
    clock.now = 60 * 1001 + 30.0
    half_way = calls("2/min", clock, 2)
    clock.now = 60 * 1002 + 0.1
    next_minute = calls("2/min", clock, 2)

    # then: refused while the sliding window still covers the burst, half the allowance once half of it has
    # passed, the call made half way counted at the start of the minute after
    assert at_once == [False]
    assert half_way == [True, False]
    assert next_minute == [True, False]


def test_a_refused_call_is_not_counted():
    clock = Clock(60 * 1000 + 1.0)
    assert calls("2/min", clock, 10) == [True, True] + [False] * 8

    # a minute later the sliding window covers the two calls answered only as far as it still reaches them
    clock.now = 60 * 1001 + 31.0
    assert calls("2/min", clock, 2) == [True, False]


def test_the_retry_after_is_the_rest_of_the_window():
    clock = Clock(60 * 1000 + 45.0)
    made = throttle("1/min", clock)
    assert made.allow_request(Call(1), None)
    refused = throttle("1/min", clock)

    assert not refused.allow_request(Call(1), None)
    assert refused.wait() == pytest.approx(15.0)


def test_calls_that_are_not_a_terminal_s_are_not_limited():
    class Anonymous:
        auth = None

    clock = Clock(1_000_000.0)
    assert all(throttle("1/min", clock).allow_request(Anonymous(), None) for _ in range(5))


# --- counters in Redis --------------------------------------------------------------------------------------


def test_on_redis_a_count_is_one_command_and_always_expires(redis_cache, monkeypatch):
    client = redis_cache._cache.get_client(write=True)
    sent = []
    real_execute = client.execute_command  # the kept client's: every command of the cache goes through it
    monkeypatch.setattr(client, "execute_command", lambda *a, **k: sent.append(a[0]) or real_execute(*a, **k))

    assert cache_counter_hit("calls", seconds=120, reads=("before",)) == (1, [0])
    assert cache_counter_hit("calls", seconds=120, reads=("before", "other")) == (2, [0, 0])
    assert cache_counter_hit("before", seconds=120) == (1, [])
    assert cache_counter_hit("calls", seconds=120, reads=("before",)) == (3, [1])

    # one command each: the script by its digest (loaded first when Redis does not know it yet)
    assert set(sent) <= {"EVALSHA", "SCRIPT LOAD"}
    assert sent[-3:] == ["EVALSHA"] * 3 and len(sent) <= 6, sent
    key = redis_cache.make_and_validate_key("calls")
    assert 0 < client.ttl(key) <= 120
    assert redis_cache.get("calls") == 3


def test_on_redis_a_count_left_without_an_expiry_is_given_one(redis_cache):
    client = redis_cache._cache.get_client(write=True)
    client.set(redis_cache.make_and_validate_key("old"), 7)

    assert cache_counter_hit("old", seconds=60) == (8, [])
    assert 0 < client.ttl(redis_cache.make_and_validate_key("old")) <= 60


def test_on_redis_the_guess_counter_is_shared_and_read_back(redis_cache):
    assert [counter_hit("guesses", seconds=60) for _ in range(3)] == [1, 2, 3]
    assert counter_get("guesses") == 3
    assert counter_get("nothing") == 0


def test_on_redis_workers_share_the_terminal_s_limit(redis_cache):
    # given: two workers' throttles (each its own instance, as each request makes one) on one shared cache
    clock = Clock(60 * 1000 + 10.0)

    # when: they take turns
    answered = [throttle("5/min", clock).allow_request(Call(7), None) for _ in range(8)]

    # then: five in all, and the refused calls were taken off the count again
    assert answered == [True] * 5 + [False] * 3
    assert redis_cache.get(f"throttle_terminal_7:{1000}") == 5


def test_on_redis_an_expired_count_starts_again(redis_cache):
    client = redis_cache._cache.get_client(write=True)
    cache_counter_hit("short", seconds=60)
    client.delete(redis_cache.make_and_validate_key("short"))

    assert cache_counter_hit("short", seconds=60) == (1, [])
    assert client.ttl(redis_cache.make_and_validate_key("short")) > 0


def test_the_redis_cache_keeps_one_client_per_pool_and_works_as_django_s(redis_cache):
    client = redis_cache._cache.get_client(write=True)

    assert redis_cache._cache.get_client("any", write=False) is client
    redis_cache.set("kept", {"a": 1}, 60)
    assert redis_cache.get("kept") == {"a": 1}
    assert redis_cache.add("kept", 2, 60) is False
    redis_cache.set("number", 5, 60)
    assert redis_cache.incr("number") == 6
    redis_cache.delete("kept")
    assert redis_cache.get("kept") is None


def test_the_settings_give_a_redis_cache_url_and_a_postgresql_url_the_project_s_backends():
    script = ("from django.conf import settings; "
              "print(settings.CACHES['default']['BACKEND'], settings.DATABASES['default']['ENGINE'])")
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings",
                   "CACHE_URL": "rediscache://127.0.0.1:6379/14", "DATABASE_URL": "postgres://u@127.0.0.1:5432/x"}
    shown = subprocess.run([sys.executable, "-c", script], env=environment, cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()

    assert shown == ["core.backends.redis.RedisCache", "core.backends.postgresql"]


# --- the card calls' throttle: the rate and the unknown numbers in one round trip ---------------------------


def test_on_redis_a_card_call_reads_the_unknown_numbers_in_the_rate_limit_s_round_trip(redis_cache, monkeypatch,
                                                                                        settings):
    from rest_framework.exceptions import Throttled

    from cards.api import CardCallThrottle, card_guess_record

    settings.CARD_GUESS_LIMIT, settings.CARD_GUESS_WINDOW = 3, 600
    client = redis_cache._cache.get_client(write=True)
    asked = []
    real_get = client.get  # the kept client's own GET, outside any pipeline
    monkeypatch.setattr(client, "get", lambda *a, **k: asked.append(a) or real_get(*a, **k))
    terminal = Terminal(pk=41)

    def card_call() -> bool:
        return CardCallThrottle().allow_request(Call(41), None)

    # given: two unknown numbers; a card call still passes, with no GET of its own
    card_guess_record(terminal)
    card_guess_record(terminal)
    assert card_call()
    assert asked == []

    # when: a third unknown number reaches the limit
    card_guess_record(terminal)

    # then: every card call of the terminal is refused, another terminal's are not
    with pytest.raises(Throttled) as refused:
        card_call()
    assert "unknown card numbers" in str(refused.value.detail) or "未知" in str(refused.value.detail)
    assert CardCallThrottle().allow_request(Call(42), None)
    assert asked == []
