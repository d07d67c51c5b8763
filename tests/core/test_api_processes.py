"""The API served by real gunicorn worker processes: limits shared between workers, a database that goes away.

The server processes read the test database, so these run on PostgreSQL (SQLite's test database lives in this
process's memory) with committed data (`transactional_db`); except the unreachable-database test, which needs
no database at all. Committed data is restored afterwards as the other transactional tests do
(`serialized_rollback`).
"""

import json
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from stores.services import terminal_create
from tests.servers import current_database_url, gunicorn, http, redis_emptied

REDIS_URL = os.environ.get("TEST_REDIS_CACHE_URL", "redis://127.0.0.1:6379/14")
LIMIT = 20


def _unknown_card_calls(base: str, key: str, count: int, *, parallel: int) -> list[int]:
    headers = {"Authorization": f"Bearer {key}"}

    def ask(number: int) -> int:
        status, _headers, _body = http("GET", f"{base}/api/v1/cards/7{number:014d}", headers=headers)
        return status

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return list(pool.map(ask, range(count)))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("parallel", [1, 6], ids=["one after another", "six at once"])
def test_the_card_number_guessing_limit_holds_across_three_workers(reference_stores, parallel):
    # given: the default (per-process) cache, so the count lives in the database; three worker processes
    _terminal, key = terminal_create(store_code="DEPT001", name="T1")
    env = {"CARD_GUESS_LIMIT": str(LIMIT), "CARD_GUESS_WINDOW": "86400", "CACHE_URL": "locmemcache://"}
    with gunicorn(database_url=current_database_url(), workers=3, env=env) as base:
        # when: 100 unknown card numbers are asked for
        statuses = _unknown_card_calls(base, key, 100, parallel=parallel)
    # then: no more than the limit were answered; the rest were refused
    assert set(statuses) <= {404, 429}
    assert statuses.count(404) == LIMIT
    assert statuses.count(429) == 100 - LIMIT


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_card_number_guessing_limit_holds_across_workers_sharing_redis(reference_stores):
    redis_emptied(REDIS_URL)
    _terminal, key = terminal_create(store_code="DEPT001", name="T1")
    env = {"CARD_GUESS_LIMIT": str(LIMIT), "CARD_GUESS_WINDOW": "86400",
           "CACHE_URL": REDIS_URL.replace("redis://", "rediscache://", 1)}
    with gunicorn(database_url=current_database_url(), workers=3, env=env) as base:
        statuses = _unknown_card_calls(base, key, 60, parallel=4)

    assert statuses.count(404) == LIMIT
    assert statuses.count(429) == 60 - LIMIT


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_first_request_after_a_database_restart_does_not_fail(reference_stores):
    # given: a worker holding a persistent connection
    _terminal, key = terminal_create(store_code="DEPT001", name="T1")
    headers = {"Authorization": f"Bearer {key}"}
    with gunicorn(database_url=current_database_url(), workers=1, env={"CONN_MAX_AGE": "600"}) as base:
        assert http("GET", f"{base}/api/v1/terminal", headers=headers)[0] == 200
        # when: the database drops every other connection to it, as a restart does
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            assert cursor.fetchone()[0] >= 1
        # then: the next request reconnects (the connection is health-checked) and is answered
        status, _headers, body = http("GET", f"{base}/api/v1/terminal", headers=headers)
    assert status == 200, body


def test_an_unreachable_database_is_503_unavailable_in_the_envelope(db):
    # given: a server whose database is not listening at all
    with gunicorn(database_url="postgres://postgres@127.0.0.1:9/retail", workers=1) as base:
        # when: a POS checks its key and pays
        enquiry = http("GET", f"{base}/api/v1/terminal", headers={"Authorization": "Bearer pos_x"})
        payment = http("POST", f"{base}/api/v1/cards/8610000000001/debit", body=b'{"amount": "1.00"}',
                       headers={"Authorization": "Bearer pos_x", "Content-Type": "application/json",
                                "Idempotency-Key": "k-1"})
    # then: both are 503 unavailable in the envelope, with Retry-After, never the HTML error page
    for status, headers, body in (enquiry, payment):
        assert status == 503, body
        assert headers["Content-Type"].startswith("application/json")
        assert json.loads(body)["error"]["code"] == "unavailable"
        assert int(headers["Retry-After"]) > 0
