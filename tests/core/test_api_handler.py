"""The API's own WSGI handler (config.wsgi: /api/ without the admin's middleware) and the terminal key kept per
process for seconds (stores.services.terminal_for_key)."""

import itertools
import json

from django.core.handlers.base import BaseHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client

from config import wsgi
from stores import services as store_services
from stores.models import Terminal
from stores.services import terminal_create, terminal_for_key, terminal_key_rotate

_keys = itertools.count(1)


def wsgi_call(application, key: str, path: str, body: dict | None = None, **headers) -> tuple[str, dict, bytes]:
    """One request straight into a WSGI application, as gunicorn hands it over."""
    import io
    import sys

    payload = json.dumps(body).encode() if body is not None else b""
    environ = {
        "REQUEST_METHOD": "POST" if body is not None else "GET", "PATH_INFO": path, "QUERY_STRING": "",
        "SERVER_NAME": "testserver", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(payload), "wsgi.errors": sys.stderr, "CONTENT_LENGTH": str(len(payload)),
        "CONTENT_TYPE": "application/json", "HTTP_AUTHORIZATION": f"Bearer {key}", "HTTP_HOST": "testserver",
        "HTTP_ACCEPT_LANGUAGE": "zh-hans",
        **{f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()},
    }
    answered = []
    # As Django's test client does: the test's database connection stays open across the request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        content = b"".join(application(environ, lambda status, head, exc_info=None: answered.append((status, head))))
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    status, head = answered[0]
    return status, dict(head), content


def test_the_api_handler_runs_only_the_api_middleware(settings):
    names = [type(middleware).__module__ + "." + type(middleware).__name__
             for middleware in _chain(wsgi.application.api)]
    assert "django.contrib.sessions.middleware.SessionMiddleware" not in names
    assert "axes.middleware.AxesMiddleware" not in names
    assert names == settings.API_MIDDLEWARE
    assert "django.contrib.sessions.middleware.SessionMiddleware" in [
        type(middleware).__module__ + "." + type(middleware).__name__ for middleware in _chain(wsgi.application.site)]


def _chain(handler) -> list:
    found, current = [], handler._middleware_chain
    while current is not None:
        middleware = getattr(current, "__wrapped__", current)  # convert_exception_to_response's wrapper
        middleware = getattr(middleware, "__self__", middleware)
        if isinstance(middleware, BaseHandler) or not hasattr(middleware, "get_response"):
            break
        found.append(middleware)
        current = middleware.get_response
    return found


def test_a_terminal_is_kept_by_its_key_for_seconds(db, reference_stores, settings, monkeypatch):
    settings.TERMINAL_KEY_CACHE_SECONDS = 5
    clock = [1000.0]
    monkeypatch.setattr(store_services.time, "monotonic", lambda: clock[0])
    terminal, key = terminal_create(store_code="DEPT001", name="KEPT1")
    assert terminal_for_key(key).pk == terminal.pk

    # Switched off by another process (no signal here): the key works until the entry runs out, then not.
    Terminal.objects.filter(pk=terminal.pk).update(is_active=False)
    clock[0] += 4
    assert terminal_for_key(key) is not None
    clock[0] += 2
    assert terminal_for_key(key) is None

    # Unknown keys are not kept: a terminal switched back on is found at once.
    Terminal.objects.filter(pk=terminal.pk).update(is_active=True)
    assert terminal_for_key(key).pk == terminal.pk


def test_a_change_saved_in_this_process_takes_effect_at_once(db, reference_stores, settings):
    settings.TERMINAL_KEY_CACHE_SECONDS = 300
    terminal, key = terminal_create(store_code="DEPT001", name="KEPT2")
    assert terminal_for_key(key) is not None

    new_key = terminal_key_rotate(terminal=terminal)
    assert terminal_for_key(key) is None
    assert terminal_for_key(new_key).pk == terminal.pk

    terminal.is_active = False
    terminal.save(update_fields=["is_active"])
    assert terminal_for_key(new_key) is None


def test_a_rotated_key_stops_in_other_processes_within_the_seconds(db, reference_stores, settings, monkeypatch):
    settings.TERMINAL_KEY_CACHE_SECONDS = 2
    clock = [50.0]
    monkeypatch.setattr(store_services.time, "monotonic", lambda: clock[0])
    terminal, key = terminal_create(store_code="SUPER001", name="KEPT3")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get("/api/v1/terminal").status_code == 200

    # Another process rotates the key: its new hash is written without this process hearing of it.
    Terminal.objects.filter(pk=terminal.pk).update(key_hash="0" * 64)
    assert client.get("/api/v1/terminal").status_code == 200
    clock[0] += 2.5
    assert client.get("/api/v1/terminal").status_code == 401


def test_no_keeping_when_the_seconds_are_zero(db, reference_stores, settings):
    settings.TERMINAL_KEY_CACHE_SECONDS = 0
    terminal, key = terminal_create(store_code="DEPT001", name="KEPT4")
    assert terminal_for_key(key) is not None
    Terminal.objects.filter(pk=terminal.pk).update(is_active=False)
    assert terminal_for_key(key) is None
