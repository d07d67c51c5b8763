"""The issue's test of the whole path: a POS debit reaches a subscriber at a local server, signed."""

import hashlib
import hmac
import json
import time

from django.core.cache import cache

from integrations.models import Attempt, Delivery, EventType
from tests.integrations.conftest import SECRET
from tests.integrations.test_events import card, stored_product  # noqa: F401 - fixtures


def test_a_subscriber_receives_a_signed_card_debited_for_a_pos_debit(
    receiver, make_subscription, card, api, django_capture_on_commit_callbacks,  # noqa: F811 - the fixture
):
    cache.clear()  # the API's rate limits
    make_subscription(receiver.url, event_types=[EventType.CARD_DEBITED])

    # The debit commits; after commit the sender (Celery, eager here) posts the event.
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/cards/{card.card_no}/debit", content_type="application/json",
                            data=json.dumps({"amount": "12.50", "receipt_no": "P-1"}), HTTP_IDEMPOTENCY_KEY="dw-1")

    assert response.status_code == 201, response.content
    [request] = receiver.requests
    # What a receiver does (docs/webhooks.md): recompute the signature over "<timestamp>.<raw body>" and compare
    # in constant time; refuse a timestamp more than five minutes away.
    timestamp = request.headers["Webhook-Timestamp"]
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["Webhook-Signature"], f"v1={expected}")
    assert abs(time.time() - int(timestamp)) < 300
    body = request.json
    assert (body["type"], body["id"]) == ("card.debited", request.headers["Webhook-Id"])
    assert (body["data"]["card_no"], body["data"]["amount"], body["data"]["balance"], body["data"]["transaction_id"]) \
        == (card.card_no, "-12.50", "187.50", response.json()["transaction_id"])
    delivery = Delivery.objects.get()
    assert (delivery.status, Attempt.objects.filter(delivery=delivery).count()) == (Delivery.Status.DELIVERED, 1)
    # A replay of the same POS request moves nothing and sends nothing more.
    with django_capture_on_commit_callbacks(execute=True):
        replay = api.post(f"/api/v1/cards/{card.card_no}/debit", content_type="application/json",
                          data=json.dumps({"amount": "12.50", "receipt_no": "P-1"}), HTTP_IDEMPOTENCY_KEY="dw-1")
    assert replay.status_code == 201 and len(receiver.requests) == 1
    cache.clear()
