"""The staff report: members each clerk registered in the period and their first purchases by its end."""

from datetime import datetime, time, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from core.dates import month_last_full
from membership.models import Member
from membership.services import purchase_record, purchase_return
from reports.frame import ReportParams
from reports.queries import staff as report
from tests.factories import MemberFactory, StaffFactory, StoreFactory

_receipts = iter(range(1, 10_000))


def at(day, hour: int = 12) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(hour)))


def buy(store, member, amount: str, moment: datetime):
    return purchase_record(store=store, member=member, receipt_no=f"S{next(_receipts)}", amount=Decimal(amount),
                           occurred_at=moment)


def registered(member: Member, moment: datetime) -> Member:
    Member.objects.filter(pk=member.pk).update(registered_at=moment)
    member.refresh_from_db()
    return member


def figures(built) -> dict:
    return {figure.key: figure.value for figure in built.figures}


@pytest.fixture
def clerks(db):
    """Clerk 张三 (s1) registered three members in the last full month: one bought a week later, one bought only
    after the month, one bought and returned everything; 李四 (s2) registered one who bought at s1; a member
    registered in the app at s1 and one 张三 registered the month before do not count as the month's staff
    registrations."""
    start, end = month_last_full(timezone.localdate())
    s1, s2 = StoreFactory(code="SS1", name="一店"), StoreFactory(code="SS2", name="二店")
    zhang = StaffFactory(username="zhang", stores=[s1])
    User.objects.filter(pk=zhang.pk).update(last_name="张", first_name="三")
    zhang.staff_profile.employee_no = "E001"
    zhang.staff_profile.save()
    li = StaffFactory(username="li", stores=[s2])
    day = at(start + timedelta(days=1))
    bought, later, returned = (registered(MemberFactory(store=s1, registered_by=zhang), day) for _n in range(3))
    buy(s1, bought, "100.00", day + timedelta(days=7))
    buy(s1, later, "100.00", at(end + timedelta(days=1), 0))
    receipt = buy(s1, returned, "50.00", day + timedelta(days=2))
    purchase_return(store=s1, original_receipt_no=receipt.receipt_no, receipt_no="SR1", amount=Decimal("50.00"))
    theirs = registered(MemberFactory(store=s2, registered_by=li), day)
    buy(s1, theirs, "20.00", day + timedelta(days=3))
    registered(MemberFactory(store=s1, channel=Member.Channel.APP), day)
    registered(MemberFactory(store=s1, registered_by=zhang), day - timedelta(days=10))
    return {"start": start, "end": end, "s1": s1, "s2": s2, "bought": bought, "theirs": theirs}


def test_headquarters_counts_every_clerks_registrations_and_first_purchases(clerks):
    built = report.build(ReportParams(start=clerks["start"], end=clerks["end"]))
    values = figures(built)
    assert values["registered_by_staff"] == 4
    assert values["staff_first_purchases"] == 2
    assert values["staff_conversion"] == Decimal("0.5000")
    assert values["staff_registration_share"] == Decimal("0.8000")
    rows = next(table for table in built.tables if table.key == "by_clerk").rows
    assert rows == [
        ("zhang", "张三", "E001", "SS1", "一店", 3, 1, Decimal("0.3333")),
        ("li", "", "", "SS2", "二店", 1, 1, Decimal("1.0000")),
    ]
    chart = built.charts[0]
    assert chart.series[0].values == [3, 1]


def test_a_store_counts_the_members_registered_there(clerks):
    values = figures(report.build(ReportParams(start=clerks["start"], end=clerks["end"],
                                               store_ids=(clerks["s2"].pk,))))
    assert values["registered_by_staff"] == 1
    assert values["staff_first_purchases"] == 1  # the first purchase was at another store


def test_the_detail_lists_each_registration_with_its_first_purchase(clerks):
    built = report.build(ReportParams(start=clerks["start"], end=clerks["end"]))
    rows = {row[1]: row for row in built.detail.rows}
    assert len(rows) == 4
    bought = rows[clerks["bought"].member_no]
    assert bought[2:] == ("SS1", "zhang", clerks["start"] + timedelta(days=8))
    assert sum(1 for row in rows.values() if row[4] is None) == 2


def test_without_registrations_the_conversion_is_none_and_a_note_says_so(db):
    start, end = month_last_full(timezone.localdate())
    built = report.build(ReportParams(start=start, end=end))
    values = figures(built)
    assert values["registered_by_staff"] == 0
    assert values["staff_conversion"] is None
    assert built.notes
    assert list(built.detail.rows) == []
