"""Celery tasks of campaigns: thin wrappers around campaigns.services."""

from datetime import date

from celery import shared_task

from campaigns import services


@shared_task(name="campaigns.coupons_expire")
def coupons_expire() -> int:
    return services.coupons_expire()


@shared_task(name="campaigns.targeted_campaigns_switch")
def targeted_campaigns_switch(today: str | None = None) -> dict:
    """`today` (YYYY-MM-DD) replays the switch of a day the nightly run missed; none: today."""
    return services.targeted_campaigns_switch(today=date.fromisoformat(today) if today else None)


@shared_task(name="campaigns.segment_snapshot_materialise")
def segment_snapshot_materialise(snapshot_id: int) -> int:
    return services.segment_snapshot_materialise(snapshot_id=snapshot_id).member_count
