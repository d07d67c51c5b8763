"""The PostgreSQL backend's health check: no round trip while a connection is alive, Django's SELECT 1 otherwise.

A connection the server ended (here by pg_terminate_backend, as a restart ends them all) is found unusable, so
Django reconnects before the request's first query; tests/core/test_api_processes.py checks the same through
real workers.
"""

import select
import time

import pytest
from django.db import connection, connections
from django.db.backends.postgresql.base import DatabaseWrapper as DjangoWrapper

pytestmark = pytest.mark.postgres


@pytest.fixture
def own_connection(db):
    """A second connection to the test database, which a test may have ended."""
    wrapper = connections.create_connection("default")
    wrapper.connect()
    yield wrapper
    wrapper.close()


@pytest.fixture
def asked(monkeypatch) -> list[str]:
    """Each time Django's own check (SELECT 1) is asked."""
    calls = []
    real = DjangoWrapper.is_usable

    def counted(self):
        calls.append("SELECT 1")
        return real(self)

    monkeypatch.setattr(DjangoWrapper, "is_usable", counted)
    return calls


def test_the_backend_is_ours_and_still_postgresql():
    assert connection.vendor == "postgresql"
    assert type(connections["default"]).__module__ == "core.backends.postgresql.base"


def test_a_live_idle_connection_is_usable_without_a_round_trip(own_connection, asked):
    with own_connection.cursor() as cursor:
        cursor.execute("SELECT 1")

    assert own_connection.is_usable()
    assert asked == []


def test_a_connection_the_server_ended_is_not_usable(own_connection, asked):
    # given: the server ends the connection, as a restart does
    pid = own_connection.connection.info.backend_pid
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        assert cursor.fetchone()[0]
    poller = select.poll()
    poller.register(own_connection.connection.pgconn.socket, select.POLLIN)
    deadline = time.monotonic() + 5
    while not poller.poll(50) and time.monotonic() < deadline:
        pass

    # then: the socket has the server's goodbye, so SELECT 1 is asked, and fails
    assert not own_connection.is_usable()
    assert asked == ["SELECT 1"]


def test_a_connection_in_a_transaction_is_asked_the_usual_way(own_connection, asked):
    own_connection.connection.execute("BEGIN")
    try:
        assert own_connection.is_usable()
    finally:
        own_connection.connection.execute("ROLLBACK")
    assert asked == ["SELECT 1"]


def test_a_closed_handle_is_not_usable(own_connection, asked):
    own_connection.connection.close()

    assert not own_connection.is_usable()


def test_a_request_after_the_server_ended_the_connection_reconnects(own_connection):
    # Django's own sequence at a request's start and first query, on a connection the server has ended.
    pid = own_connection.connection.info.backend_pid
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    time.sleep(0.2)
    own_connection.health_check_done = False

    with own_connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid
