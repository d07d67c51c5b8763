"""Demo webhooks for `seed_demo` (safe to run twice): one example subscription, switched off, so the screens show
how a receiver is set up without the demo sending anything anywhere."""

from django.db import transaction

from integrations.models import EventType, Subscription
from integrations.services.subscriptions import subscription_create

DEMO_NAME = "集团APP（示例）"
DEMO_URL = "http://127.0.0.1:8765/webhooks"
DEMO_TYPES = [
    EventType.CARD_LOADED, EventType.CARD_DEBITED, EventType.CARD_REFUNDED, EventType.POINTS_EARNED,
    EventType.POINTS_REDEEMED, EventType.MEMBER_CREATED, EventType.MEMBER_TIER_CHANGED, EventType.COUPON_ISSUED,
]


@transaction.atomic
def webhooks_seed() -> Subscription:
    """The inactive example subscription, created once."""
    existing = Subscription.objects.filter(name=DEMO_NAME).order_by("pk").first()
    if existing is not None:
        return existing
    return subscription_create(name=DEMO_NAME, url=DEMO_URL, event_types=[str(name) for name in DEMO_TYPES],
                               is_active=False)
