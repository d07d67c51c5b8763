"""The project's nightly (and every-minute) jobs, created in django-celery-beat so staff can edit them in the admin."""

from zoneinfo import ZoneInfo

from django.apps import apps as global_apps
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext_lazy as _

SCHEDULE_TIME_ZONE = "Asia/Shanghai"
# name of the periodic task -> (registered task, hour, minute, description); "*" for every hour or minute
NIGHTLY = {
    # Just after midnight, so points whose return window ended yesterday are usable in the morning.
    "membership: release pending points": (
        "membership.points_holds_release", 0, 20,
        _("Makes points held in a format's return window usable once the window has passed."),
    ),
    # Points earned in year N expire at the end of year N+1: the run on 1 January takes them.
    "membership: expire points": (
        "membership.points_expire", 0, 40,
        _("Takes away points past their expiry with an expire entry in the ledger."),
    ),
    "membership: evaluate tiers": (
        "membership.tiers_evaluate", 1, 30,
        _("Upgrades and downgrades earned tiers by rolling spend, and ends paid tiers whose term is over."),
    ),
    "membership: detect merge candidates": (
        "membership.merge_candidates_detect", 2, 30,
        _("Lists member records that may be one person, for staff to review; merges nothing."),
    ),
    # After midnight, so a bearer card valid "until" yesterday no longer pays in the morning; balances stay.
    "cards: expire bearer cards": (
        "cards.cards_expire", 0, 50,
        _("Marks bearer cards past their expiry as expired; their balances stay on them for reactivation or "
          "exchange."),
    ),
    # After midnight, so a voucher valid "until" yesterday shows as expired in the morning; its units stay.
    "cards: expire pickup vouchers": (
        "cards.vouchers_expire", 0, 55,
        _("Marks pickup vouchers past their validity as expired; their remaining units stay on them and are "
          "reported apart in the voucher liability."),
    ),
    # Just after midnight, so a campaign's first day starts with its coupons and points in place.
    "campaigns: switch targeted campaigns": (
        "campaigns.targeted_campaigns_switch", 0, 5,
        _("Starts scheduled targeted campaigns on their first day and ends running ones after their last day."),
    ),
    # After midnight, so a coupon valid "until" yesterday shows as expired in the morning.
    "campaigns: expire coupons": (
        "campaigns.coupons_expire", 0, 58,
        _("Closes open coupons past their validity as expired, and keeps each template's counts in step."),
    ),
    # After midnight's postings of yesterday (points released, cards expired), before the ledger check.
    "settlement: clear yesterday": (
        "settlement.clearing_run_yesterday", 2, 10,
        _("Works out what the group's companies owe each other for yesterday's card, points, coupon and voucher "
          "movements, unless yesterday's settlement period is closed."),
    ),
    "reports: prune old report files": (
        "reports.runs_prune", 3, 20,
        _("Removes report workbooks older than REPORTS_RETENTION_DAYS from the archive; the runs stay listed."),
    ),
    "core: purge idempotency keys": (
        "core.idempotency_records_purge", 3, 0,
        _("Forgets POS idempotency keys older than IDEMPOTENCY_KEY_TTL_DAYS, and expired rate counters."),
    ),
    # After the night's postings and the merge detection, before the stores open.
    "core: check ledgers": (
        "core.check_ledgers", 4, 30,
        _("Proves every balance equals the sum of its ledger; the run fails when one does not."),
    ),
    # Every minute: a retry that fell due, or a hand-over lost with a worker, waits at most a minute.
    "integrations: send due webhooks": (
        "integrations.deliveries_sweep", "*", "*",
        _("Hands every webhook subscription with a delivery due (a retry, or an event not yet sent) to the "
          "sender."),
    ),
    "integrations: prune webhook events": (
        "integrations.events_prune", 3, 40,
        _("Removes webhook events older than WEBHOOK_RETENTION_DAYS once none of their deliveries is pending, "
          "with their tries."),
    ),
}

# What staff read for each job: the names above stay as they are (stored in django-celery-beat, used by run_job).
JOB_LABELS = {
    "membership: release pending points": _("Release pending points"),
    "membership: expire points": _("Expire points"),
    "membership: evaluate tiers": _("Evaluate member tiers"),
    "membership: detect merge candidates": _("Detect merge candidates"),
    "cards: expire bearer cards": _("Expire bearer cards"),
    "cards: expire pickup vouchers": _("Expire pickup vouchers"),
    "campaigns: expire coupons": _("Expire coupons"),
    "campaigns: switch targeted campaigns": _("Switch targeted campaigns"),
    "settlement: clear yesterday": _("Clear yesterday between companies"),
    "reports: prune old report files": _("Prune old report files"),
    "core: purge idempotency keys": _("Purge POS idempotency keys"),
    "core: check ledgers": _("Check ledgers"),
    "integrations: send due webhooks": _("Send due webhooks"),
    "integrations: prune webhook events": _("Prune old webhook events"),
}


def job_label(name: str) -> str:
    """A scheduled job's name as staff read it: the translated label of a nightly job, else its stored name."""
    label = JOB_LABELS.get(name)
    return str(label) if label is not None else name


def ensure_schedules(apps=global_apps) -> list[str]:
    """Create the nightly schedules that are missing; return the names created.

    Safe to run again: a schedule that exists is left as staff edited it.
    """
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    created = []
    for name, (task, hour, minute, description) in NIGHTLY.items():
        if PeriodicTask.objects.filter(name=name).exists():
            continue
        crontab, _created = CrontabSchedule.objects.get_or_create(
            minute=str(minute), hour=str(hour), day_of_week="*", day_of_month="*", month_of_year="*",
            timezone=ZoneInfo(SCHEDULE_TIME_ZONE),
        )
        with translation.override(settings.LANGUAGE_CODE):  # stored text staff read: in the site's language
            description = str(description)
        PeriodicTask.objects.create(name=name, task=task, crontab=crontab, description=description)
        created.append(name)
    return created
