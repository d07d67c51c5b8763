"""Writing events to the outbox, in the caller's transaction (DESIGN section 8).

Domain services call `event_emit` (or `events_emit_many` for a batch) right after the change they report, inside
its transaction: the event and its deliveries commit with the change or not at all, so a rolled-back write sends
nothing and a committed one is never lost. After commit the subscriptions that got deliveries are handed to the
sender (integrations.tasks). Nothing is written when no active subscription wants the type: the subscriptions are
read at most every WEBHOOK_SUBSCRIPTIONS_CACHE_SECONDS per process (and at once in the process that saved one),
so the write path of a POS does no extra query when nobody listens.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterable

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from integrations.models import Delivery, Event, EventType, Subscription

_EVENT_TYPES = frozenset(EventType.values)  # EventType.values builds a new list on every read
_cache_lock = threading.Lock()
_cache: dict = {"loaded_at": None, "by_type": {}}


def subscriptions_for(event_type: str) -> tuple[int, ...]:
    """The ids of the active subscriptions that want `event_type`, from the per-process cache."""
    now = time.monotonic()
    loaded_at = _cache["loaded_at"]
    if loaded_at is None or now - loaded_at > settings.WEBHOOK_SUBSCRIPTIONS_CACHE_SECONDS:
        by_type: dict[str, list[int]] = {}
        for pk, types in Subscription.objects.filter(is_active=True).values_list("pk", "event_types"):
            for name in types or ():
                by_type.setdefault(name, []).append(pk)
        with _cache_lock:
            _cache["by_type"] = {name: tuple(sorted(pks)) for name, pks in by_type.items()}
            _cache["loaded_at"] = now
    return _cache["by_type"].get(event_type, ())


def subscriptions_cache_clear() -> None:
    with _cache_lock:
        _cache["loaded_at"] = None


@receiver(post_save, sender=Subscription)
@receiver(post_delete, sender=Subscription)
def _subscription_changed(**kwargs) -> None:
    subscriptions_cache_clear()


def _public_id() -> str:
    return "evt_" + uuid.uuid4().hex


def _data(data: dict) -> str:
    """The event's data as JSON text: Decimals as strings ("12.50"), times in ISO 8601."""
    return json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False, separators=(",", ":"))


def event_emit(event_type: str, *, subject: str, data: dict, at=None) -> Event | None:
    """Write one event and its deliveries in the current transaction; None when nobody wants the type.

    `subject` names what it is about ("card:8697..." or "member:M..."): a receiver gets the events of one subject
    in the order they were written, which for a card or member is the order of its ledger (the writer holds its
    row lock). `data` holds JSON values (Decimals become strings).
    """
    targets = subscriptions_for(event_type)
    if not targets:
        return None
    if event_type not in _EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    now = at or timezone.now()
    event = Event(public_id=_public_id(), type=event_type, subject=subject[:100], data={}, created_at=now)
    text = _data(data)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One round trip: the event and its deliveries.
            cursor.execute(
                "WITH e AS (INSERT INTO integrations_event (public_id, type, subject, data, created_at) "
                "VALUES (%s, %s, %s, %s::jsonb, %s) RETURNING id) "
                "INSERT INTO integrations_delivery (event_id, subscription_id, status, attempts, next_attempt_at, "
                "window_start, last_error) SELECT e.id, s, 'pending', 0, %s, %s, '' FROM e, unnest(%s::bigint[]) s "
                "RETURNING event_id",
                [event.public_id, event_type, event.subject, text, now, now, now, list(targets)],
            )
            event.pk = cursor.fetchone()[0]
        else:
            cursor.execute(
                "INSERT INTO integrations_event (public_id, type, subject, data, created_at) VALUES (%s, %s, %s, %s, "
                "%s)",
                [event.public_id, event_type, event.subject, text, now],
            )
            event.pk = cursor.lastrowid
            cursor.executemany(
                "INSERT INTO integrations_delivery (event_id, subscription_id, status, attempts, next_attempt_at, "
                "window_start, last_error) VALUES (%s, %s, 'pending', 0, %s, %s, '')",
                [(event.pk, pk, now, now) for pk in targets],
            )
    event.data = json.loads(text)
    _send_after_commit(targets)
    return event


def events_emit_many(event_type: str, items: Iterable[tuple[str, dict]], *, at=None) -> int:
    """Write one event per (subject, data) in the current transaction, as event_emit would; return how many.

    For the batch writers (the nightly expiry, a coupon issue to thousands of members): nothing is read or built
    when nobody wants the type.
    """
    targets = subscriptions_for(event_type)
    if not targets:
        return 0
    now = at or timezone.now()
    events = [
        Event(public_id=_public_id(), type=event_type, subject=subject[:100], data=json.loads(_data(data)),
              created_at=now)
        for subject, data in items
    ]
    if not events:
        return 0
    Event.objects.bulk_create(events, batch_size=2000)
    if any(event.pk is None for event in events):  # a database that returns no keys from a bulk insert
        ids = dict(Event.objects.filter(public_id__in=[e.public_id for e in events]).values_list("public_id", "pk"))
        for event in events:
            event.pk = ids[event.public_id]
    Delivery.objects.bulk_create(
        [Delivery(event_id=event.pk, subscription_id=pk, next_attempt_at=now, window_start=now)
         for event in events for pk in targets],
        batch_size=2000,
    )
    _send_after_commit(targets)
    return len(events)


def _send_after_commit(targets: tuple[int, ...]) -> None:
    """Hand the subscriptions to the sender once the transaction has committed: one callback per transaction,
    which collects every subscription its events went to. A rolled-back transaction drops its callback (Django
    forgets it), so the next one registers its own."""
    if not connection.in_atomic_block:  # autocommit: the event is already committed
        _send(targets)
        return
    registered = getattr(connection, "_webhook_send", None)
    if registered is None or not any(entry[1] is registered for entry in connection.run_on_commit):
        pending: set[int] = set()

        def send():
            _send(pending)

        send.pending = pending
        connection._webhook_send = send
        registered = send
        transaction.on_commit(send)
    registered.pending.update(targets)


# When this process last handed each set of subscriptions to the worker (time.monotonic()).
_published: dict[tuple[int, ...], float] = {}


def _send(subscription_ids) -> None:
    """One message to the worker per committed transaction, however many subscriptions its events went to: each
    publish costs the writing request a broker round trip. A process that handed the same subscriptions over less
    than WEBHOOK_PUBLISH_INTERVAL_SECONDS ago sends none: that sender's pass, which looks again for deliveries
    written meanwhile before it ends, or the minute's sweep takes the new ones."""
    from integrations.tasks import deliveries_send, deliveries_send_many

    ids = sorted(subscription_ids)
    interval = settings.WEBHOOK_PUBLISH_INTERVAL_SECONDS
    if ids and interval > 0 and not settings.CELERY_TASK_ALWAYS_EAGER:
        key, moment = tuple(ids), time.monotonic()
        last = _published.get(key)
        if last is not None and moment - last < interval:
            return
        _published[key] = moment
    if len(ids) == 1:
        deliveries_send.delay(ids[0])
    elif ids:
        deliveries_send_many.delay(ids)
