"""The members report: members at the end, new, consuming, conversion, member share of sales, repurchase and
digitisation, for headquarters and for a store, by store, format and registration channel."""

from datetime import datetime, time, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from core.dates import month_last_full
from core.numbers import money_total
from membership.models import Member
from membership.services import member_status_set, purchase_record, purchase_return
from reports.frame import ReportParams
from reports.queries import members as report
from tests.factories import FormatFactory, MemberFactory, StoreFactory

_receipts = iter(range(1, 10_000))


def at(day, hour: int = 12) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(hour)))


def registered(member: Member, moment: datetime) -> Member:
    """The member as if registered at `moment` (member_register stamps now)."""
    Member.objects.filter(pk=member.pk).update(registered_at=moment)
    member.refresh_from_db()
    return member


def buy(store, member, amount: str, moment: datetime):
    return purchase_record(store=store, member=member, receipt_no=f"R{next(_receipts)}", amount=Decimal(amount),
                           occurred_at=moment)


def figures(built) -> dict:
    return {figure.key: figure.value for figure in built.figures}


@pytest.fixture
def period():
    start, end = month_last_full(timezone.localdate())
    return start, end


@pytest.fixture
def shop(db, period):
    """Two formats: A with stores a1 and a2, B with b1; members and receipts of the last full month around them.

    m1 (a1, long ago, phone) bought at a1 100 + 80 (30 returned) and at b1 50; m2 (a1, new, no phone) bought
    at a2 200; m3 (b1, new, app, no phone) bought nothing; m4 (a1) is closed; m5 (b1, phone) bought 40 at b1,
    all returned; m6 (b1, phone) bought at a1 six months before the end; a customer without membership bought
    300 at a1.
    """
    start, end = period
    format_a, format_b = FormatFactory(name="百货A"), FormatFactory(name="超市B")
    a1, a2 = StoreFactory(code="RA1", format=format_a), StoreFactory(code="RA2", format=format_a)
    b1 = StoreFactory(code="RB1", format=format_b)
    long_ago = at(start - timedelta(days=700))
    in_period = at(start + timedelta(days=2))
    m1 = registered(MemberFactory(store=a1), long_ago)
    m2 = registered(MemberFactory(store=a1, with_resident_id=True), in_period)
    m3 = registered(MemberFactory(store=b1, with_resident_id=True, channel=Member.Channel.APP), in_period)
    m4 = registered(MemberFactory(store=a1), long_ago)
    member_status_set(member=m4, status=Member.Status.CLOSED, actor=None, reason="left")
    m5 = registered(MemberFactory(store=b1), long_ago)
    m6 = registered(MemberFactory(store=b1), long_ago)
    day = at(start + timedelta(days=5))
    buy(a1, m1, "100.00", day)
    returned = buy(a1, m1, "80.00", day)
    purchase_return(store=a1, original_receipt_no=returned.receipt_no, receipt_no="RET1", amount=Decimal("30.00"))
    buy(b1, m1, "50.00", day)
    buy(a2, m2, "200.00", day)
    wholly = buy(b1, m5, "40.00", day)
    purchase_return(store=b1, original_receipt_no=wholly.receipt_no, receipt_no="RET2", amount=Decimal("40.00"))
    buy(a1, m6, "10.00", at(end - timedelta(days=180)))
    buy(a1, None, "300.00", day)
    return {"a1": a1, "a2": a2, "b1": b1, "m": [m1, m2, m3, m4, m5, m6], "start": start, "end": end}


def test_headquarters_figures_count_every_store(shop):
    built = report.build(ReportParams(start=shop["start"], end=shop["end"]))
    values = figures(built)
    assert values["members_total"] == 5  # the closed member is not counted
    assert values["members_new"] == 2
    assert values["new_members_converted"] == 1
    assert values["new_member_conversion"] == Decimal("0.5000")
    assert values["members_consuming"] == 2  # m5's receipt was wholly returned
    assert values["sales_total"] == Decimal("700.00")
    assert values["member_sales"] == Decimal("400.00")
    assert values["non_member_sales"] == Decimal("300.00")
    assert values["member_sales_share"] == Decimal("0.5714")
    assert values["members_digital"] == 4  # m2 has no phone and was registered at the desk
    assert values["digitisation_rate"] == Decimal("0.8000")


def test_a_store_counts_its_registered_members_and_its_recent_buyers_only(shop):
    built = report.build(ReportParams(start=shop["start"], end=shop["end"], store_ids=(shop["a1"].pk,)))
    values = figures(built)
    assert values["members_total"] == 3  # m1, m2 registered there, m6 bought there within 12 months
    assert values["members_new"] == 1
    assert values["new_member_conversion"] == Decimal("1.0000")  # m2's first purchase was at another store
    assert values["members_consuming"] == 1
    assert values["sales_total"] == Decimal("450.00")
    assert values["member_sales"] == Decimal("150.00")
    assert values["member_sales_share"] == Decimal("0.3333")
    by_store = {row[0]: row for row in next(t for t in built.tables if t.key == "by_store").rows}
    assert list(by_store) == ["RA1"]
    assert by_store["RA1"][3:] == (3, 1, 1, Decimal("150.00"), Decimal("450.00"), Decimal("0.3333"))


def test_per_store_and_per_format_rows(shop):
    built = report.build(ReportParams(start=shop["start"], end=shop["end"]))
    by_store = {row[0]: row for row in next(t for t in built.tables if t.key == "by_store").rows}
    assert by_store["RA1"][3:6] == (3, 1, 1)
    assert by_store["RA2"][3:] == (1, 0, 1, Decimal("200.00"), Decimal("200.00"), Decimal("1.0000"))
    assert by_store["RB1"][3:] == (4, 1, 1, Decimal("50.00"), Decimal("50.00"), Decimal("1.0000"))
    by_format = {row[0]: row for row in next(t for t in built.tables if t.key == "by_format").rows}
    assert by_format["百货A"][1:] == (3, 1, 2, Decimal("350.00"), Decimal("650.00"), Decimal("0.5385"))
    assert by_format["超市B"][1:] == (4, 1, 1, Decimal("50.00"), Decimal("50.00"), Decimal("1.0000"))
    chart = next(c for c in built.charts if c.key == "member_share_by_format")
    shares = dict(zip(chart.categories, chart.series[0].values, strict=True))
    assert shares["百货A"] == Decimal("0.5385")
    assert [row[0] for row in built.detail.rows] == [row[0] for row in next(
        t for t in built.tables if t.key == "by_store").rows]


def test_per_channel_rows(shop):
    built = report.build(ReportParams(start=shop["start"], end=shop["end"]))
    labels = dict(Member.Channel.choices)
    by_channel = {row[0]: row for row in next(t for t in built.tables if t.key == "by_channel").rows}
    desk = by_channel[str(labels[Member.Channel.DESK])]
    app = by_channel[str(labels[Member.Channel.APP])]
    assert desk[1:] == (4, 3, Decimal("0.7500"), 1, 2, Decimal("400.00"))
    assert app[1:] == (1, 1, Decimal("1.0000"), 1, 0, Decimal("0.00"))


def test_new_members_by_month_covers_thirteen_months_up_to_the_end(shop):
    built = report.build(ReportParams(start=shop["start"], end=shop["end"]))
    chart = next(c for c in built.charts if c.key == "members_new_by_month")
    assert len(chart.categories) == 13
    assert chart.categories[-1] == f"{shop['end']:%Y-%m}"
    assert chart.series[0].values[-1] == 2
    assert sum(chart.series[0].values) == 2


def test_the_same_parameters_give_the_same_numbers_after_later_activity(shop):
    params = ReportParams(start=shop["start"], end=shop["end"])
    before = figures(report.build(params))
    late = MemberFactory(store=shop["a1"])  # registered now, after the period
    buy(shop["a1"], late, "999.00", timezone.now())
    assert figures(report.build(params)) == before


def test_first_year_repurchase_counts_a_second_purchase_within_a_year_of_the_first(db, period):
    start, end = period
    store = StoreFactory()
    end_moment = at(end + timedelta(days=1), 0)
    first = end_moment - timedelta(days=540)  # in the 12 months ending a year before the end
    again, once, same_day, late = (registered(MemberFactory(store=store), first - timedelta(days=30))
                                   for _n in range(4))
    buy(store, again, "10.00", first)
    buy(store, again, "10.00", first + timedelta(days=60))
    buy(store, once, "10.00", first)
    buy(store, same_day, "10.00", first)
    buy(store, same_day, "10.00", first + timedelta(hours=3))
    buy(store, late, "10.00", first)
    buy(store, late, "10.00", first + timedelta(days=400))
    recent = registered(MemberFactory(store=store), first)
    buy(store, recent, "10.00", end_moment - timedelta(days=100))
    values = figures(report.build(ReportParams(start=start, end=end)))
    assert values["first_year_cohort"] == 4
    assert values["first_year_repurchased"] == 1
    assert values["first_year_repurchase"] == Decimal("0.2500")


def test_first_year_repurchase_of_a_store_counts_its_own_receipts(db, period):
    start, end = period
    here, there = StoreFactory(), StoreFactory()
    first = at(end + timedelta(days=1), 0) - timedelta(days=540)
    member = registered(MemberFactory(store=here), first - timedelta(days=30))
    buy(here, member, "10.00", first)
    buy(there, member, "10.00", first + timedelta(days=30))
    values = figures(report.build(ReportParams(start=start, end=end, store_ids=(here.pk,))))
    assert (values["first_year_cohort"], values["first_year_repurchased"]) == (1, 0)
    values = figures(report.build(ReportParams(start=start, end=end)))
    assert (values["first_year_cohort"], values["first_year_repurchased"]) == (1, 1)


def test_without_data_the_figures_are_zero_or_none_and_a_note_says_so(db, period):
    start, end = period
    built = report.build(ReportParams(start=start, end=end))
    values = figures(built)
    assert values["members_total"] == 0
    assert values["sales_total"] == Decimal("0.00")
    assert values["member_sales_share"] is None
    assert values["digitisation_rate"] is None
    assert values["new_member_conversion"] is None
    assert built.notes


def test_a_store_without_members_reports_zero_not_another_stores_numbers(shop):
    empty = StoreFactory()
    values = figures(report.build(ReportParams(start=shop["start"], end=shop["end"], store_ids=(empty.pk,))))
    assert values["members_total"] == 0
    assert values["sales_total"] == Decimal("0.00")
    assert values["members_consuming"] == 0


def _sums_shown(sums: dict) -> dict:
    """period_sums as the report shows it: a count, money, for every key (a missing count or sum is 0)."""
    return {
        name: {key: (row.get("n") or 0, money_total(row.get("member")),
                     money_total(row.get("total")) if name != "channel" else None)
               for key, row in ({None: sums[name]} if name == "all" else sums[name]).items()}
        for name in ("all", "store", "format", "channel")
    }


@pytest.mark.parametrize("scope", ["headquarters", "store", "no store"])
def test_the_period_sums_of_one_statement_equal_those_of_a_group_by_each(shop, scope):
    """On PostgreSQL period_sums is one GROUPING SETS statement: it must give what the GROUP BYs give."""
    store_ids = {"headquarters": None, "store": (shop["a1"].pk, shop["b1"].pk), "no store": ()}[scope]
    params = ReportParams(start=shop["start"], end=shop["end"], store_ids=store_ids)
    assert _sums_shown(report.period_sums(params)) == _sums_shown(report._period_sums_each(params))
    if scope == "store":
        shown = _sums_shown(report.period_sums(params))
        # a1: m1 100 + 50 (80 less 30 returned), a customer 300; b1: m1 50, m5 40 wholly returned (not consuming)
        assert shown["all"][None] == (1, Decimal("200.00"), Decimal("500.00"))
        assert shown["store"][shop["b1"].pk] == (1, Decimal("50.00"), Decimal("50.00"))
        assert shown["store"][shop["a1"].pk] == (1, Decimal("150.00"), Decimal("450.00"))
