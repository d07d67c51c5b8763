"""Sending webhooks (CONTRACT section 5): signed POSTs to a real local receiver, order per subject, retries."""

import hashlib
import hmac
import json
import threading
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import override_settings
from django.utils import timezone

from integrations.events import event_emit
from integrations.models import Attempt, Delivery, Event, Subscription
from integrations.services import (
    deliveries_due_send,
    event_body,
    events_prune,
    signature,
    subscription_send,
)
from tests.integrations.conftest import SECRET


def committed(test):
    """Transactional on PostgreSQL: the commit hands the events to the sender as in production (Celery is eager
    in tests, so the first pass runs at the commit), and the receiver's threads see what was committed."""
    return pytest.mark.postgres(pytest.mark.django_db(transaction=True, serialized_rollback=True)(test))


def emit(subject: str = "card:8697000000000001", *, event_type: str = "card.debited", amount: str = "12.50"):
    with transaction.atomic():
        return event_emit(event_type, subject=subject, data={"card_no": subject.partition(":")[2],
                                                             "amount": Decimal(amount), "store": "DEPT001"})


def later(delivery: Delivery, seconds: int = 1) -> datetime:
    """A moment just after the delivery's next try is due."""
    delivery.refresh_from_db()
    return delivery.next_attempt_at + timedelta(seconds=seconds)


def receiver_check(request, secret: str = SECRET) -> bool:
    """What a receiver does: recompute the signature over "<timestamp>.<raw body>" and compare in constant time."""
    timestamp = request.headers["Webhook-Timestamp"]
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(request.headers["Webhook-Signature"], "v1=" + expected)


def test_signature_is_the_hmac_of_timestamp_dot_body():
    body = '{"id":"evt_1","data":{"门店":"百货"}}'.encode()

    signed = signature(secret="s3cret", timestamp=1700000000, body=body)

    assert signed == hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signed != signature(secret="s3cret", timestamp=1700000001, body=body)
    assert signed != signature(secret="other", timestamp=1700000000, body=body)


def test_event_body_is_the_same_bytes_from_memory_and_from_the_database(make_subscription, receiver):
    make_subscription(receiver.url)
    event = emit(amount="8.00")

    stored = Event.objects.get(pk=event.pk)

    assert event_body(event) == event_body(stored)
    payload = json.loads(event_body(stored))
    assert payload == {
        "id": event.public_id, "type": "card.debited",
        "created_at": timezone.localtime(event.created_at).isoformat(),
        "data": {"card_no": "8697000000000001", "amount": "8.00", "store": "DEPT001"},
    }
    assert payload["created_at"].endswith("+08:00")


def test_a_delivery_reaches_the_receiver_signed_with_the_contracts_headers(make_subscription, receiver):
    subscription = make_subscription(receiver.url)
    event = emit()
    now = timezone.now()

    result = subscription_send(subscription.pk, now=now)

    assert (result.sent, result.failed, result.left) == (1, 0, 0)
    [request] = receiver.requests
    assert request.path == "/hooks"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Webhook-Id"] == event.public_id
    assert request.headers["Webhook-Timestamp"] == str(int(now.timestamp()))
    assert request.headers["Webhook-Signature"].startswith("v1=")
    assert request.headers["User-Agent"]
    assert receiver_check(request)
    assert not receiver_check(request, secret="a wrong secret")
    assert request.json["id"] == event.public_id
    assert request.json["data"]["amount"] == "12.50"
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.Status.DELIVERED
    assert delivery.delivered_at is not None and delivery.last_status_code == 200
    attempt = Attempt.objects.get()
    assert (attempt.number, attempt.status_code, attempt.error) == (1, 200, "")
    assert json.loads(attempt.response_body) == {"status": 200}
    assert not Subscription.objects.get().sending_until


@committed
def test_a_500_is_retried_with_backoff_until_the_receiver_answers_2xx(make_subscription, receiver):
    # given: a receiver that fails three times
    receiver.answer(500, 500, 500)
    subscription = make_subscription(receiver.url)
    # when: the commit sends the first try
    event = emit()
    # then
    delivery = Delivery.objects.get()
    for number, delay in enumerate((30, 60, 120), start=1):
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", number, 500)
        assert delivery.next_attempt_at - delivery.last_attempt_at == timedelta(seconds=delay)
        # a pass before the retry is due sends nothing
        assert subscription_send(subscription.pk, now=delivery.last_attempt_at + timedelta(seconds=5)).sent == 0
        assert len(receiver.requests) == number
        subscription_send(subscription.pk, now=later(delivery))
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.DELIVERED
    assert receiver.ids() == [event.public_id] * 4
    assert all(receiver_check(request) for request in receiver.requests)
    assert list(delivery.attempt_log.values_list("number", "status_code")) == [
        (1, 500), (2, 500), (3, 500), (4, 200)]


@committed
def test_events_wait_for_a_receiver_that_is_down_and_then_arrive_in_order_per_subject(
        make_subscription, receiver, closed_url):
    # given: a receiver that is down, and events of two cards
    subscription = make_subscription(closed_url)
    start = timezone.now()
    first = [emit("card:A", amount=f"{n}.00").public_id for n in range(1, 4)]
    second = [emit("card:B", amount=f"{n}.00").public_id for n in range(1, 4)]
    first += [emit("card:A", amount=f"{n}.00").public_id for n in range(4, 6)]
    # when: passes during the hour
    for minutes in (1, 5, 20, 40):
        result = subscription_send(subscription.pk, now=start + timedelta(minutes=minutes))
        assert (result.sent, result.left) == (0, 8)
    # then: nothing arrived; each pass stopped at the first refusal
    assert not receiver.requests
    assert set(Attempt.objects.values_list("error", flat=True)) == {"connection refused"}
    assert Attempt.objects.filter(delivery__event__subject="card:B").count() == 1
    # when: the receiver is up an hour later, and a second sender starts while the first one sends
    Subscription.objects.filter(pk=subscription.pk).update(url=receiver.url)
    meanwhile = []

    def second_sender(request):
        meanwhile.append(subscription_send(subscription.pk, now=start + timedelta(hours=1)).sent)
        connection.close()  # the request's thread had a connection of its own

    receiver.on_request = second_sender
    result = subscription_send(subscription.pk, now=start + timedelta(hours=1))
    # then: every event arrives once, in order per card, all sent by the first sender
    assert (result.sent, result.left) == (8, 0)
    assert meanwhile == [0] * 8
    ids = receiver.ids()
    assert sorted(ids) == sorted(first + second)
    assert [i for i in ids if i in first] == first
    assert [i for i in ids if i in second] == second


@committed
def test_a_rolled_back_transaction_sends_nothing(make_subscription, receiver):
    make_subscription(receiver.url)

    with pytest.raises(RuntimeError), transaction.atomic():
        event_emit("card.loaded", subject="card:A", data={"amount": "100.00"})
        raise RuntimeError("the change failed")
    kept = emit("card:A")

    assert list(Event.objects.values_list("public_id", flat=True)) == [kept.public_id]
    assert receiver.ids() == [kept.public_id]


def test_a_held_lease_stops_a_second_sender_until_it_runs_out(make_subscription, receiver):
    subscription = make_subscription(receiver.url)
    emit()
    now = timezone.now()
    Subscription.objects.filter(pk=subscription.pk).update(sending_until=now + timedelta(seconds=60))

    assert subscription_send(subscription.pk, now=now).sent == 0
    assert not receiver.requests
    assert subscription_send(subscription.pk, now=now + timedelta(seconds=61)).sent == 1
    assert len(receiver.requests) == 1


def test_after_the_retry_window_a_delivery_fails_and_the_next_event_of_its_subject_goes_out(
        make_subscription, receiver, settings):
    subscription = make_subscription(receiver.url)
    stuck, following = emit("card:A"), emit("card:A")
    receiver.rule = lambda request: 400 if request.event_id == stuck.public_id else None
    now = timezone.now()

    first = subscription_send(subscription.pk, now=now)
    last = subscription_send(subscription.pk, now=now + timedelta(hours=settings.WEBHOOK_RETRY_HOURS, seconds=1))

    assert (first.sent, first.failed, first.left) == (0, 0, 2)
    assert (last.sent, last.failed, last.left) == (1, 1, 0)
    assert receiver.ids() == [stuck.public_id, stuck.public_id, following.public_id]
    statuses = dict(Delivery.objects.values_list("event__public_id", "status"))
    assert statuses == {stuck.public_id: "failed", following.public_id: "delivered"}


def test_a_4xx_holds_back_its_own_subject_only(make_subscription, receiver):
    subscription = make_subscription(receiver.url)
    refused, held_back, other = emit("card:A"), emit("card:A"), emit("card:B")
    receiver.answer(404)

    result = subscription_send(subscription.pk, now=timezone.now())

    assert (result.sent, result.left) == (1, 2)
    assert receiver.ids() == [refused.public_id, other.public_id]
    assert Delivery.objects.get(event=held_back).attempts == 0


def test_a_5xx_ends_the_pass_for_every_subject(make_subscription, receiver):
    subscription = make_subscription(receiver.url)
    down, other = emit("card:A"), emit("card:B")
    receiver.answer(503)

    result = subscription_send(subscription.pk, now=timezone.now())

    assert (result.sent, result.left) == (0, 2)
    assert receiver.ids() == [down.public_id]
    assert Delivery.objects.get(event=other).attempts == 0


def test_backoff_stops_growing_at_the_longest_wait(make_subscription, receiver, settings):
    settings.WEBHOOK_RETRY_MAX_SECONDS = 45
    subscription = make_subscription(receiver.url)
    emit()
    receiver.answer(400, 400)
    delivery = Delivery.objects.get()

    subscription_send(subscription.pk, now=timezone.now())
    subscription_send(subscription.pk, now=later(delivery))

    delivery.refresh_from_db()
    assert delivery.attempts == 2
    assert delivery.next_attempt_at - delivery.last_attempt_at == timedelta(seconds=45)


def test_a_resent_delivery_starts_again_at_the_first_wait(make_subscription, receiver, settings):
    subscription = make_subscription(receiver.url)
    emit()
    receiver.answer(400, 400, 400)
    delivery = Delivery.objects.get()
    subscription_send(subscription.pk, now=timezone.now())
    subscription_send(subscription.pk, now=later(delivery))
    resent_at = later(delivery)
    Delivery.objects.update(window_start=resent_at, next_attempt_at=resent_at)  # what a resend does

    subscription_send(subscription.pk, now=resent_at)

    delivery.refresh_from_db()
    assert delivery.attempts == 3
    assert delivery.next_attempt_at - delivery.last_attempt_at == timedelta(
        seconds=settings.WEBHOOK_RETRY_FIRST_SECONDS)


def test_an_inactive_subscription_sends_nothing_and_keeps_its_deliveries(make_subscription, receiver):
    subscription = make_subscription(receiver.url)
    emit()
    Subscription.objects.filter(pk=subscription.pk).update(is_active=False)

    result = subscription_send(subscription.pk, now=timezone.now())

    assert result.sent == 0
    assert not receiver.requests
    assert Delivery.objects.get().status == Delivery.Status.PENDING


@override_settings(WEBHOOK_TIMEOUT_SECONDS=0.2)
def test_a_receiver_that_does_not_answer_in_time_is_a_timeout(make_subscription, receiver):
    subscription = make_subscription(receiver.url)
    emit()
    release = threading.Event()
    receiver.on_request = lambda request: release.wait(2)

    subscription_send(subscription.pk, now=timezone.now())
    release.set()

    attempt = Attempt.objects.get()
    assert (attempt.status_code, attempt.error) == (None, "timeout")
    assert Delivery.objects.get().status == Delivery.Status.PENDING


def test_the_sweep_hands_over_subscriptions_with_a_due_delivery(make_subscription, receiver):
    make_subscription(receiver.url, name="due")
    waiting = make_subscription(receiver.url, name="waiting", event_types=["card.loaded"])
    make_subscription(receiver.url, name="all types")
    switched_off = make_subscription(receiver.url, name="off", event_types=["card.loaded"])
    event = emit(event_type="card.loaded")
    now = timezone.now()
    Delivery.objects.filter(subscription=waiting).update(next_attempt_at=now + timedelta(minutes=5))
    Subscription.objects.filter(pk=switched_off.pk).update(is_active=False)

    assert deliveries_due_send(now=now) == 2  # "due" and "all types"

    assert receiver.ids() == [event.public_id, event.public_id]
    statuses = dict(Delivery.objects.values_list("subscription__name", "status"))
    assert statuses == {"due": "delivered", "all types": "delivered", "waiting": "pending", "off": "pending"}


def test_prune_removes_old_finished_events_and_keeps_pending_ones(make_subscription, receiver, settings):
    subscription = make_subscription(receiver.url)
    old_delivered, old_pending, recent = emit("card:A"), emit("card:B"), emit("card:C")
    subscription_send(subscription.pk, now=timezone.now())
    Delivery.objects.filter(event=old_pending).update(status=Delivery.Status.PENDING)
    old = timezone.now() - timedelta(days=settings.WEBHOOK_RETENTION_DAYS, minutes=1)
    Event.objects.filter(pk__in=[old_delivered.pk, old_pending.pk]).update(created_at=old)

    assert events_prune() == 1

    assert set(Event.objects.values_list("pk", flat=True)) == {old_pending.pk, recent.pk}
    assert not Attempt.objects.filter(delivery__event_id=old_delivered.pk).exists()
    assert Delivery.objects.filter(event=old_pending, status="pending").exists()
    assert subscription.deliveries.count() == 2


def test_a_put_off_delivery_schedules_the_sender_for_its_retry(make_subscription, receiver, settings, monkeypatch):
    from integrations.tasks import deliveries_send

    settings.CELERY_TASK_ALWAYS_EAGER = False
    scheduled = []
    monkeypatch.setattr(deliveries_send, "apply_async", lambda args, countdown: scheduled.append((args, countdown)))
    subscription = make_subscription(receiver.url)
    emit()
    receiver.answer(400)

    subscription_send(subscription.pk, now=timezone.now())
    subscription_send(subscription.pk, now=timezone.now())  # not due yet: nothing more to schedule

    [(args, countdown)] = scheduled
    assert args == (subscription.pk,)
    assert settings.WEBHOOK_RETRY_FIRST_SECONDS - 2 <= countdown <= settings.WEBHOOK_RETRY_FIRST_SECONDS
