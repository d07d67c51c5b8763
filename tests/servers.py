"""The project served by real gunicorn processes, for tests that need several workers or a real network hop."""

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

from django.db import connection

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 60  # seconds: gunicorn and Django start-up on a busy 2-core machine


def current_database_url() -> str:
    """The URL of the database this test runs in (test_<name>), for another process."""
    settings = connection.settings_dict
    user = quote(settings["USER"] or "")
    password = f":{quote(settings['PASSWORD'])}" if settings["PASSWORD"] else ""
    credentials = f"{user}{password}@" if user else ""
    host = settings["HOST"] or "127.0.0.1"
    port = f":{settings['PORT']}" if settings["PORT"] else ""
    return f"postgres://{credentials}{host}{port}/{quote(settings['NAME'])}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def gunicorn(*, database_url: str, workers: int = 1, env: dict | None = None):
    """Serve the project on 127.0.0.1 with `workers` processes; yield its base URL; stop it after."""
    port = _free_port()
    environment = {
        **os.environ, "DATABASE_URL": database_url, "DEBUG": "false", "ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SETTINGS_MODULE": "config.settings", **(env or {}),
    }
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--workers", str(workers),
         "--bind", f"127.0.0.1:{port}", "--log-level", "warning", "--timeout", "60"],
        cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {process.stdout.read().decode(errors='replace')[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not start in time") from None
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


@contextlib.contextmanager
def celery_worker(*, env: dict, log_path: Path, extra_args: tuple[str, ...] = ()):
    """A real Celery worker of the project (one process, solo pool) with `env` as its environment and its output in
    `log_path`; yields the process and stops it after (terminate, then kill)."""
    with open(log_path, "w") as log:
        worker = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--concurrency=1",
             *extra_args, "--without-heartbeat", "--without-mingle", "--without-gossip", "--loglevel=INFO"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    try:
        yield worker
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)


def http(method: str, url: str, *, headers: dict | None = None, body: bytes | None = None,
         timeout: float = 30) -> tuple[int, dict, bytes]:
    """One request; return (status, headers, body), also for 4xx and 5xx answers."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback only
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def redis_emptied(url: str) -> None:
    """Empty the Redis database at `url` for a test, or skip the test without Redis (fail it under REQUIRE_BROKER,
    as CI sets)."""
    import pytest
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).flushdb()
    except redis.RedisError:
        if os.environ.get("REQUIRE_BROKER"):
            pytest.fail(f"REQUIRE_BROKER is set but Redis is not reachable at {url}")
        pytest.skip(f"no Redis at {url}")
