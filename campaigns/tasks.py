"""Celery tasks of campaigns: thin wrappers around campaigns.services."""

from celery import shared_task

from campaigns import services


@shared_task(name="campaigns.coupons_expire")
def coupons_expire() -> int:
    return services.coupons_expire()
