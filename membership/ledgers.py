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


from membership.models import GiftStock, GiftStockMovement  # noqa: E402


def gift_stock_check(batch_size: int) -> Iterator[LedgerBatch]:
    """GiftStock.quantity against its movements: their sum, and the stock after the last one.

    Stock rows are read in primary-key ranges, two aggregate queries per range.
    """
    last_pk = 0
    while True:
        stocks = list(
            GiftStock.objects.filter(pk__gt=last_pk).order_by("pk")
            .values_list("pk", "gift__code", "store__code", "quantity")[:batch_size]
        )
        if not stocks:
            return
        first_pk, last_pk = stocks[0][0], stocks[-1][0]
        movements = GiftStockMovement.objects.filter(stock_id__gte=first_pk, stock_id__lte=last_pk).order_by()
        sums = dict(movements.values("stock_id").annotate(total=Sum("quantity")).values_list("stock_id", "total"))
        last_movements = movements.values("stock_id").annotate(last=Max("pk")).values("last")
        after = dict(
            GiftStockMovement.objects.filter(pk__in=last_movements).order_by().values_list("stock_id", "quantity_after")
        )
        differences = []
        for pk, gift_code, store_code, quantity in stocks:
            account = f"gift {gift_code} at {store_code} (stock id {pk})"
            total = sums.get(pk, 0)
            if total != quantity:
                differences.append(LedgerDifference(account=account, balance=quantity, ledger=total))
            elif pk in after and after[pk] != quantity:
                differences.append(LedgerDifference(
                    account=account, balance=quantity, ledger=after[pk],
                    rule="stock equals the stock after the last movement",
                ))
        yield LedgerBatch(checked=len(stocks), differences=differences)


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
            account = f"points owed by member {member_no} (id {member_id})"
            if total != debt:
                differences.append(LedgerDifference(account=account, balance=debt, ledger=total))
            elif debts_after[member_id] != debt:
                differences.append(LedgerDifference(
                    account=account, balance=debt, ledger=debts_after[member_id],
                    rule="debt equals the debt after the last ledger entry",
                ))
        yield LedgerBatch(checked=len(rows), differences=differences)
    without_entries = Member.objects.exclude(points_debt=0).filter(
        ~Exists(PointsDebtEntry.objects.filter(member_id=OuterRef("pk")))
    )
    last_pk = 0
    while True:
        members = list(
            without_entries.filter(pk__gt=last_pk).order_by("pk").values_list("pk", "member_no", "points_debt")
            [:batch_size]
        )
        if not members:
            return
        last_pk = members[-1][0]
        yield LedgerBatch(checked=len(members), differences=[
            LedgerDifference(account=f"points owed by member {member_no} (id {pk})", balance=debt, ledger=0)
            for pk, member_no, debt in members
        ])


ledgers.register("membership.points_debt", label=_("points owed by members"), run=member_points_debt_check)
