"""Points expiry: points earned in year N expire at the end of year N + PointsPolicy.expiry_years.

The nightly run on or after 1 January of year N + expiry_years + 1 takes them
with one `expire` entry per member. Which points are old follows FIFO: a
member spends their oldest points first, so what is left of the balance is
made of the most recent credits, and only the part of the balance that recent
credits cannot account for has expired.
"""

from datetime import date, datetime

from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.models import Max, Min, QuerySet
from django.utils import timezone
from django.utils.translation import gettext

from membership.models import Member, PointsEntry, PointsPolicy
from membership.services.ledger import PointsExpiryRun

__all__ = ["points_credited_since", "points_expire", "points_expiry_cutoff"]


def points_expiry_cutoff(*, run_on: date, expiry_years: int) -> datetime:
    """The start (local midnight, 1 January) of the oldest year whose points are still valid on `run_on`.

    With the default of one year, the run on 1 January 2026 keeps what was
    credited from 1 January 2025 on and takes what is older.
    """
    year = max(1, run_on.year - expiry_years)
    return timezone.make_aware(datetime(year, 1, 1), timezone.get_default_timezone())


def points_credited_since(cutoff: datetime) -> QuerySet:
    """The ledger entries that count as credits still valid after `cutoff`: every positive entry since then.

    Every kind that brings points counts from the day it was booked: earn
    (a purchase, or pending points released after the return window),
    migration (an opening balance starts its validity at the import), adjust
    (an approved correction), merge_in (points moved by a merge start again
    rather than being lost to the bookkeeping of the merge) and a positive
    reversal (points given back). Negative entries, including returns that
    take points back, are spending and come out of the oldest points first.
    Counting this way never takes a point that is still valid: it is the
    smallest expired remainder any order of spending could leave, so where
    the ledger cannot tell (a return of a recent purchase), the member keeps
    the benefit of the doubt.
    """
    return PointsEntry.objects.filter(points__gt=0, created_at__gte=cutoff)


def points_expire(*, today: date | None = None, batch: int = 5000) -> int:
    """Take points past their expiry off every member's balance; return the number of expire entries written.

    Members are handled in primary-key ranges of `batch`, each range in its
    own transaction: one statement computes what expires for the whole range;
    when something does, those members are locked (in primary-key order), the
    same statement reads it again under the locks, one statement appends the
    `expire` entries and one conditional UPDATE lowers the balances (those
    statements are ledger.PointsExpiryRun's).

    A member's expired points are `max(0, points - credits)` where credits is
    the sum of `points_credited_since(cutoff)`; afterwards the
    balance equals those credits, so running again the same day (or any day
    until the next year's cutoff) takes nothing more. Nothing expires while
    PointsPolicy.expiry_enabled is off.

    Expired points are not attributed to a legal entity: under FIFO they are
    the remainder of several issuers' credits, and settlement follows the
    issuing entries. Raise ValueError (batch below 1), RuntimeError (a balance
    moved under its lock: that range writes nothing).
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    if connection.vendor != "postgresql":
        # Three parameters per member in a VALUES list: stay well under SQLite's 32,766.
        batch = min(batch, 5000)
    policy = PointsPolicy.current()
    if not policy.expiry_enabled:
        return 0
    today = today or timezone.localdate()
    cutoff = points_expiry_cutoff(run_on=today, expiry_years=policy.expiry_years)
    bounds = Member.objects.aggregate(first=Min("pk"), last=Max("pk"))
    if bounds["first"] is None:
        return 0
    expiry = PointsExpiryRun(
        cutoff=cutoff,
        reason=gettext("points earned before %(year)s expired") % {"year": cutoff.year},
        policy_type_id=ContentType.objects.get_for_model(PointsPolicy).pk,
        policy_id=str(policy.pk),
    )
    written = 0
    for low in range(bounds["first"], bounds["last"] + 1, batch):
        written += expiry.run_range(low, low + batch)
    return written
