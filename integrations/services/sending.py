"""Sending webhook deliveries (CONTRACT section 5): signed POSTs, in order per subject, retried with backoff.

One sender at a time per subscription (a lease on the subscription row), so the events of one card or member
reach the receiver in the order they were written. A delivery that is not due yet, or that just failed, holds
back the later events of its subject until it is delivered or has failed for good; other subjects go on. A
receiver that is down (no connection, a timeout, a 5xx) ends the pass: the retry comes with the backoff.
No database transaction is open while a POST waits for its answer.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import math
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from core.pii import pii_decrypt
from integrations.models import Attempt, Delivery, Event, Subscription

BODY_TIME_ZONE = ZoneInfo("Asia/Shanghai")
USER_AGENT = "RetailBackOffice-Webhooks/1.0"
# A sender holds its subscription this long and renews the hold while it works; a sender that died lets go
# of it when the time runs out.
LEASE_SECONDS = 120
BATCH_SIZE = 100
PRUNE_BATCH_SIZE = 1000
RESPONSE_KEEP_CHARS = 2000
_RESPONSE_READ_BYTES = 8 * RESPONSE_KEEP_CHARS  # at most 4 bytes a character in UTF-8


@dataclass
class SendResult:
    """What one pass did: deliveries acknowledged, deliveries given up, deliveries still pending."""

    sent: int = 0
    failed: int = 0
    left: int = 0


@dataclass
class _Answer:
    status_code: int | None
    body: str
    error: str
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def receiver_down(self) -> bool:
        return self.status_code is None or self.status_code >= 500


def signature(*, secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 with the secret over b"<timestamp>." + the raw body (sent as "v1=<hex>")."""
    message = str(int(timestamp)).encode() + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def event_body(event: Event) -> bytes:
    """The bytes POSTed for an event: the same bytes every time for the same event."""
    created_at = timezone.localtime(event.created_at, BODY_TIME_ZONE).isoformat()
    payload = {"id": event.public_id, "type": event.type, "created_at": created_at, "data": event.data}
    # Sorted keys: PostgreSQL's jsonb keeps its own key order, so the order as written is not stable.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer like any other non-2xx: the event is not followed to another address."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _opener() -> urllib.request.OpenerDirector:
    # No proxies from the environment: the subscription's URL is reached as written.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)


def _post(opener, *, url: str, body: bytes, headers: dict[str, str]) -> _Answer:
    if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
        return _Answer(status_code=None, body="", error="only http and https addresses are sent to", duration_ms=0)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - checked above
    started = time.monotonic()
    status_code, text, error = None, "", ""
    try:
        with opener.open(request, timeout=settings.WEBHOOK_TIMEOUT_SECONDS) as response:
            status_code = response.status
            text = _text(response.read(_RESPONSE_READ_BYTES))
    except urllib.error.HTTPError as answer:
        status_code = answer.code
        try:
            text = _text(answer.read(_RESPONSE_READ_BYTES))
        except (OSError, http.client.HTTPException):
            text = ""
        finally:
            answer.close()
    except urllib.error.URLError as problem:
        error = _error_text(problem.reason)
    except (OSError, http.client.HTTPException, ValueError) as problem:
        error = _error_text(problem)
    duration_ms = int((time.monotonic() - started) * 1000)
    return _Answer(status_code=status_code, body=text, error=error, duration_ms=duration_ms)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")[:RESPONSE_KEEP_CHARS]


def _error_text(problem) -> str:
    if isinstance(problem, TimeoutError):
        return "timeout"
    if isinstance(problem, ConnectionRefusedError):
        return "connection refused"
    if isinstance(problem, ConnectionResetError):
        return "connection reset"
    if isinstance(problem, http.client.RemoteDisconnected):
        return "connection closed without an answer"
    if isinstance(problem, socket.gaierror):
        return f"host not found: {problem}"[:300]
    text = str(problem) or problem.__class__.__name__
    return text[:300]


def _retry_delay(tries: int) -> timedelta:
    seconds = settings.WEBHOOK_RETRY_FIRST_SECONDS * 2 ** min(max(tries - 1, 0), 30)
    return timedelta(seconds=min(seconds, settings.WEBHOOK_RETRY_MAX_SECONDS))


def _lease_take(subscription_id: int, *, now: datetime) -> datetime | None:
    until = now + timedelta(seconds=LEASE_SECONDS)
    taken = Subscription.objects.filter(
        Q(sending_until__isnull=True) | Q(sending_until__lt=now), pk=subscription_id, is_active=True,
    ).update(sending_until=until)
    return until if taken else None


def _lease_renew(subscription_id: int, *, held: datetime, now: datetime) -> datetime | None:
    """Extend the hold before it runs out; None when it was lost (taken over, or the subscription switched off)."""
    if held - now > timedelta(seconds=LEASE_SECONDS / 2):
        return held
    until = now + timedelta(seconds=LEASE_SECONDS)
    renewed = Subscription.objects.filter(pk=subscription_id, is_active=True, sending_until=held).update(
        sending_until=until,
    )
    return until if renewed else None


def _lease_release(subscription_id: int, *, held: datetime) -> None:
    Subscription.objects.filter(pk=subscription_id, sending_until=held).update(sending_until=None)


def _record(delivery: Delivery, answer: _Answer, *, at: datetime) -> str:
    """Write the try and the delivery's new state in one short transaction; return the new status."""
    number = delivery.attempts + 1
    update = {
        "attempts": number, "last_attempt_at": at, "last_status_code": answer.status_code,
        "last_error": answer.error[:300],
    }
    if answer.ok:
        update.update(status=Delivery.Status.DELIVERED, delivered_at=at)
    elif at - delivery.window_start >= timedelta(hours=settings.WEBHOOK_RETRY_HOURS):
        update.update(status=Delivery.Status.FAILED)
    else:
        # The backoff counts the tries of the current round only: a resend starts again at the first wait.
        round_tries = 1 + Attempt.objects.filter(delivery_id=delivery.pk, tried_at__gte=delivery.window_start).count()
        update.update(next_attempt_at=at + _retry_delay(round_tries))
    with transaction.atomic():
        Attempt.objects.create(
            delivery=delivery, number=number, tried_at=at, status_code=answer.status_code,
            response_body=answer.body, error=answer.error[:300], duration_ms=answer.duration_ms,
        )
        # Only a delivery still pending changes: a resend or a switch-off in the meantime is left as it is.
        Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.PENDING).update(**update)
    for name, value in update.items():
        setattr(delivery, name, value)
    return update.get("status", Delivery.Status.PENDING)


# Passes one call makes at most: after a pass the sender looks again for deliveries written meanwhile, whose own
# message found the lease held and was dropped (else they would wait for the minute's sweep).
PASSES = 20


def subscription_send(subscription_id: int, *, now: datetime | None = None) -> SendResult:
    """Send a subscription's due deliveries in event order, one sender at a time; return what the passes did.

    Does nothing when the subscription is inactive or another sender holds it. Raises nothing for a receiver's
    failure: the try is recorded and the delivery retried later.
    """
    total = SendResult()
    for _pass in range(PASSES):
        result, newer = _subscription_pass(subscription_id, now=now)
        total.sent += result.sent
        total.failed += result.failed
        total.left = result.left
        if not newer:
            break
    return total


def _subscription_pass(subscription_id: int, *, now: datetime | None) -> tuple[SendResult, bool]:
    """One pass; also whether a delivery written during it is due and waiting (a message dropped meanwhile)."""
    result = SendResult()
    start = now or timezone.now()
    started = time.monotonic()

    def clock() -> datetime:
        return start + timedelta(seconds=time.monotonic() - started)

    held = _lease_take(subscription_id, now=start)
    if held is None:
        return result, False
    retry_at: datetime | None = None
    after = 0
    stopped = False
    try:
        subscription = Subscription.objects.get(pk=subscription_id)
        secret = pii_decrypt(subscription.secret_sealed)
        opener = _opener()
        blocked: set[str] = set()
        while not stopped:
            batch = list(
                Delivery.objects.filter(subscription_id=subscription_id, status=Delivery.Status.PENDING,
                                        event_id__gt=after)
                .select_related("event").order_by("event_id")[:BATCH_SIZE]
            )
            if not batch:
                break
            for delivery in batch:
                after = delivery.event_id
                subject = delivery.event.subject
                if subject in blocked:
                    continue
                moment = clock()
                if delivery.next_attempt_at > moment:
                    # Its retry was scheduled by the pass that put it off (and the sweep is the safety net).
                    blocked.add(subject)
                    continue
                held = _lease_renew(subscription_id, held=held, now=moment)
                if held is None:
                    stopped = True
                    break
                body = event_body(delivery.event)
                timestamp = int(moment.timestamp())
                answer = _post(opener, url=subscription.url, body=body, headers={
                    "Content-Type": "application/json",
                    "User-Agent": USER_AGENT,
                    "Webhook-Id": delivery.event.public_id,
                    "Webhook-Timestamp": str(timestamp),
                    "Webhook-Signature": "v1=" + signature(secret=secret, timestamp=timestamp, body=body),
                })
                status = _record(delivery, answer, at=clock())
                if status == Delivery.Status.DELIVERED:
                    result.sent += 1
                elif status == Delivery.Status.FAILED:
                    result.failed += 1
                else:
                    blocked.add(subject)
                    retry_at = min(retry_at or delivery.next_attempt_at, delivery.next_attempt_at)
                if not answer.ok and answer.receiver_down:
                    stopped = True
                    break
    finally:
        if held is not None:
            _lease_release(subscription_id, held=held)
    result.left = Delivery.objects.filter(subscription_id=subscription_id, status=Delivery.Status.PENDING).count()
    if retry_at is not None and not settings.CELERY_TASK_ALWAYS_EAGER:
        _send_later(subscription_id, countdown=(retry_at - clock()).total_seconds())
    newer = not stopped and retry_at is None and now is None and Delivery.objects.filter(
        subscription_id=subscription_id, status=Delivery.Status.PENDING, event_id__gt=after,
        next_attempt_at__lte=clock(),
    ).exists()
    return result, newer


def _send_later(subscription_id: int, *, countdown: float) -> None:
    from integrations.tasks import deliveries_send

    deliveries_send.apply_async((subscription_id,), countdown=max(math.ceil(countdown), 1))


def deliveries_due_send(*, now: datetime | None = None) -> int:
    """Hand every active subscription with a due pending delivery to the sender; return how many."""
    from integrations.tasks import deliveries_send

    now = now or timezone.now()
    due = Delivery.objects.filter(
        subscription=OuterRef("pk"), status=Delivery.Status.PENDING, next_attempt_at__lte=now,
    )
    pks = list(Subscription.objects.filter(Exists(due), is_active=True).order_by("pk").values_list("pk", flat=True))
    for pk in pks:
        deliveries_send.delay(pk)
    return len(pks)


def events_prune(*, now: datetime | None = None) -> int:
    """Delete events older than WEBHOOK_RETENTION_DAYS with no pending delivery (with their deliveries and
    tries); return how many events."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.WEBHOOK_RETENTION_DAYS)
    pending = Delivery.objects.filter(event=OuterRef("pk"), status=Delivery.Status.PENDING)
    removed = 0
    while True:
        pks = list(
            Event.objects.filter(~Exists(pending), created_at__lt=cutoff)
            .order_by("pk").values_list("pk", flat=True)[:PRUNE_BATCH_SIZE]
        )
        if not pks:
            return removed
        # Asked again at the delete: a delivery resent since the read above keeps its event.
        _total, per_model = Event.objects.filter(~Exists(pending), pk__in=pks).delete()
        removed += per_model.get(Event._meta.label, 0)
        if len(pks) < PRUNE_BATCH_SIZE:
            return removed
