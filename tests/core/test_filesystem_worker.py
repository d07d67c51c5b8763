"""A real Celery worker over make run's embedded broker (kombu's filesystem transport) runs a nightly job and
stores its result, as under `make run`: no broker server, on SQLite and on PostgreSQL.

The worker is another process. On PostgreSQL it uses the test database. SQLite's test database lives in this
process's memory, so there it gets a file copy of it, and its rows are copied back before the asserts.
"""

import os
import sqlite3
import tempfile
import time
from pathlib import Path

import pytest
from celery import Celery, states
from django.db import connection
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from core.jobs import with_last_result
from core.management.commands.run_all import FILESYSTEM_BROKER, prepare_filesystem_broker
from tests.servers import celery_worker, current_database_url

pytestmark = [pytest.mark.broker]
ROOT = Path(__file__).resolve().parents[2]
RESULT_TIMEOUT = 120  # seconds: worker start-up on a busy 2-core machine, then the task
JOB = "core: check ledgers"


def transport_options(folder: Path) -> dict:
    return {"data_folder_in": str(folder / "queue"), "data_folder_out": str(folder / "queue"),
            "control_folder": str(folder / "control"), "store_processed": True,
            "processed_folder": str(folder / "processed")}


@pytest.fixture
def worker_database():
    """(DATABASE_URL for the worker, the SQLite file or None on PostgreSQL); the temporary folder goes after."""
    with tempfile.TemporaryDirectory(prefix="fs-worker-", ignore_cleanup_errors=True) as folder:
        folder = Path(folder)
        if connection.vendor == "postgresql":
            yield folder, current_database_url(), None
            return
        copy = folder / "worker.sqlite3"
        connection.ensure_connection()
        with sqlite3.connect(copy) as target:
            connection.connection.backup(target)
        target.close()
        yield folder, f"sqlite:///{copy}", copy


@pytest.fixture
def filesystem_worker(worker_database):
    """`celery worker` with the filesystem transport in a folder of its own; stopped and removed after."""
    folder, database_url, _copy = worker_database
    broker_folder = folder / "celery"
    prepare_filesystem_broker(broker_folder)
    log_path = folder / "worker.log"
    env = {name: value for name, value in os.environ.items() if not name.startswith("CELERY_")}
    env.update({"DATABASE_URL": database_url, "CELERY_BROKER_URL": FILESYSTEM_BROKER,
                "CELERY_FILESYSTEM_FOLDER": str(broker_folder), "CONN_MAX_AGE": "0"})
    with celery_worker(env=env, log_path=log_path) as worker:
        yield broker_folder, worker, log_path


@pytest.fixture
def producer(filesystem_worker):
    """A Celery app that sends into the worker's folder (the Django settings say "run eagerly" in tests)."""
    broker_folder, _worker, _log = filesystem_worker
    app = Celery("retail-test-producer", set_as_current=False)
    app.conf.update(broker_url=FILESYSTEM_BROKER, broker_transport_options=transport_options(broker_folder),
                    task_always_eager=False)
    try:
        yield app
    finally:
        app.close()


def stored_status(task_id: str, copy: Path | None) -> str | None:
    if copy is None:
        return TaskResult.objects.filter(task_id=task_id).values_list("status", flat=True).first()
    with sqlite3.connect(copy, timeout=20) as database:
        row = database.execute("SELECT status FROM django_celery_results_taskresult WHERE task_id = ?",
                               [task_id]).fetchone()
    database.close()
    return row[0] if row else None


def wait_for_result(task_id, worker, log_path, copy, timeout=RESULT_TIMEOUT) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            pytest.fail(f"the worker exited with {worker.returncode}:\n{log_path.read_text()[-3000:]}")
        status = stored_status(task_id, copy)
        if status in states.READY_STATES:
            return status
        time.sleep(0.5)
    pytest.fail(f"no result within {timeout}s; worker log:\n{log_path.read_text()[-3000:]}")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_worker_over_the_filesystem_broker_runs_the_ledger_check_and_stores_its_result(
        worker_database, filesystem_worker, producer):
    _folder, _url, copy = worker_database
    broker_folder, worker, log_path = filesystem_worker

    # when: the nightly job is sent as beat sends it
    task_id = producer.send_task("core.check_ledgers", headers={"periodic_task_name": JOB}).id

    # then: the worker took the message from the folder, ran the job and stored its result in the database
    assert wait_for_result(task_id, worker, log_path, copy) == states.SUCCESS
    if copy is not None:  # SQLite: bring the worker's rows into the test database
        with sqlite3.connect(copy) as source:
            source.backup(connection.connection)
        source.close()
    result = TaskResult.objects.get(task_id=task_id)
    assert result.task_name == "core.check_ledgers"
    assert result.periodic_task_name == JOB
    assert '"checked"' in result.result
    assert list(broker_folder.joinpath("queue").iterdir()) == []
    assert len(list(broker_folder.joinpath("processed").glob("*.celery.msg"))) == 1
    # ... and the admin's "last result" of the job is this run
    job = with_last_result(PeriodicTask.objects.filter(name=JOB)).get()
    assert (job.last_result_status, job.last_result_pk) == (states.SUCCESS, result.pk)
    assert "core.check_ledgers" in log_path.read_text()
