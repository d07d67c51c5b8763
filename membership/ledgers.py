"""The member points ledger check for `manage.py check_ledgers` (registered in core.ledgers)."""

from collections.abc import Iterator

from django.db.models import Max, Sum
from django.utils.translation import gettext_lazy as _

from core import ledgers
from core.ledgers import LedgerBatch, LedgerDifference
from membership.models import Member, PointsEntry


def member_points_check(batch_size: int) -> Iterator[LedgerBatch]:
    """Member.points against its ledger: the sum of the entries, and the balance after the last one.

    One difference per account at most: a wrong sum is reported before a wrong balance-after.

    Members are read in primary-key ranges; each range costs two aggregate
    queries over the ledger (GROUP BY member), whatever the number of entries.
    """
    last_pk = 0
    while True:
        members = list(
            Member.objects.filter(pk__gt=last_pk).order_by("pk").values_list("pk", "member_no", "points")[:batch_size]
        )
        if not members:
            return
        first_pk, last_pk = members[0][0], members[-1][0]
        entries = PointsEntry.objects.filter(member_id__gte=first_pk, member_id__lte=last_pk).order_by()
        sums = dict(entries.values("member_id").annotate(total=Sum("points")).values_list("member_id", "total"))
        # The most recently appended entry: ids are drawn after the member row is locked, so they follow its order.
        last_entries = entries.values("member_id").annotate(last=Max("pk")).values("last")
        balances_after = dict(
            PointsEntry.objects.filter(pk__in=last_entries).order_by().values_list("member_id", "balance_after")
        )
        differences = []
        for pk, member_no, points in members:
            account = f"member {member_no} (id {pk})"
            total = sums.get(pk, 0)
            if total != points:
                differences.append(LedgerDifference(account=account, balance=points, ledger=total))
            elif pk in balances_after and balances_after[pk] != points:
                differences.append(LedgerDifference(
                    account=account, balance=points, ledger=balances_after[pk],
                    rule="balance equals the balance after the last ledger entry",
                ))
        yield LedgerBatch(checked=len(members), differences=differences)


ledgers.register("membership.points", label=_("member points"), run=member_points_check)
