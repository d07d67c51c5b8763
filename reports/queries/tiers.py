"""The tiers report (会员等级报表): the tier mix at the period's end, each tier's share of member sales, the gold and
silver share, upgrades and downgrades, and every tier change of the period. Definitions: docs/metrics.md, section
tiers.

A member's earned tier at the period's end is read back from the tier-change history, so a report of a past period
does not move when the nightly evaluation changes tiers later: it is the `from_tier` of the member's first
earned-tier change after the end, or the member's tier today when there is none. The members with a change after
the end are few (only the last nights' decisions), so the tiers are counted by one GROUP BY on today's tier and
corrected by a second GROUP BY over those few members. A paid tier (Plus) held at the end is a paid term
(TierSubscription) running on the period's last day.
"""

from collections import Counter

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from core.numbers import money_total
from membership.models import Tier, TierChange, TierSubscription
from reports.frame import NO_DATA, Chart, Column, Figure, Report, ReportParams, Series, Table, register, share
from reports.queries.members import (
    ZERO,
    net_sum,
    period_end,
    period_purchases,
    scope_members,
)

CHUNK = 5000
# The tiers counted together as "gold and silver" (金银卡占比), by code.
GOLD_SILVER_CODES = ("GOLD", "SILVER")


def _earned_changes_after(params: ReportParams) -> QuerySet:
    return TierChange.objects.filter(created_at__gte=period_end(params), from_tier__kind=Tier.Kind.EARNED)


def _tier_at_end(params: ReportParams, member_path: str) -> Subquery:
    """The from_tier of the first earned-tier change after the end of the member at `member_path`."""
    return Subquery(
        _earned_changes_after(params).filter(member_id=OuterRef(member_path))
        .order_by("created_at", "pk").values("from_tier_id")[:1]
    )


def by_tier_at_end(params: ReportParams, queryset: QuerySet, member_path: str, **aggregates) -> dict:
    """{earned tier id at the end: {aggregate: value}} for rows of `queryset` grouped by their member's tier at the
    end; `member_path` is the lookup from a row to its member ("" for members). Aggregates must add up (COUNT of
    rows, SUM)."""
    prefix = f"{member_path}__" if member_path else ""
    member_id = f"{member_path}_id" if member_path else "pk"
    totals: dict = {}
    now_rows = queryset.order_by().values(f"{prefix}tier_id").annotate(**aggregates)
    for row in now_rows:
        tier_id = row.pop(f"{prefix}tier_id")
        totals[tier_id] = Counter(row)
    changed = queryset.filter(**{f"{member_id}__in": _earned_changes_after(params).values("member_id")})
    corrections = (changed.order_by().annotate(tier_at_end=_tier_at_end(params, member_id))
                   .values(f"{prefix}tier_id", "tier_at_end").annotate(**aggregates))
    for row in corrections:
        today, then = row.pop(f"{prefix}tier_id"), row.pop("tier_at_end")
        if today == then:
            continue
        totals.setdefault(today, Counter()).subtract(Counter(row))
        totals.setdefault(then, Counter()).update(Counter(row))
    return {tier_id: dict(values) for tier_id, values in totals.items()}


def tier_mix(params: ReportParams) -> dict:
    """{earned tier id: members at the end} of the members in scope."""
    rows = by_tier_at_end(params, scope_members(params), "", n=Count("pk"))
    return {tier_id: row.get("n", 0) for tier_id, row in rows.items()}


def paid_mix(params: ReportParams) -> dict:
    """{paid tier id: members holding a term of it on the period's last day} of the members in scope."""
    running = TierSubscription.objects.filter(starts_on__lte=params.end, ends_on__gte=params.end,
                                              member_id__in=scope_members(params).values("pk"))
    return dict(running.order_by().values("tier_id").annotate(n=Count("member_id", distinct=True))
                .values_list("tier_id", "n"))


def tier_sales(params: ReportParams) -> dict:
    """{earned tier id at the end: net member sales of the period} at the stores asked."""
    purchases = period_purchases(params).filter(member__isnull=False)
    rows = by_tier_at_end(params, purchases, "member", total=net_sum())
    return {tier_id: money_total(row.get("total")) for tier_id, row in rows.items()}


def paid_tier_sales(params: ReportParams, paid_tiers) -> dict:
    """{paid tier id: net member sales of the period of the members holding it on the period's last day}: one
    aggregate per paid tier (there are a handful)."""
    result = {}
    for tier in paid_tiers:
        holders = TierSubscription.objects.filter(tier=tier, starts_on__lte=params.end, ends_on__gte=params.end)
        row = period_purchases(params).filter(member_id__in=holders.values("member_id")).aggregate(total=net_sum())
        result[tier.pk] = money_total(row["total"])
    return result


def tier_changes(params: ReportParams) -> QuerySet:
    """The tier changes of the period of the members in scope."""
    start, end = params.moments()
    changes = TierChange.objects.filter(created_at__gte=start, created_at__lt=end)
    if params.store_ids is not None:
        changes = changes.filter(member_id__in=scope_members(params).values("pk"))
    return changes


def change_counts(params: ReportParams) -> dict:
    row = tier_changes(params).aggregate(
        upgrades=Count("pk", filter=Q(reason=TierChange.Reason.UPGRADE)),
        downgrades=Count("pk", filter=Q(reason=TierChange.Reason.DOWNGRADE)),
        paid=Count("pk", filter=Q(reason__in=(TierChange.Reason.PAID, TierChange.Reason.RENEWAL))),
        total=Count("pk"),
    )
    return {key: value or 0 for key, value in row.items()}


def change_rows(params: ReportParams):
    """The period's tier changes, oldest first, streamed: date, member number, from, to, reason."""
    reasons = dict(TierChange.Reason.choices)
    rows = (tier_changes(params).order_by("created_at", "pk")
            .values_list("created_at", "member__member_no", "from_tier__name", "to_tier__name", "reason")
            .iterator(chunk_size=CHUNK))
    for created_at, member_no, from_name, to_name, reason in rows:
        yield (timezone.localtime(created_at).date(), member_no, from_name or "", to_name or "",
               str(reasons.get(reason, reason)))


@register("tiers", _("Tiers"), _(
    "The tier mix at the period's end, each tier's share of member sales, the gold and silver share, upgrades, "
    "downgrades and every tier change of the period."))
def build(params: ReportParams) -> Report:
    tiers = list(Tier.objects.order_by("kind", "rank", "code"))
    earned = [tier for tier in tiers if tier.kind == Tier.Kind.EARNED]
    paid = [tier for tier in tiers if tier.kind == Tier.Kind.PAID]
    mix = tier_mix(params)
    members = sum(mix.values())
    paid_counts = paid_mix(params)
    sales = tier_sales(params)
    member_sales = sum(sales.values(), ZERO)
    paid_sales = paid_tier_sales(params, paid)
    gold_silver = [tier.pk for tier in earned if tier.code in GOLD_SILVER_CODES]
    gold_silver_members = sum(mix.get(pk, 0) for pk in gold_silver)
    gold_silver_sales = sum((sales.get(pk, ZERO) for pk in gold_silver), ZERO)
    changes = change_counts(params)
    figures = [
        Figure("members_total", gettext("Members"), members, "count"),
        Figure("gold_silver_members", gettext("Gold and silver members"), gold_silver_members, "count"),
        Figure("gold_silver_share", gettext("Gold and silver share of members"), share(gold_silver_members, members),
               "percent"),
        Figure("member_sales", gettext("Member sales"), member_sales, "money"),
        Figure("gold_silver_sales", gettext("Gold and silver members' sales"), gold_silver_sales, "money"),
        Figure("gold_silver_sales_share", gettext("Gold and silver share of member sales"),
               share(gold_silver_sales, member_sales), "percent"),
        Figure("paid_tier_members", gettext("Members with a paid tier"), sum(paid_counts.values()), "count"),
        Figure("upgrades", gettext("Upgrades"), changes["upgrades"], "count"),
        Figure("downgrades", gettext("Downgrades"), changes["downgrades"], "count"),
        Figure("paid_tier_terms", gettext("Paid tier terms bought or renewed"), changes["paid"], "count"),
    ]
    kinds = dict(Tier.Kind.choices)
    # A member whose tier is not an earned one today (data from before the tiers were split) is shown as it is.
    known = {tier.pk for tier in earned}
    others = [tier for tier in tiers if tier.pk in mix and tier.pk not in known]
    mix_rows = [(tier.name, str(kinds[tier.kind]), mix.get(tier.pk, 0), share(mix.get(tier.pk, 0), members))
                for tier in [*earned, *others]]
    mix_rows += [(tier.name, str(kinds[tier.kind]), paid_counts.get(tier.pk, 0),
                  share(paid_counts.get(tier.pk, 0), members)) for tier in paid]
    sales_rows = [(tier.name, str(kinds[tier.kind]), sales.get(tier.pk, ZERO), share(sales.get(tier.pk, ZERO),
                                                                                      member_sales))
                  for tier in [*earned, *others]]
    sales_rows += [(tier.name, str(kinds[tier.kind]), paid_sales[tier.pk], share(paid_sales[tier.pk], member_sales))
                   for tier in paid]
    tier_column = Column("tier", gettext("Tier"), "text")
    kind_column = Column("kind", gettext("Kind"), "text")
    tables = [
        Table("tier_mix", gettext("Tier mix at the period's end"), [
            tier_column, kind_column, Column("members", gettext("Members"), "count"),
            Column("share", gettext("Share of members"), "percent"),
        ], mix_rows),
        Table("tier_sales_share", gettext("Member sales by tier"), [
            tier_column, kind_column, Column("member_sales", gettext("Member sales"), "money"),
            Column("share", gettext("Share of member sales"), "percent"),
        ], sales_rows),
    ]
    shown = [*earned, *others]
    charts = [
        Chart("tier_mix", gettext("Tier mix"), "pie", [tier.name for tier in shown],
              [Series(gettext("Members"), [mix.get(tier.pk, 0) for tier in shown])], "count"),
        Chart("tier_sales_share", gettext("Member sales by tier"), "pie", [tier.name for tier in shown],
              [Series(gettext("Member sales"), [sales.get(tier.pk, ZERO) for tier in shown])], "money"),
    ]
    notes = []
    if not members and not member_sales and not changes["total"]:
        notes.append(str(NO_DATA))
    detail = Table("detail", gettext("Tier changes"), [
        Column("date", gettext("Date"), "date"),
        Column("member_no", gettext("Member number"), "text"),
        Column("from_tier", gettext("From tier"), "text"),
        Column("to_tier", gettext("To tier"), "text"),
        Column("reason", gettext("Reason"), "text"),
    ], change_rows(params))
    return Report(kind="tiers", title=gettext("Tiers report"), params=params, figures=figures, tables=tables,
                  charts=charts, detail=detail, notes=notes)

