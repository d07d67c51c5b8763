"""Shared fixtures of the webhook tests: a real HTTP receiver on 127.0.0.1 and subscriptions pointing at it."""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.pii import pii_encrypt
from integrations.events import subscriptions_cache_clear
from integrations.models import EventType, Subscription

SECRET = "whsec_test_0123456789abcdef"


@dataclass
class Received:
    """One POST as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def event_id(self) -> str:
        return self.headers.get("Webhook-Id", "")


class Receiver:
    """A webhook receiver in a thread: records every POST and answers with scripted statuses (200 otherwise).

    `answer(*statuses)` queues the statuses of the next requests; `rule` (a function of the request returning a
    status or None) decides before the queue; `on_request` runs inside the request, before the answer.
    """

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.statuses: deque[int] = deque()
        self.rule: Callable[[Received], int | None] | None = None
        self.on_request: Callable[[Received], None] | None = None
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the name http.server calls
                length = int(self.headers.get("Content-Length") or 0)
                request = Received(path=self.path, headers=dict(self.headers.items()), body=self.rfile.read(length))
                status = receiver._status(request)
                answer = json.dumps({"status": status}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format, *args):  # noqa: A002 - the signature http.server calls
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _status(self, request: Received) -> int:
        with self._lock:
            self.requests.append(request)
        if self.on_request is not None:
            self.on_request(request)
        if self.rule is not None:
            status = self.rule(request)
            if status is not None:
                return status
        with self._lock:
            return self.statuses.popleft() if self.statuses else 200

    def answer(self, *statuses: int) -> None:
        with self._lock:
            self.statuses.extend(statuses)

    def ids(self) -> list[str]:
        return [request.event_id for request in self.requests]

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def closed_url() -> str:
    """The URL of a port where nothing listens (a receiver that is down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks"


@pytest.fixture
def make_subscription(db):
    """Write a subscription with a sealed secret: make_subscription(url, event_types=[...], secret=...)."""

    def make(url: str, *, event_types=None, secret: str = SECRET, is_active: bool = True,
             name: str = "集团APP") -> Subscription:
        subscription = Subscription.objects.create(
            name=name, url=url, secret_sealed=pii_encrypt(secret), is_active=is_active,
            event_types=list(event_types if event_types is not None else EventType.values),
        )
        subscriptions_cache_clear()
        return subscription

    yield make
    subscriptions_cache_clear()
