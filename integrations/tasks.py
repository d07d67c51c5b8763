"""Celery tasks of the webhooks: thin wrappers around integrations.services."""

from celery import shared_task

from integrations import services


@shared_task(name="integrations.deliveries_send", ignore_result=True)
def deliveries_send(subscription_id: int) -> None:
    """Send a subscription's due deliveries in order (after a commit, and again when a retry falls due)."""
    services.subscription_send(subscription_id)


@shared_task(name="integrations.deliveries_send_many", ignore_result=True)
def deliveries_send_many(subscription_ids: list[int]) -> None:
    """The same for several subscriptions: one message for a transaction whose events went to more than one."""
    for subscription_id in subscription_ids:
        services.subscription_send(subscription_id)


@shared_task(name="integrations.deliveries_sweep")
def deliveries_sweep() -> int:
    """Every minute: hand every subscription with a due delivery to the sender (a lost message or a retry)."""
    return services.deliveries_due_send()


@shared_task(name="integrations.events_prune")
def events_prune() -> int:
    """Nightly: forget events past WEBHOOK_RETENTION_DAYS that have nothing left to send."""
    return services.events_prune()
