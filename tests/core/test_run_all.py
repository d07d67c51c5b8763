"""`manage.py run_all` (make run): the three commands it starts, their environment, and how it stops them.

The command tests start no process (the supervisor is replaced); the supervisor tests run `sleep`-like Python
one-liners, never Django, to prove that stopping leaves no process behind.
"""

import io
import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django_celery_beat.models import PeriodicTask

from core.management.commands import run_all
from core.schedules import NIGHTLY

SETTINGS_FILE = Path(settings.BASE_DIR) / "config" / "settings.py"


@pytest.fixture
def started(monkeypatch):
    """Run the command without starting anything: what it would start is recorded here."""
    calls = {}

    class FakeSupervisor:
        def __init__(self, services, *, env, cwd, out):
            calls.update(services=services, env=env, cwd=cwd)

        def run(self):
            return 0

    monkeypatch.setattr(run_all, "Supervisor", FakeSupervisor)
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    return calls


def _argv(services, name):
    return next(service.argv for service in services if service.name == name)


@pytest.mark.django_db
def test_make_run_starts_web_on_port_worker_and_beat_over_the_filesystem_broker(started, monkeypatch, tmp_path):
    monkeypatch.setenv("PORT", "8123")
    monkeypatch.setenv("CELERY_FILESYSTEM_FOLDER", str(tmp_path / "celery"))
    monkeypatch.setattr(settings, "CELERY_BROKER_URL", "")
    out = io.StringIO()

    call_command("run_all", stdout=out)

    services = started["services"]
    assert [service.name for service in services] == ["web", "worker", "beat"]
    assert _argv(services, "web") == [sys.executable, "manage.py", "runserver", "127.0.0.1:8123"]
    assert _argv(services, "worker")[:5] == [sys.executable, "-m", "celery", "-A", "config"]
    assert _argv(services, "worker")[5] == "worker"
    assert "--pool=solo" in _argv(services, "worker")
    assert _argv(services, "beat")[:6] == [sys.executable, "-m", "celery", "-A", "config", "beat"]
    # all three share the embedded broker in the folder given, which exists
    assert started["env"]["CELERY_BROKER_URL"] == "filesystem://localhost/"
    assert started["env"]["CELERY_FILESYSTEM_FOLDER"] == str(tmp_path / "celery")
    assert started["env"]["PORT"] == "8123"
    assert started["cwd"] == Path(settings.BASE_DIR)
    assert sorted(path.name for path in (tmp_path / "celery").iterdir()) == ["control", "processed", "queue"]
    assert "http://127.0.0.1:8123/admin/" in out.getvalue()


@pytest.mark.django_db
def test_port_defaults_to_8000_and_a_broker_that_is_set_is_kept(started, monkeypatch):
    monkeypatch.delenv("PORT", raising=False)
    monkeypatch.delenv("CELERY_FILESYSTEM_FOLDER", raising=False)
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setattr(settings, "CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")

    call_command("run_all", stdout=io.StringIO())

    assert _argv(started["services"], "web")[-1] == "127.0.0.1:8000"
    assert started["env"]["CELERY_BROKER_URL"] == "redis://127.0.0.1:6379/0"
    assert "CELERY_FILESYSTEM_FOLDER" not in started["env"]


@pytest.mark.parametrize("port", ["abc", "0", "65536", "80 80"])
def test_a_bad_port_is_refused_in_one_line(port):
    with pytest.raises(CommandError, match="PORT must be a number from 1 to 65535"):
        run_all.parse_port(port)


@pytest.mark.django_db
def test_make_run_creates_a_nightly_schedule_that_is_missing(started, monkeypatch, tmp_path):
    monkeypatch.setenv("CELERY_FILESYSTEM_FOLDER", str(tmp_path))
    monkeypatch.setattr(settings, "CELERY_BROKER_URL", "")
    PeriodicTask.objects.filter(name="core: check ledgers").delete()

    call_command("run_all", stdout=io.StringIO())

    assert set(PeriodicTask.objects.values_list("name", flat=True)) >= set(NIGHTLY)


def _settings_under(monkeypatch, **variables) -> dict:
    """config/settings.py evaluated afresh with these environment variables (and no CELERY_* of the caller)."""
    for name in ("CELERY_BROKER_URL", "CELERY_FILESYSTEM_FOLDER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS_FILE))


def test_the_launchers_environment_makes_celery_use_the_filesystem_folders_and_not_run_eagerly(
        monkeypatch, tmp_path):
    env = run_all.build_environment({"CELERY_FILESYSTEM_FOLDER": str(tmp_path)}, broker_url="")

    loaded = _settings_under(monkeypatch, CELERY_BROKER_URL=env["CELERY_BROKER_URL"],
                             CELERY_FILESYSTEM_FOLDER=env["CELERY_FILESYSTEM_FOLDER"])

    assert loaded["CELERY_TASK_ALWAYS_EAGER"] is False
    options = loaded["CELERY_BROKER_TRANSPORT_OPTIONS"]
    # one queue folder that producers write to and the worker reads from; the folders run_all creates
    assert options["data_folder_in"] == options["data_folder_out"] == str(tmp_path / "queue")
    folders = {options["data_folder_in"], options["control_folder"], options["processed_folder"]}
    assert folders == {str(tmp_path / name) for name in run_all.FILESYSTEM_SUBFOLDERS}


def test_without_a_broker_tasks_still_run_in_process_as_before(monkeypatch):
    loaded = _settings_under(monkeypatch)

    assert loaded["CELERY_BROKER_URL"] == ""
    assert loaded["CELERY_TASK_ALWAYS_EAGER"] is True
    assert "CELERY_BROKER_TRANSPORT_OPTIONS" not in loaded


def test_the_default_folder_is_var_celery_in_the_project():
    env = run_all.build_environment({}, broker_url="")

    assert env["CELERY_FILESYSTEM_FOLDER"] == str(Path(settings.BASE_DIR) / "var" / "celery")


def test_old_processed_messages_are_pruned(tmp_path):
    run_all.prepare_filesystem_broker(tmp_path)
    old = tmp_path / "processed" / "1_old.celery.msg"
    new = tmp_path / "processed" / "2_new.celery.msg"
    old.write_text("{}")
    new.write_text("{}")
    ten_days_ago = time.time() - 10 * 86400
    os.utime(old, (ten_days_ago, ten_days_ago))

    run_all.prepare_filesystem_broker(tmp_path)

    assert not old.exists()
    assert new.exists()


# -- the supervisor, with stand-in processes --------------------------------------------------------------------

SLEEPER = "import time; print('up', flush=True); time.sleep(120)"
# Leaves a grandchild in its process group, as runserver's autoreloader does.
WITH_CHILD = ("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']);"
              "print('up', flush=True); time.sleep(120)")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _supervisor(*services, stop_timeout=10):
    out = io.BytesIO()
    supervisor = run_all.Supervisor(list(services), env=dict(os.environ), cwd=Path(settings.BASE_DIR), out=out,
                                    stop_timeout=stop_timeout)
    return supervisor, out


def _wait_for(condition, timeout=20):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_when_one_process_exits_the_others_and_their_children_are_stopped():
    supervisor, out = _supervisor(
        run_all.Service("web", [sys.executable, "-c", WITH_CHILD], signal.SIGINT),
        run_all.Service("worker", [sys.executable, "-c", SLEEPER], signal.SIGTERM),
        run_all.Service("beat", [sys.executable, "-c", "import time; time.sleep(1); raise SystemExit(3)"],
                        signal.SIGTERM),
    )

    status = supervisor.run()

    assert status == 1
    groups = [process.pid for process in supervisor.processes.values()]
    _wait_for(lambda: not any(_group_alive(pgid) for pgid in groups))
    text = out.getvalue().decode()
    assert "beat   | exited with code 3; stopping the others" in text
    assert "web    | up" in text


def test_a_stop_signal_stops_every_process_group():
    supervisor, _out = _supervisor(
        run_all.Service("web", [sys.executable, "-c", WITH_CHILD], signal.SIGINT),
        run_all.Service("worker", [sys.executable, "-c", SLEEPER], signal.SIGTERM),
    )
    # SIGTERM to this process once both have started, as `timeout` or a closing terminal would send it
    killer = subprocess.Popen([sys.executable, "-c",
                               f"import os, signal, time; time.sleep(1.5); os.kill({os.getpid()}, signal.SIGTERM)"])
    try:
        status = supervisor.run()
    finally:
        killer.wait(timeout=10)

    assert status == 0
    groups = [process.pid for process in supervisor.processes.values()]
    _wait_for(lambda: not any(_group_alive(pgid) for pgid in groups))
    assert signal.getsignal(signal.SIGTERM) is not supervisor._on_signal


def test_a_process_that_ignores_the_stop_signal_is_killed_after_the_timeout():
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); " \
               "time.sleep(120)"
    supervisor, out = _supervisor(
        run_all.Service("worker", [sys.executable, "-c", stubborn], signal.SIGTERM),
        run_all.Service("beat", [sys.executable, "-c", "import time; time.sleep(1)"], signal.SIGTERM),
        stop_timeout=1,
    )
    started = time.monotonic()

    supervisor.run()

    assert time.monotonic() - started < 15
    assert supervisor.processes["worker"].returncode == -signal.SIGKILL
    assert "did not stop within 1s; killing it" in out.getvalue().decode()


def test_when_one_cannot_start_the_ones_started_are_stopped(tmp_path):
    supervisor, _out = _supervisor(
        run_all.Service("web", [sys.executable, "-c", WITH_CHILD], signal.SIGINT),
        run_all.Service("worker", [str(tmp_path / "no-such-program")], signal.SIGTERM),
    )

    with pytest.raises(FileNotFoundError):
        supervisor.run()

    web = supervisor.processes["web"]
    assert web.returncode is not None
    _wait_for(lambda: not _group_alive(web.pid))
