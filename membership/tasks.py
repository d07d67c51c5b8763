"""Celery tasks of the member domain: thin wrappers around membership.services."""

from celery import shared_task

from membership import services


@shared_task(name="membership.merge_candidates_detect")
def merge_candidates_detect() -> int:
    return services.merge_candidates_detect()


@shared_task(name="membership.tiers_evaluate")
def tiers_evaluate() -> dict:
    return services.tiers_evaluate().as_dict()


@shared_task(name="membership.points_expire")
def points_expire() -> int:
    return services.points_expire()


@shared_task(name="membership.points_holds_release")
def points_holds_release() -> int:
    return services.points_holds_release()
