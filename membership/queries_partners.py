"""What partner channels (联名会员渠道) brought: members registered through each partner, those who converted (made
at least one purchase after registering) and their net sales, overall and per month.

Every figure is an SQL aggregate; no member or purchase is read into Python. Merged-away members do not count
(their purchases moved to the member they were merged into, who keeps their own partner).
"""

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, DateTimeField, DecimalField, F, IntegerField, Min, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce, TruncMonth
from django.utils import timezone

from membership.models import Member, Partner, Purchase

ZERO = Decimal("0.00")


def _net_sum():
    return Sum(F("amount") - F("returned_amount"), output_field=DecimalField(max_digits=14, decimal_places=2))


def _partner_members(partner_ref):
    return Member.objects.filter(partner=partner_ref).exclude(status=Member.Status.MERGED)


def _purchases_after_registering(partner_ref):
    """Purchases of the partner's members made at or after their registration."""
    return Purchase.objects.filter(
        member__partner=partner_ref, occurred_at__gte=F("member__registered_at"),
    ).exclude(member__status=Member.Status.MERGED)


def partners_with_figures(queryset=None):
    """Partners annotated with `members_count`, `converted_count` and `sales` (net, Decimal): one query, one
    aggregate subquery per figure, so a list can sort by them."""
    queryset = Partner.objects.all() if queryset is None else queryset
    members = (_partner_members(OuterRef("pk")).order_by().values("partner")
               .annotate(n=Count("pk")).values("n"))
    after = _purchases_after_registering(OuterRef("pk")).order_by().values("member__partner")
    converted = after.annotate(n=Count("member", distinct=True)).values("n")
    sales = after.annotate(total=_net_sum()).values("total")
    return queryset.annotate(
        members_count=Coalesce(Subquery(members, output_field=IntegerField()), Value(0)),
        converted_count=Coalesce(Subquery(converted, output_field=IntegerField()), Value(0)),
        sales=Coalesce(Subquery(sales), Value(ZERO), output_field=DecimalField(max_digits=14, decimal_places=2)),
    )


@dataclass(frozen=True)
class PartnerMonth:
    month: object  # the first day of the month (a date)
    registered: int  # members who registered through the partner that month
    converted: int  # of the partner's members, those whose first purchase after registering fell that month
    buyers: int  # the partner's members who bought that month
    sales: Decimal  # their net sales that month


def partner_months(*, partner: Partner) -> list[PartnerMonth]:
    """The partner's figures per month (local months), oldest first; months with nothing are left out."""
    tz = timezone.get_current_timezone()
    registered = dict(
        _partner_members(partner).order_by()
        .annotate(month=TruncMonth("registered_at", tzinfo=tz)).values("month")
        .annotate(n=Count("pk")).values_list("month", "n")
    )
    first_purchase = (
        Purchase.objects.filter(member=OuterRef("pk"), occurred_at__gte=OuterRef("registered_at"))
        .order_by().values("member").annotate(first=Min("occurred_at")).values("first")
    )
    converted = dict(
        _partner_members(partner).order_by()
        .annotate(first=Subquery(first_purchase, output_field=DateTimeField()))
        .filter(first__isnull=False)
        .annotate(month=TruncMonth("first", tzinfo=tz)).values("month")
        .annotate(n=Count("pk")).values_list("month", "n")
    )
    bought = {
        row["month"]: row
        for row in _purchases_after_registering(partner).order_by()
        .annotate(month=TruncMonth("occurred_at", tzinfo=tz)).values("month")
        .annotate(buyers=Count("member", distinct=True), sales=_net_sum())
    }
    months = {_day(month) for month in (*registered, *converted, *bought)}
    by_day = {
        "registered": {_day(month): n for month, n in registered.items()},
        "converted": {_day(month): n for month, n in converted.items()},
        "bought": {_day(month): row for month, row in bought.items()},
    }
    rows = []
    for month in sorted(months):
        row = by_day["bought"].get(month)
        rows.append(PartnerMonth(
            month=month,
            registered=by_day["registered"].get(month, 0),
            converted=by_day["converted"].get(month, 0),
            buyers=row["buyers"] if row else 0,
            sales=(row["sales"] or ZERO) if row else ZERO,
        ))
    return rows


def _day(month):
    """TruncMonth gives an aware datetime on PostgreSQL and SQLite alike: the month's first local day."""
    if hasattr(month, "date"):
        return timezone.localtime(month).date() if timezone.is_aware(month) else month.date()
    return month


def partner_figures(*, partner: Partner) -> dict:
    """members, converted, sales (net) and conversion (a share, or None without members) of one partner."""
    row = partners_with_figures(Partner.objects.filter(pk=partner.pk)).values(
        "members_count", "converted_count", "sales").get()
    members, converted = row["members_count"], row["converted_count"]
    return {
        "members": members,
        "converted": converted,
        "sales": row["sales"] or ZERO,
        "conversion": (converted / members) if members else None,
    }

