"""Webhooks: subscriptions and their secrets (subscriptions.py), sending deliveries in order with retries and
signatures (sending.py). Writing events is integrations/events.py, called by the domain services."""

from integrations.services.sending import (  # noqa: F401
    deliveries_due_send,
    event_body,
    events_prune,
    signature,
    subscription_send,
)
from integrations.services.subscriptions import (  # noqa: F401
    deliveries_resend,
    events_resend,
    subscription_create,
    subscription_secret,
    subscription_secret_rotate,
    subscription_update,
)
