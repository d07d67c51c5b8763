"""Webhook subscriptions (integrations/services/subscriptions.py): checks, the sealed secret, resending."""

from datetime import timedelta

import pytest
from django.utils import timezone

from core.pii import pii_decrypt
from integrations import tasks
from integrations.demo import DEMO_NAME, webhooks_seed
from integrations.errors import ResendInvalid, SubscriptionInvalid
from integrations.models import Attempt, Delivery, Event, EventType, Subscription
from integrations.services import (
    deliveries_resend,
    events_resend,
    subscription_create,
    subscription_secret,
    subscription_secret_rotate,
    subscription_update,
)

URL = "https://app.example.cn/webhooks"
GOOD = {"name": "集团APP", "url": URL, "event_types": ["points.earned", "card.debited"]}


@pytest.fixture
def sent(monkeypatch):
    """The subscription ids handed to the sender (integrations.tasks.deliveries_send), in order."""
    calls: list[int] = []
    monkeypatch.setattr(tasks.deliveries_send, "delay", calls.append)
    return calls


def make_event(subscriptions, *, type=EventType.CARD_DEBITED, at=None, status=Delivery.Status.DELIVERED,
               subject="card:8697000000000001"):
    """An event written at `at` with one delivery per subscription, already tried once and in `status`."""
    at = at or timezone.now()
    event = Event.objects.create(public_id=f"evt_{Event.objects.count() + 1:032x}", type=type, subject=subject,
                                 data={"card_no": subject.split(":", 1)[1], "amount": "12.50"}, created_at=at)
    for subscription in subscriptions:
        delivery = Delivery.objects.create(
            event=event, subscription=subscription, status=status, attempts=1, window_start=at,
            next_attempt_at=at + timedelta(seconds=30), last_attempt_at=at, last_status_code=200,
            delivered_at=at if status == Delivery.Status.DELIVERED else None,
        )
        Attempt.objects.create(delivery=delivery, number=1, tried_at=at, status_code=200, response_body="ok")
    return event


@pytest.fixture
def subscription(db):
    return subscription_create(**GOOD)


# --- creating and changing --------------------------------------------------------------------------------------


def test_create_seals_the_secret_and_keeps_the_types_in_the_catalogue_order(db, hq_admin):
    # when
    subscription = subscription_create(**GOOD, secret="s3cret-Of-The-Receiver!", actor=hq_admin)

    # then
    row = Subscription.objects.get(pk=subscription.pk)
    assert "s3cret-Of-The-Receiver!" not in row.secret_sealed
    assert pii_decrypt(row.secret_sealed) == "s3cret-Of-The-Receiver!"
    assert subscription_secret(row) == "s3cret-Of-The-Receiver!"
    assert row.event_types == ["card.debited", "points.earned"]
    assert row.created_by == hq_admin and row.is_active
    assert row.history.get().history_user == hq_admin


def test_a_blank_secret_is_made_at_random(db):
    first = subscription_create(**GOOD)
    second = subscription_create(**GOOD)

    secrets = {subscription_secret(first), subscription_secret(second)}
    assert len(secrets) == 2 and all(len(secret) >= 40 for secret in secrets)


@pytest.mark.parametrize(("changes", "field"), [
    ({"name": "  "}, "name"),
    ({"name": "名" * 101}, "name"),
    ({"url": "ftp://files.example.cn/hooks"}, "url"),
    ({"url": "javascript:alert(1)"}, "url"),
    ({"url": "https://"}, "url"),
    ({"url": "app.example.cn/webhooks"}, "url"),
    ({"url": "https://user:pass@app.example.cn/hooks"}, "url"),
    ({"url": "https://app.example.cn/hooks\x00"}, "url"),
    ({"url": "https://应用.中国/hooks"}, "url"),
    ({"url": "https://app.example.cn:99999/hooks"}, "url"),
    ({"url": "https://app.example.cn/" + "a" * 500}, "url"),
    ({"event_types": []}, "event_types"),
    ({"event_types": ["card.debited", "card.stolen"]}, "event_types"),
    ({"event_types": ["card.debited", "card.debited"]}, "event_types"),
    ({"event_types": "card.debited"}, "event_types"),
    ({"secret": "short"}, "secret"),
    ({"secret": "a secret with spaces in it"}, "secret"),
    ({"secret": "密钥密钥密钥密钥密钥密钥密钥密钥"}, "secret"),
    ({"secret": "x" * 201}, "secret"),
])
def test_create_refuses_a_bad_field_naming_it_and_writes_nothing(db, changes, field):
    with pytest.raises(SubscriptionInvalid) as refused:
        subscription_create(**{**GOOD, **changes})

    assert list(refused.value.fields) == [field]
    assert refused.value.code == "validation_error"
    assert not Subscription.objects.exists()


def test_an_intranet_host_and_an_ip_with_a_port_are_receivers(db):
    for url in ("http://app-gateway:8080/hooks", "http://10.20.0.7:8765/webhooks", "http://[fd00::7]/hooks"):
        assert subscription_create(**{**GOOD, "url": url}).url == url


def test_update_changes_the_fields_given_and_checks_them_as_create_does(subscription, hq_admin):
    # when
    updated = subscription_update(subscription=subscription, actor=hq_admin, url="https://new.example.cn/h",
                                  is_active=False)

    # then
    row = Subscription.objects.get(pk=subscription.pk)
    assert (row.url, row.is_active, row.name) == ("https://new.example.cn/h", False, "集团APP")
    assert updated.url == row.url
    assert row.history.latest().history_user == hq_admin
    with pytest.raises(SubscriptionInvalid) as refused:
        subscription_update(subscription=subscription, event_types=["card.stolen"])
    assert list(refused.value.fields) == ["event_types"]
    assert Subscription.objects.get(pk=subscription.pk).event_types == ["card.debited", "points.earned"]
    with pytest.raises(TypeError):
        subscription_update(subscription=subscription, secret_sealed="x")


def test_rotate_makes_a_new_secret_that_signs_from_then_on(subscription, hq_admin):
    before = subscription_secret(subscription)

    secret = subscription_secret_rotate(subscription=subscription, actor=hq_admin)

    row = Subscription.objects.get(pk=subscription.pk)
    assert secret != before and subscription_secret(row) == secret
    assert secret not in row.secret_sealed
    assert row.history.latest().history_change_reason == "new secret"


def test_the_demo_subscription_is_made_once_and_switched_off(db):
    first = webhooks_seed()
    again = webhooks_seed()

    assert first.pk == again.pk
    assert Subscription.objects.filter(name=DEMO_NAME).count() == 1
    assert not first.is_active and first.url == "http://127.0.0.1:8765/webhooks"


# --- resending ---------------------------------------------------------------------------------------------------


def test_resend_makes_deliveries_pending_and_due_with_a_new_window_keeping_their_tries(
        subscription, sent, django_capture_on_commit_callbacks):
    # given: a delivered event and a failed one
    long_ago = timezone.now() - timedelta(days=3)
    delivered = make_event([subscription], at=long_ago).deliveries.get()
    failed = make_event([subscription], at=long_ago, status=Delivery.Status.FAILED).deliveries.get()

    # when
    with django_capture_on_commit_callbacks(execute=True):
        count = deliveries_resend(deliveries=Delivery.objects.filter(pk__in=[delivered.pk, failed.pk]))

    # then
    assert count == 2
    for delivery in Delivery.objects.filter(pk__in=[delivered.pk, failed.pk]):
        assert delivery.status == Delivery.Status.PENDING
        assert delivery.next_attempt_at > long_ago + timedelta(days=2)
        assert delivery.window_start == delivery.next_attempt_at
        assert delivery.attempts == 1 and delivery.delivered_at is None
        assert delivery.attempt_log.count() == 1
    assert sent == [subscription.pk]


def test_resend_sends_nothing_before_commit(subscription, sent):
    make_event([subscription])

    deliveries_resend(deliveries=Delivery.objects.all())

    assert sent == []


def test_events_resend_takes_the_subscriptions_events_of_the_period_and_types(
        subscription, sent, django_capture_on_commit_callbacks):
    # given: events before, in and after the period, of two types; another subscription got the same events
    other = subscription_create(**{**GOOD, "name": "财务系统"})
    start = timezone.now() - timedelta(days=10)
    before = make_event([subscription, other], at=start - timedelta(seconds=1))
    inside = make_event([subscription, other], at=start)
    points = make_event([subscription, other], type=EventType.POINTS_EARNED, at=start + timedelta(days=1))
    after = make_event([subscription, other], at=start + timedelta(days=2, seconds=1))

    # when
    with django_capture_on_commit_callbacks(execute=True):
        count = events_resend(subscription=subscription, since=start, until=start + timedelta(days=2),
                              event_types=["card.debited"])

    # then
    pending = set(Delivery.objects.filter(status=Delivery.Status.PENDING).values_list("event", "subscription"))
    assert count == 1
    assert pending == {(inside.pk, subscription.pk)}
    assert {before.pk, points.pk, after.pk}.isdisjoint(event for event, _sub in pending)
    assert sent == [subscription.pk]


@pytest.mark.parametrize(("since_days", "until_days", "field"), [(0, -1, "until"), (-32, 0, "until")])
def test_events_resend_refuses_a_reversed_or_too_long_period(subscription, sent, since_days, until_days, field):
    now = timezone.now()
    make_event([subscription], at=now - timedelta(days=1))

    with pytest.raises(ResendInvalid) as refused:
        events_resend(subscription=subscription, since=now + timedelta(days=since_days),
                      until=now + timedelta(days=until_days))

    assert list(refused.value.fields) == [field]
    assert not Delivery.objects.filter(status=Delivery.Status.PENDING).exists()


def test_events_resend_refuses_an_unknown_type(subscription):
    now = timezone.now()

    with pytest.raises(ResendInvalid) as refused:
        events_resend(subscription=subscription, since=now - timedelta(days=1), until=now, event_types=["x.y"])

    assert list(refused.value.fields) == ["event_types"]


def test_events_resend_reads_naive_times_as_local_time(subscription, sent):
    # given: an event at 10:00 local time
    at = timezone.localtime().replace(hour=10, minute=0, second=0, microsecond=0) - timedelta(days=1)
    event = make_event([subscription], at=at)
    naive = at.replace(tzinfo=None)

    # then: 09:59-10:01 local takes it, 10:01-10:02 does not
    assert events_resend(subscription=subscription, since=naive + timedelta(minutes=1),
                         until=naive + timedelta(minutes=2)) == 0
    assert events_resend(subscription=subscription, since=naive - timedelta(minutes=1),
                         until=naive + timedelta(minutes=1)) == 1
    assert event.deliveries.get().status == Delivery.Status.PENDING


def test_resend_takes_a_sliced_queryset_or_a_list(subscription, sent):
    first, second, third = (make_event([subscription]).deliveries.get() for _ in range(3))

    assert deliveries_resend(deliveries=Delivery.objects.order_by("pk")[:1]) == 1
    assert deliveries_resend(deliveries=[third]) == 1
    assert deliveries_resend(deliveries=[]) == 0

    statuses = dict(Delivery.objects.values_list("pk", "status"))
    assert statuses == {first.pk: "pending", second.pk: "delivered", third.pk: "pending"}
