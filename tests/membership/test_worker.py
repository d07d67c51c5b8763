"""A real Celery worker, in its own process, runs the duplicate detection against the test database.

Needs a broker (CELERY_TEST_BROKER_URL, Redis by default) and PostgreSQL: the
worker is another process, and SQLite's test database lives in this one's memory.
"""

import os
import time
import uuid
from pathlib import Path

import pytest
from celery import Celery
from celery import current_app as celery_current_app
from celery.exceptions import TimeoutError as ResultTimeout
from django.db import connection
from kombu import Connection

from membership.models import MergeCandidate
from membership.tasks import merge_candidates_detect
from tests.membership.conftest import register
from tests.servers import celery_worker, current_database_url

pytestmark = [pytest.mark.broker, pytest.mark.postgres]
ROOT = Path(__file__).resolve().parents[2]
BROKER_URL = os.environ.get("CELERY_TEST_BROKER_URL", "redis://127.0.0.1:6379/15")
RESULT_TIMEOUT = 120  # seconds: worker start-up on a busy 2-core machine, then the task


def broker_reachable(url: str) -> bool:
    try:
        with Connection(url, connect_timeout=2) as broker:
            broker.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:  # noqa: BLE001 - any failure means: no broker to test against
        return False


@pytest.fixture
def worker_queue(tmp_path):
    """Start `celery worker` on a queue of its own (no other worker can take our task); stop it after."""
    if connection.vendor != "postgresql":
        pytest.skip("the worker process cannot see SQLite's in-memory test database; run on PostgreSQL")
    if not broker_reachable(BROKER_URL):
        if os.environ.get("REQUIRE_BROKER"):
            pytest.fail(f"REQUIRE_BROKER is set but no Celery broker is reachable at {BROKER_URL}")
        pytest.skip(f"no Celery broker reachable at {BROKER_URL} (set CELERY_TEST_BROKER_URL)")
    queue = f"test-{uuid.uuid4().hex[:12]}"
    log_path = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": current_database_url(),
        "CELERY_BROKER_URL": BROKER_URL,
        "CELERY_RESULT_BACKEND": BROKER_URL,
        "CONN_MAX_AGE": "0",
    }
    try:
        with celery_worker(env=env, log_path=log_path, extra_args=("-Q", queue, "-n", f"{queue}@%h")) as worker:
            yield queue, worker, log_path
    finally:
        with Connection(BROKER_URL, connect_timeout=2) as broker:
            broker.default_channel.client.delete(f"_kombu.binding.{queue}", queue)


@pytest.fixture
def producer(worker_queue):
    """A Celery app that sends to the worker's queue and reads results from the broker, made current."""
    queue, _, _ = worker_queue
    # Not configured from the Django settings: those say "no broker, run eagerly" in tests.
    app = Celery("retail-test-producer", set_as_current=False)
    app.conf.update(
        broker_url=BROKER_URL, result_backend=BROKER_URL, task_always_eager=False, task_default_queue=queue,
        broker_connection_timeout=5, broker_connection_max_retries=3, result_expires=600,
    )
    previous = celery_current_app._get_current_object()
    app.set_current()
    try:
        yield app
    finally:
        previous.set_current()
        app.close()


def wait_for(result, worker, log_path, timeout=RESULT_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            pytest.fail(f"the worker exited with {worker.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            return result.get(timeout=2)
        except ResultTimeout:
            continue
    pytest.fail(f"no result within {timeout}s; worker log:\n{log_path.read_text()[-3000:]}")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_real_worker_records_merge_candidates(worker_queue, producer):
    _, worker, log_path = worker_queue
    a = register(name="王芳", phone="13700001111")
    b = register(name="王方", phone="13700001111")
    register(name="李强", phone="13700002222")

    result = merge_candidates_detect.delay()

    assert wait_for(result, worker, log_path) == 1
    assert result.state == "SUCCESS"
    candidate = MergeCandidate.objects.get()
    assert {candidate.member_a_id, candidate.member_b_id} == {a.pk, b.pk}
    assert candidate.reason == MergeCandidate.Reason.SAME_PHONE
    assert "membership.merge_candidates_detect" in log_path.read_text()
    result.forget()
