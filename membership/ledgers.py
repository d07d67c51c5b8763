"""The member points ledger check for `manage.py check_ledgers` (registered in core.ledgers)."""

from collections.abc import Iterator

from django.db.models import Max, Sum
from django.utils.translation import gettext_lazy as _

from core import ledgers
from core.ledgers import LedgerBatch, LedgerDifference, cached_against_ledger
from core.ledgers import balance_difference as _difference
from core.sql import keyset_chunks
from membership.models import Member, PointsEntry


def member_points_check(batch_size: int) -> Iterator[LedgerBatch]:
    """Member.points against its ledger: the sum of the entries, and the balance after the last one."""
    return cached_against_ledger(
        accounts=Member.objects.values("pk", "member_no", "points"), cached="points",
        account="member {member_no} (id {pk})",
        entries=PointsEntry.objects.all(), account_field="member_id", amount="points", after="balance_after",
        rule="balance equals the balance after the last ledger entry", batch_size=batch_size,
    )


ledgers.register("membership.points", label=_("member points"), run=member_points_check)


from membership.models import GiftStock, GiftStockMovement  # noqa: E402


def gift_stock_check(batch_size: int) -> Iterator[LedgerBatch]:
    """GiftStock.quantity against its movements: their sum, and the stock after the last one."""
    return cached_against_ledger(
        accounts=GiftStock.objects.values("pk", "gift__code", "store__code", "quantity"), cached="quantity",
        account="gift {gift__code} at {store__code} (stock id {pk})",
        entries=GiftStockMovement.objects.all(), account_field="stock_id", amount="quantity", after="quantity_after",
        rule="stock equals the stock after the last movement", batch_size=batch_size,
    )


ledgers.register("membership.gift_stock", label=_("gift stock"), run=gift_stock_check)


from django.db.models import Exists, OuterRef  # noqa: E402

from membership.models import PointsDebtEntry  # noqa: E402


def member_points_debt_check(batch_size: int) -> Iterator[LedgerBatch]:
    """Member.points_debt against the points debt ledger: the sum of the entries and the debt after the last one.

    Only members who ever owed points are accounts here: those with debt entries, read in batches of member
    ids with two aggregate queries each, and any member whose cached debt is not zero without a single entry.
    """
    last_member = 0
    while True:
        rows = list(
            PointsDebtEntry.objects.filter(member_id__gt=last_member).values("member_id")
            .annotate(total=Sum("points"), last=Max("pk")).order_by("member_id")
            .values_list("member_id", "total", "last")[:batch_size]
        )
        if not rows:
            break
        last_member = rows[-1][0]
        members = {
            pk: (member_no, debt) for pk, member_no, debt in
            Member.objects.filter(pk__in=[row[0] for row in rows]).values_list("pk", "member_no", "points_debt")
        }
        debts_after = dict(
            PointsDebtEntry.objects.filter(pk__in=[row[2] for row in rows]).order_by()
            .values_list("member_id", "debt_after")
        )
        differences = []
        for member_id, total, _last in rows:
            member_no, debt = members[member_id]
            difference = _difference(account=f"points owed by member {member_no} (id {member_id})", cached=debt,
                                     total=total, after=debts_after[member_id],
                                     rule="debt equals the debt after the last ledger entry")
            if difference is not None:
                differences.append(difference)
        yield LedgerBatch(checked=len(rows), differences=differences)
    without_entries = Member.objects.exclude(points_debt=0).filter(
        ~Exists(PointsDebtEntry.objects.filter(member_id=OuterRef("pk")))
    )
    for members in keyset_chunks(without_entries, ("pk", "member_no", "points_debt"), size=batch_size):
        yield LedgerBatch(checked=len(members), differences=[
            LedgerDifference(account=f"points owed by member {member_no} (id {pk})", balance=debt, ledger=0)
            for pk, member_no, debt in members
        ])


ledgers.register("membership.points_debt", label=_("points owed by members"), run=member_points_debt_check)
