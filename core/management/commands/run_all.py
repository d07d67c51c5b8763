"""`make run`: the web server, a Celery worker and Celery beat in one command; Ctrl-C stops all three.

Each of the three runs in a process group of its own, its output prefixed with its name. On Ctrl-C (SIGINT),
SIGTERM or SIGHUP the launcher asks each group to stop, waits, and kills what is left; a second Ctrl-C kills at
once. When one of the three exits by itself (a port in use, a crash) the other two are stopped too. Should the
launcher itself be killed, Linux sends each child SIGTERM (PR_SET_PDEATHSIG), so nothing is left behind.

Without CELERY_BROKER_URL (in the environment or .env) the three share kombu's filesystem transport in
var/celery/ (CELERY_FILESYSTEM_FOLDER): tasks go through the worker, no broker server needed. Tests and every
other command keep running tasks in process (config/settings.py).
"""

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from core.schedules import ensure_schedules

DEFAULT_PORT = 8000
# kombu's filesystem transport; "localhost" only spares each process kombu's "No hostname was supplied" warning.
FILESYSTEM_BROKER = "filesystem://localhost/"
# The folders of the filesystem transport under CELERY_FILESYSTEM_FOLDER; config/settings.py names the same ones.
FILESYSTEM_SUBFOLDERS = ("queue", "control", "processed")
PROCESSED_KEEP_DAYS = 7
STOP_TIMEOUT = 20  # seconds for all three to stop before they are killed: the worker finishes its current task
POLL_INTERVAL = 0.3
REPEAT_SIGNAL_AFTER = 1.0  # seconds: a stop signal this long after the first kills at once


@dataclass(frozen=True)
class Service:
    name: str
    argv: list[str]
    stop_signal: int  # what asks it to stop cleanly


def parse_port(value) -> int:
    try:
        port = int(str(value).strip())
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise CommandError(f"PORT must be a number from 1 to 65535, not {value!r}.")
    return port


def filesystem_folder(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("CELERY_FILESYSTEM_FOLDER") or settings.BASE_DIR / "var" / "celery")


def build_environment(environ: Mapping[str, str], *, broker_url: str) -> dict[str, str]:
    """The environment of the three processes: `environ`, with the filesystem broker when no broker is set."""
    env = dict(environ)
    env["PYTHONUNBUFFERED"] = "1"  # their lines reach the terminal as they are written
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if not broker_url:
        env["CELERY_BROKER_URL"] = FILESYSTEM_BROKER
        env["CELERY_FILESYSTEM_FOLDER"] = str(filesystem_folder(environ))
    return env


def build_services(*, python: str, port: int) -> list[Service]:
    """The web server on 127.0.0.1:`port`, one worker (one task at a time: SQLite has one writer) and beat."""
    return [
        Service("web", [python, "manage.py", "runserver", f"127.0.0.1:{port}"], signal.SIGINT),
        Service("worker", [python, "-m", "celery", "-A", "config", "worker", "--loglevel=INFO", "--pool=solo",
                           "--concurrency=1", "--without-gossip", "--without-mingle", "--without-heartbeat"],
                signal.SIGTERM),
        # The scheduler is the DatabaseScheduler (CELERY_BEAT_SCHEDULER): the schedules edited in the admin.
        Service("beat", [python, "-m", "celery", "-A", "config", "beat", "--loglevel=INFO"], signal.SIGTERM),
    ]


def prepare_filesystem_broker(folder: Path, *, keep_days: int = PROCESSED_KEEP_DAYS) -> None:
    """Create the transport's folders (kombu does not) and forget messages processed more than `keep_days` ago."""
    for name in FILESYSTEM_SUBFOLDERS:
        (folder / name).mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - keep_days * 86400
    for message in (folder / "processed").iterdir():
        with contextlib.suppress(OSError):
            if message.is_file() and message.stat().st_mtime < cutoff:
                message.unlink()


def _die_with_parent() -> None:
    # Runs in the child before exec: SIGTERM to it when the launcher dies, however it dies (Linux only).
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


class Supervisor:
    """Starts the services, relays their output with a name prefix and stops them together."""

    def __init__(self, services: list[Service], *, env: Mapping[str, str], cwd: Path, out: BinaryIO,
                 stop_timeout: float = STOP_TIMEOUT):
        self.services = services
        self.env = dict(env)
        self.cwd = cwd
        self.out = out
        self.stop_timeout = stop_timeout
        self.processes: dict[str, subprocess.Popen] = {}
        self.stop_requested = threading.Event()
        self._first_signal_at: float | None = None
        self._out_lock = threading.Lock()
        self._pumps: list[threading.Thread] = []
        self._width = max(len(service.name) for service in services)

    def say(self, name: str, text: str) -> None:
        self._write(name, text.encode() + b"\n")

    def _write(self, name: str, line: bytes) -> None:
        with self._out_lock:
            self.out.write(f"{name:<{self._width}} | ".encode() + line)
            self.out.flush()

    def _pump(self, name: str, stream) -> None:
        with stream:
            for line in iter(stream.readline, b""):
                self._write(name, line if line.endswith(b"\n") else line + b"\n")

    def _on_signal(self, signum, frame) -> None:
        now = time.monotonic()
        # Asked again (a second Ctrl-C): no more waiting. Not a copy of the same request, which `timeout` or a
        # shell may relay within the same instant as the terminal's signal.
        if self._first_signal_at is not None and now - self._first_signal_at > REPEAT_SIGNAL_AFTER:
            self._signal_all(signal.SIGKILL)
        if self._first_signal_at is None:
            self._first_signal_at = now
        self.stop_requested.set()

    def _signal_all(self, signum: int, *, only=None) -> None:
        for name, process in self.processes.items():
            if only is not None and name not in only:
                continue
            if process.poll() is None or signum == signal.SIGKILL:
                # The whole group: runserver's autoreloader child and anything a worker forked.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signum)

    def start(self) -> None:
        # Every child first, then the output threads: _die_with_parent runs between fork and exec, which is only
        # safe while this process has a single thread.
        for service in self.services:
            self.processes[service.name] = subprocess.Popen(  # noqa: S603 - our interpreter, our arguments
                service.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, process_group=0, preexec_fn=_die_with_parent,
            )
        for service in self.services:
            pump = threading.Thread(target=self._pump, args=(service.name, self.processes[service.name].stdout),
                                    name=f"output-{service.name}", daemon=True)
            pump.start()
            self._pumps.append(pump)

    def wait(self) -> int:
        """Until a signal or until one service exits; then stop the others. 0 when stopped by a signal."""
        exited = None
        while not self.stop_requested.wait(POLL_INTERVAL):
            exited = next((name for name, process in self.processes.items() if process.poll() is not None), None)
            if exited is not None:
                self.say(exited, f"exited with code {self.processes[exited].returncode}; stopping the others")
                break
        self.stop()
        return 0 if exited is None else 1

    def stop(self) -> None:
        for service in self.services:
            self._signal_all(service.stop_signal, only={service.name})
        deadline = time.monotonic() + self.stop_timeout
        for name, process in self.processes.items():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(name, f"did not stop within {self.stop_timeout:.0f}s; killing it")
        self._signal_all(signal.SIGKILL)  # the groups: also what a stopped leader left behind
        for process in self.processes.values():
            process.wait()
        for pump in self._pumps:
            pump.join(timeout=5)

    def run(self) -> int:
        previous = {signum: signal.signal(signum, self._on_signal)
                    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            try:
                self.start()
            except BaseException:  # one could not start: none is left running
                self.stop()
                raise
            return self.wait()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


class Command(BaseCommand):
    help = (
        "Run the web server on 127.0.0.1:PORT (default 8000), a Celery worker and Celery beat together; Ctrl-C "
        "stops all three. Without CELERY_BROKER_URL they share kombu's filesystem transport in var/celery/."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--port", default=os.environ.get("PORT") or DEFAULT_PORT,
                            help="Port of the web server on 127.0.0.1 (default: $PORT, else 8000).")

    def handle(self, *args, port, **options):
        port = parse_port(port)
        try:
            created = ensure_schedules()
        except DatabaseError as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise CommandError(f"Cannot read the schedules ({first_line}); is the database migrated?") from None
        if created:
            self.stdout.write("Created the nightly schedules: " + ", ".join(created))
        env = build_environment(os.environ, broker_url=settings.CELERY_BROKER_URL)
        if env["CELERY_BROKER_URL"].startswith("filesystem://"):
            folder = filesystem_folder(env)
            prepare_filesystem_broker(folder)
            self.stdout.write(f"Broker: kombu's filesystem transport in {folder}")
        self.stdout.write(f"Web: http://127.0.0.1:{port}/admin/ ; worker and beat alongside; Ctrl-C stops all.")
        self.stdout.flush()
        supervisor = Supervisor(build_services(python=sys.executable, port=port), env=env,
                                cwd=Path(settings.BASE_DIR), out=sys.stdout.buffer)
        status = supervisor.run()
        if status:
            raise CommandError("A process stopped by itself; stopped the others (see its output above).")
