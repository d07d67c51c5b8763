"""Celery tasks of the member domain: thin wrappers around membership.services."""

from celery import shared_task

from membership import services


@shared_task(name="membership.merge_candidates_detect")
def merge_candidates_detect() -> int:
    return services.merge_candidates_detect()
