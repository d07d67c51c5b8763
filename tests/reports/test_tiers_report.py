"""The tiers report: the tier mix at the period's end read back through later tier changes, each tier's share of
member sales, the gold and silver shares, upgrades and downgrades, and the streamed tier changes."""

from datetime import datetime, time, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from core.dates import month_last_full
from membership.models import Member, Tier, TierChange
from membership.services import paid_tier_buy, purchase_record, tiers_evaluate
from reports.frame import ReportParams
from reports.queries import tiers as report
from tests.factories import MemberFactory, StoreFactory

_receipts = iter(range(1, 10_000))


def at(day, hour: int = 12) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(hour)))


def buy(store, member, amount: str, moment: datetime):
    return purchase_record(store=store, member=member, receipt_no=f"T{next(_receipts)}", amount=Decimal(amount),
                           occurred_at=moment)


def figures(built) -> dict:
    return {figure.key: figure.value for figure in built.figures}


def table(built, key: str) -> dict:
    return {row[0]: row for row in next(t for t in built.tables if t.key == key).rows}


def tier_name(code: str) -> str:
    return Tier.objects.get(code=code).name


@pytest.fixture
def tiered(db):
    """Three members of one store who bought 25,000, 6,000 and 100 in the last full month (the second at another
    store); the third holds a paid tier from the month's first day. No tier evaluation has run yet."""
    start, end = month_last_full(timezone.localdate())
    store, other = StoreFactory(), StoreFactory()
    old = at(start - timedelta(days=400))
    gold, silver, normal = (MemberFactory(store=store) for _n in range(3))
    Member.objects.filter(pk__in=[gold.pk, silver.pk, normal.pk]).update(registered_at=old)
    day = at(start + timedelta(days=3))
    buy(store, gold, "25000.00", day)
    buy(other, silver, "6000.00", day)
    buy(store, normal, "100.00", day)
    paid_tier_buy(member=normal, tier=Tier.objects.get(code="PLUS"), today=start)
    return {"start": start, "end": end, "store": store, "other": other, "members": (gold, silver, normal)}


def evaluate_in_the_period(tiered, monkeypatch):
    """The nightly evaluation as it ran on the period's second last day (tier changes are append-only: their time
    is the clock's when they are written)."""
    day = tiered["end"] - timedelta(days=1)
    with monkeypatch.context() as patch:
        patch.setattr(timezone, "now", lambda: at(day, 23))
        tiers_evaluate(today=day)


def test_a_tier_changed_after_the_end_counts_as_it_was_at_the_end(tiered):
    tiers_evaluate()  # today, after the period
    gold, silver, _normal = tiered["members"]
    gold.refresh_from_db()
    assert gold.tier.code == "GOLD"  # today's tier
    built = report.build(ReportParams(start=tiered["start"], end=tiered["end"]))
    values = figures(built)
    assert table(built, "tier_mix")[tier_name("NORMAL")][2] == 3
    assert values["gold_silver_members"] == 0
    assert values["upgrades"] == 0


def test_tier_mix_and_sales_shares_at_the_end(tiered, monkeypatch):
    evaluate_in_the_period(tiered, monkeypatch)
    built = report.build(ReportParams(start=tiered["start"], end=tiered["end"]))
    values = figures(built)
    mix = table(built, "tier_mix")
    assert mix[tier_name("GOLD")][2:] == (1, Decimal("0.3333"))
    assert mix[tier_name("SILVER")][2:] == (1, Decimal("0.3333"))
    assert mix[tier_name("NORMAL")][2:] == (1, Decimal("0.3333"))
    assert mix[tier_name("PLUS")][2:] == (1, Decimal("0.3333"))
    assert values["gold_silver_share"] == Decimal("0.6667")
    assert values["member_sales"] == Decimal("31100.00")
    assert values["gold_silver_sales_share"] == Decimal("0.9968")
    assert values["paid_tier_members"] == 1
    assert values["upgrades"] == 2
    assert values["downgrades"] == 0
    sales = table(built, "tier_sales_share")
    assert sales[tier_name("GOLD")][2:] == (Decimal("25000.00"), Decimal("0.8039"))
    assert sales[tier_name("PLUS")][2] == Decimal("100.00")
    pie = next(chart for chart in built.charts if chart.key == "tier_mix")
    assert dict(zip(pie.categories, pie.series[0].values, strict=True))[tier_name("GOLD")] == 1


def test_a_store_counts_its_members_and_its_sales_only(tiered, monkeypatch):
    evaluate_in_the_period(tiered, monkeypatch)
    params = ReportParams(start=tiered["start"], end=tiered["end"], store_ids=(tiered["other"].pk,))
    values = figures(report.build(params))
    assert values["members_total"] == 1  # the silver member bought there
    assert values["gold_silver_share"] == Decimal("1.0000")
    assert values["member_sales"] == Decimal("6000.00")
    assert values["upgrades"] == 1


def test_the_detail_streams_the_periods_tier_changes(tiered, monkeypatch):
    evaluate_in_the_period(tiered, monkeypatch)
    gold, silver, _normal = tiered["members"]
    built = report.build(ReportParams(start=tiered["start"], end=tiered["end"]))
    rows = list(built.detail.rows)
    assert {row[1] for row in rows} == {gold.member_no, silver.member_no}
    assert {row[3] for row in rows} == {tier_name("GOLD"), tier_name("SILVER")}
    assert all(row[0] == tiered["end"] - timedelta(days=1) for row in rows)
    assert {row[4] for row in rows} == {str(TierChange.Reason.UPGRADE.label)}
    assert all(row[2] == tier_name("NORMAL") for row in rows)


def test_without_members_the_shares_are_none_and_a_note_says_so(db):
    start, end = month_last_full(timezone.localdate())
    built = report.build(ReportParams(start=start, end=end))
    values = figures(built)
    assert values["members_total"] == 0
    assert values["gold_silver_share"] is None
    assert values["gold_silver_sales_share"] is None
    assert built.notes
    assert list(built.detail.rows) == []
