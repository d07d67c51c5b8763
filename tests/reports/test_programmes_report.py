"""The "programmes" report (reports/queries/programmes.py): coupons, targeted campaigns, brand-card discounts,
pickup vouchers and reconciliation exceptions of a period, for headquarters and for a store's scope. Every row is
made through the services (coupons issued and redeemed, card payments, vouchers sold and handed out), so the
figures are checked against what happened."""

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns.models import CouponBatch, CouponRedemption
from campaigns.queries_targeting import campaign_results
from campaigns.services import coupon_redeem, coupon_redemptions_release, coupons_issue
from cards.services import vouchers
from reports.excel import report_workbook_write
from reports.frame import ReportParams
from reports.queries.programmes import build
from settlement.models import ReconDay, ReconException
from tests.campaigns.conftest import CouponTemplateFactory
from tests.campaigns.test_targeting_results import planted  # noqa: F401  (fixture)
from tests.cards.conftest import card_rules, make_card  # noqa: F401  (fixture)
from tests.cards.test_brand_discounts import (  # noqa: F401  (fixtures)
    LISTED,
    brand,
    brand_product,
    line,
    make_programme,
    pay,
    programme,
    programme_owner,
)
from tests.cards.test_vouchers import batch_issued, oil, sold, supplier  # noqa: F401  (fixtures)
from tests.membership.conftest import register

pytestmark = pytest.mark.django_db
D = Decimal


def this_week(store_ids=None) -> ReportParams:
    today = timezone.localdate()
    return ReportParams(start=today - timedelta(days=6), end=today, store_ids=store_ids)


def until_yesterday(store_ids=None) -> ReportParams:
    today = timezone.localdate()
    return ReportParams(start=today - timedelta(days=7), end=today - timedelta(days=1), store_ids=store_ids)


def figures(report) -> dict:
    return {figure.key: figure.value for figure in report.figures}


@pytest.fixture
def coupons_used(dept001, super001):
    """Three 10.00 coupons issued centrally to a DEPT001 member and one bulk code issued at SUPER001; two of the
    member's are redeemed at DEPT001 and the second of them given back (its purchase returned)."""
    template = CouponTemplateFactory(code="TEN", name="10元券", amount=D("10.00"), per_member_limit=5)
    member = register(name="李建国", phone="13800138000", store=dept001)
    batch = coupons_issue(template=template, member_ids=[member.pk] * 3, channel=CouponBatch.Channel.MEMBER_LIST)
    coupons_issue(template=template, quantity=1, channel=CouponBatch.Channel.BULK, store=super001)
    codes = list(batch.coupons.order_by("pk").values_list("code", flat=True))
    for index, code in enumerate(codes[:2]):
        coupon_redeem(code=code, store=dept001, member_no=member.member_no, receipt_no=f"R-{index}",
                      basket_amount=D("100.00"))
    coupon_redemptions_release(store=dept001, receipt_no="R-1", reason="退货")
    return template


def test_coupons_issued_redeemed_given_back_and_their_discount(coupons_used):
    report = build(this_week())
    found = figures(report)
    assert found["coupons_issued"] == 4
    assert found["coupons_redeemed"] == 1
    assert found["coupons_given_back"] == 1
    assert found["coupon_discount"] == D("10.00")
    [row] = report.tables[0].rows
    assert row == ("TEN", "10元券", 4, 1, D("10.00"))


def test_a_store_scope_counts_coupons_issued_there_or_centrally_to_its_members(coupons_used, dept001, super001):
    dept = figures(build(this_week((dept001.pk,))))
    assert (dept["coupons_issued"], dept["coupons_redeemed"], dept["coupon_discount"]) == (3, 1, D("10.00"))
    supermarket = figures(build(this_week((super001.pk,))))
    assert (supermarket["coupons_issued"], supermarket["coupons_redeemed"]) == (1, 0)
    assert supermarket["coupon_discount"] == D("0.00")


def test_a_redemption_given_back_after_the_period_still_counts_in_it(coupons_used):
    two_days_ago = timezone.now() - timedelta(days=2)
    CouponRedemption.objects.update(created_at=two_days_ago)  # redeemed in the period, given back today
    found = figures(build(until_yesterday()))
    assert found["coupons_redeemed"] == 2
    assert found["coupons_given_back"] == 0
    assert found["coupon_discount"] == D("20.00")
    assert found["coupons_issued"] == 0  # issued today, after the period


def test_the_detail_lists_each_redemption_and_whether_it_was_given_back(coupons_used, dept001):
    report = build(this_week())
    rows = list(report.detail.rows)
    assert [(row[1], row[3], row[5], row[7], row[8]) for row in rows] == [
        ("DEPT001", "TEN", "R-0", D("10.00"), ""), ("DEPT001", "TEN", "R-1", D("10.00"), "yes")]
    assert [row[0] for row in report.tables[-1].rows] == [dept001.format.name]
    assert report.tables[-1].rows[0][1:] == (1, D("10.00"), D("0.00"))


def test_brand_card_discounts_by_brand_and_their_brand_funded_part(programme, brand_product, super001, dept001):
    card = make_card(brand_product, balance="500.00", store=super001)
    pay(card, "150.00", [line(LISTED[0], "100.00"), line("6920000000017", "50.00")], super001)
    report = build(this_week())
    found = figures(report)
    assert found["brand_eligible_sales"] == D("100.00")
    assert found["brand_discount"] == D("5.00")
    assert found["brand_funded"] == D("3.00")
    brands = next(table for table in report.tables if table.key == "brands")
    assert list(brands.rows) == [("海天味业", D("100.00"), D("5.00"), D("3.00"), 1)]
    elsewhere = build(this_week((dept001.pk,)))
    assert figures(elsewhere)["brand_discount"] == D("0.00")
    assert "Brand cards: no brand-card discount in this period." in elsewhere.notes


def test_vouchers_sold_and_units_handed_out_at_the_scopes_stores(oil, hq_admin, hq_approver, dept001, super001):
    batch = batch_issued(oil, requested_by=hq_admin, approver=hq_approver, quantity=3, units=10)
    first, _second = sold(batch, store=dept001, user=hq_admin, count=2)
    vouchers.voucher_redeem(code=first.code, quantity=3, receipt_no="V-1", store=super001)
    vouchers.voucher_redeem(code=first.code, quantity=2, receipt_no="V-2", store=super001)
    found = figures(build(this_week()))
    assert (found["vouchers_sold"], found["vouchers_redeemed"], found["voucher_redemptions"]) == (2, 5, 2)
    at_super = figures(build(this_week((super001.pk,))))
    assert (at_super["vouchers_sold"], at_super["vouchers_redeemed"]) == (0, 5)
    at_dept = build(this_week((dept001.pk,)))
    assert [row[3:] for row in next(t for t in at_dept.tables if t.key == "vouchers").rows] == [(2, 0, 0)]


def test_reconciliation_exceptions_of_the_periods_days_and_those_open_at_its_end(dept001, super001):
    today = timezone.localdate()
    day = ReconDay.objects.create(store=dept001, business_date=today - timedelta(days=2), exceptions=3)
    earlier = ReconDay.objects.create(store=super001, business_date=today - timedelta(days=30), exceptions=1)
    kinds = ReconException.Kind
    ReconException.objects.create(day=day, kind=kinds.AMOUNT_DIFFERS, pos_amount=D("12.00"),
                                  ledger_amount=D("10.00"))
    ReconException.objects.create(day=day, kind=kinds.MISSING_IN_POS, ledger_amount=D("5.00"),
                                  status=ReconException.Status.ACCEPTED, resolved_at=timezone.now())
    ReconException.objects.create(day=day, kind=kinds.MISSING_IN_POS, ledger_amount=D("6.00"),
                                  status=ReconException.Status.CORRECTED,
                                  resolved_at=timezone.now() - timedelta(days=1))
    ReconException.objects.create(day=earlier, kind=kinds.DUPLICATE)
    report = build(until_yesterday())
    found = figures(report)
    # worked off today, after the period: still open at its end; worked off yesterday: not
    assert (found["recon_exceptions_total"], found["recon_exceptions_open"]) == (3, 2)
    table = next(t for t in report.tables if t.key == "recon_exceptions")
    assert list(table.rows) == [("missing in the POS file", 2, 1, D("0.00")), ("amount differs", 1, 1, D("2.00"))]
    assert figures(build(until_yesterday((super001.pk,))))["recon_exceptions_total"] == 0


def test_a_targeted_campaign_of_the_period_is_listed_with_its_results(planted):
    campaign, _members = planted
    report = build(this_week())
    assert figures(report)["targeted_campaigns"] == 1
    table = next(t for t in report.tables if t.key == "campaigns")
    [row] = table.rows
    result = campaign_results(campaign=campaign)[0]
    assert row[:8] == (campaign.code, campaign.name, campaign.starts_on, campaign.ends_on, 10, 10, 2, 1)
    assert row[8:11] == (D("0.3000"), D("0.1000"), D("0.2000"))
    assert row[11:] == (result["sales_target"], result["cost"])
    before = ReportParams(start=campaign.starts_on - timedelta(days=9), end=campaign.starts_on - timedelta(days=1))
    assert figures(build(before))["targeted_campaigns"] == 0


def test_a_store_scope_sees_only_its_members_in_a_campaigns_results(planted, dept001):
    campaign, _members = planted
    [row] = next(t for t in build(this_week((dept001.pk,))).tables if t.key == "campaigns").rows
    assert row[4:6] == (5, 5)


def test_an_empty_period_gives_zeros_and_says_so_for_each_section(reference_stores):
    report = build(this_week())
    found = figures(report)
    assert all(value == 0 for value in found.values())
    assert len(report.notes) == 5
    assert all(list(table.rows) == [] for table in report.tables)
    assert list(report.detail.rows) == []


def test_the_same_params_give_the_same_numbers_and_a_workbook(coupons_used):
    first, second = build(this_week()), build(this_week())
    assert figures(first) == figures(second)
    buffer = io.BytesIO()
    assert report_workbook_write(first, buffer) == 2
    assert buffer.getvalue()[:2] == b"PK"


def test_the_report_takes_a_bounded_number_of_queries(coupons_used, django_assert_max_num_queries):
    with django_assert_max_num_queries(16):
        report = build(this_week())
    with django_assert_max_num_queries(1):
        list(report.detail.rows)
