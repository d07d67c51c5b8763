"""Outstanding prepaid balances per issuer, escrow and the revenue alert (DESIGN section 7), and their admin page."""

import io
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from cards.models import Card, CardLedgerEntry, CardRules, SaleOrder, Voucher, VoucherLedgerEntry
from cards.models.vouchers import voucher_value
from cards.queries.liability import day_end, escrow_required, liability_report, outstanding_at_days, quarter_ends
from cards.services.ledger import card_post
from cards.services.vouchers import voucher_post
from stores.models import LegalEntity, StaffProfile
from tests.cards.test_vouchers import batch_issued, oil, supplier  # noqa: F401 (fixtures)

PAGE = "/admin/cards/liability/"
TODAY = date(2025, 5, 10)  # quarter ends: 2024-06-30, 2024-09-30, 2024-12-31, 2025-03-31


def at(*args) -> datetime:
    """A time in China (the project's time zone)."""
    return timezone.make_aware(datetime(*args))


def post(card: Card, amount: str, when: datetime) -> None:
    kind = CardLedgerEntry.Kind.LOAD if Decimal(amount) > 0 else CardLedgerEntry.Kind.DEBIT
    card_post(card=card, kind=kind, amount=Decimal(amount), reason="test", created_at=when)


def direct_ledger_sum(day: date) -> dict:
    """What the report must agree with: the whole ledger up to the day's end, added up per issuer."""
    rows = (CardLedgerEntry.objects.order_by().filter(created_at__lt=day_end(day))
            .values_list("card__issuer_id").annotate(total=Sum("amount")))
    return {issuer_id: total for issuer_id, total in rows if total}


@pytest.fixture
def dept_company(reference_stores) -> LegalEntity:
    return LegalEntity.objects.get(code="LE_DEPT")


@pytest.fixture
def super_company(reference_stores) -> LegalEntity:
    return LegalEntity.objects.get(code="LE_SUPER")


@pytest.fixture
def ledger_over_a_year(card_factory, stored_product, bearer_product, dept_company, super_company):
    """Three cards: the department store company's, the supermarket company's and one sold without an issuer.

    department store card: +1000.00 on 2024-05-01, -200.00 on 2024-08-15, -100.00 in the last second of
    2025-03-31 and -50.00 in the first second of 2025-04-01 (China time), so 650.00 now;
    supermarket card: +500.00 on 2024-10-10; the card without issuer: +300.00 on 2024-12-31.
    """
    dept_card = card_factory(stored_product, issuer=dept_company)
    post(dept_card, "1000.00", at(2024, 5, 1, 10))
    post(dept_card, "-200.00", at(2024, 8, 15, 15))
    post(dept_card, "-100.00", at(2025, 3, 31, 23, 59, 59))
    post(dept_card, "-50.00", at(2025, 4, 1, 0, 0, 0))
    super_card = card_factory(bearer_product, issuer=super_company)
    post(super_card, "500.00", at(2024, 10, 10, 9))
    orphan_card = card_factory(bearer_product)
    post(orphan_card, "300.00", at(2024, 12, 31, 12))
    return dept_card, super_card, orphan_card


# --- quarter ends and balances ------------------------------------------------------------------------------


def test_quarter_ends_are_the_four_before_this_quarter_oldest_first():
    assert quarter_ends(today=TODAY) == [date(2024, 6, 30), date(2024, 9, 30), date(2024, 12, 31), date(2025, 3, 31)]
    assert quarter_ends(today=date(2025, 1, 1)) == [
        date(2024, 3, 31), date(2024, 6, 30), date(2024, 9, 30), date(2024, 12, 31)]
    assert quarter_ends(today=date(2024, 12, 31))[-1] == date(2024, 9, 30)


def test_day_end_is_midnight_in_china():
    assert day_end(date(2025, 3, 31)) == datetime(2025, 3, 31, 16, 0, tzinfo=UTC)


def test_balances_per_issuer_at_quarter_ends_follow_the_ledger_to_each_day_end(ledger_over_a_year, dept_company,
                                                                             super_company):
    ends = quarter_ends(today=TODAY)

    now, at_ends = outstanding_at_days(days=ends)

    assert at_ends[dept_company.pk] == [Decimal("1000.00"), Decimal("800.00"), Decimal("800.00"), Decimal("700.00")]
    assert at_ends[super_company.pk] == [Decimal("0.00"), Decimal("0.00"), Decimal("500.00"), Decimal("500.00")]
    assert at_ends[None] == [Decimal("0.00"), Decimal("0.00"), Decimal("300.00"), Decimal("300.00")]
    assert now == {dept_company.pk: Decimal("650.00"), super_company.pk: Decimal("500.00"), None: Decimal("300.00")}
    for index, day in enumerate(ends):
        expected = direct_ledger_sum(day)
        assert {pk: values[index] for pk, values in at_ends.items() if values[index]} == expected


def test_current_outstanding_is_the_sum_of_card_balances_and_equals_the_ledger_sum(ledger_over_a_year):
    report = liability_report(today=TODAY)

    card_total = Card.objects.aggregate(total=Sum("balance"))["total"]
    ledger_total = CardLedgerEntry.objects.aggregate(total=Sum("amount"))["total"]
    assert report.outstanding == card_total == ledger_total == Decimal("1450.00")
    by_issuer = {row.issuer.code if row.issuer else None: row.outstanding for row in report.rows}
    assert by_issuer == {"LE_DEPT": Decimal("650.00"), "LE_SUPER": Decimal("500.00"), None: Decimal("300.00")}
    assert report.at_quarter_ends == (Decimal("1000.00"), Decimal("800.00"), Decimal("1600.00"), Decimal("1500.00"))


def test_report_names_issuers_with_their_filing_numbers_and_the_unknown_issuer_last(ledger_over_a_year,
                                                                                    dept_company):
    report = liability_report(today=TODAY)

    assert [row.label for row in report.rows] == [
        f"LE_DEPT {dept_company.name}", "LE_SUPER " + LegalEntity.objects.get(code="LE_SUPER").name,
        "unknown issuer"]
    assert report.rows[0].filing_no == dept_company.prepaid_filing_no != ""
    assert [row.label for row in report.issuers_without_filing_no] == ["unknown issuer"]


def test_cards_emptied_before_the_oldest_quarter_end_leave_no_row(card_factory, stored_product, dept_company):
    card = card_factory(stored_product, issuer=dept_company)
    post(card, "100.00", at(2023, 1, 5, 10))
    post(card, "-100.00", at(2023, 2, 5, 10))

    assert liability_report(today=TODAY).rows == ()


# --- escrow ---------------------------------------------------------------------------------------------------


def test_escrow_is_the_rate_of_the_balance_less_the_guarantee_never_below_zero():
    assert escrow_required(balance=Decimal("1500.00"), rate=Decimal("0.30")) == Decimal("450.00")
    assert escrow_required(balance=Decimal("1500.00"), rate=Decimal("0.30"), guarantee=Decimal("100.00")) \
        == Decimal("350.00")
    assert escrow_required(balance=Decimal("1500.00"), rate=Decimal("0.30"), guarantee=Decimal("450.00")) \
        == Decimal("0.00")
    assert escrow_required(balance=Decimal("1500.00"), rate=Decimal("0.30"), guarantee=Decimal("1000.00")) \
        == Decimal("0.00")
    assert escrow_required(balance=Decimal("333.35"), rate=Decimal("0.30")) == Decimal("100.01")


def test_report_escrow_uses_the_previous_quarter_end_and_the_rules(ledger_over_a_year, card_rules):
    card_rules.issuer_type = CardRules.IssuerType.SCALE  # 20% is the least only a scale issuer may hold
    card_rules.escrow_rate = Decimal("0.20")
    card_rules.escrow_guarantee = Decimal("120.00")
    card_rules.save()

    report = liability_report(today=TODAY, rules=CardRules.current())

    # 2025-03-31: 700.00 + 500.00 + 300.00; the 50.00 paid on 2025-04-01 belongs to this quarter.
    assert report.escrow_base == Decimal("1500.00")
    assert [row.escrow for row in report.rows] == [Decimal("140.00"), Decimal("100.00"), Decimal("60.00")]
    assert report.escrow_before_guarantee == Decimal("300.00")
    assert report.escrow == Decimal("180.00")


def test_a_guarantee_above_the_escrow_leaves_nothing_to_hold(ledger_over_a_year, card_rules):
    card_rules.escrow_guarantee = Decimal("9999.00")
    card_rules.save()

    report = liability_report(today=TODAY, rules=card_rules)

    assert report.escrow_before_guarantee == Decimal("450.00")
    assert report.escrow == Decimal("0.00")


# --- revenue alert --------------------------------------------------------------------------------------------


def test_no_alert_without_last_years_revenue(ledger_over_a_year, card_rules):
    assert card_rules.last_year_revenue == Decimal("0.00")
    assert liability_report(today=TODAY, rules=card_rules).alert is None


def test_alert_when_outstanding_passes_the_share_of_last_years_revenue(ledger_over_a_year, card_rules):
    card_rules.last_year_revenue = Decimal("3000.00")  # 40% is 1,200.00; 1,450.00 is outstanding

    alert = liability_report(today=TODAY, rules=card_rules).alert

    assert (alert.outstanding, alert.limit, alert.revenue) == (Decimal("1450.00"), Decimal("1200.00"),
                                                               Decimal("3000.00"))
    assert alert.message == ("Outstanding prepaid balances of 1,450.00 pass 40% of last year's revenue of "
                             "3,000.00 (limit 1,200.00).")


def test_no_alert_at_or_below_the_share(ledger_over_a_year, card_rules):
    card_rules.last_year_revenue = Decimal("3625.00")  # 40% is exactly 1,450.00
    assert liability_report(today=TODAY, rules=card_rules).alert is None
    card_rules.revenue_alert_share = Decimal("0.50")
    card_rules.last_year_revenue = Decimal("3000.00")  # 50% is 1,500.00
    assert liability_report(today=TODAY, rules=card_rules).alert is None


# --- the admin page ---------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def english_pages(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


@pytest.fixture
def this_years_ledger(card_factory, stored_product, dept_company, card_rules):
    """A department store card: 2,000.00 loaded before the last four quarter ends, 300.00 paid this quarter."""
    ends = quarter_ends(today=timezone.localdate())
    card = card_factory(stored_product, issuer=dept_company)
    post(card, "2000.00", timezone.make_aware(datetime.combine(ends[0], time(10))))
    post(card, "-300.00", timezone.make_aware(datetime.combine(ends[-1] + timedelta(days=1), time(0, 0, 1))))
    card_rules.last_year_revenue = Decimal("1000.00")
    card_rules.escrow_guarantee = Decimal("100.00")
    card_rules.save()
    return card


def test_headquarters_sees_the_page_with_the_filing_number_escrow_and_alert(client, hq_admin, this_years_ledger,
                                                                           dept_company):
    client.force_login(hq_admin)

    page = client.get(PAGE)

    assert page.status_code == 200
    report = page.context["report"]
    assert [(row.issuer, row.outstanding, row.at_quarter_ends[-1]) for row in report.rows] == [
        (dept_company, Decimal("1700.00"), Decimal("2000.00"))]
    assert report.escrow == Decimal("500.00")  # 30% of 2,000.00 less the 100.00 guarantee
    content = page.content.decode()
    assert dept_company.prepaid_filing_no in content
    assert 'id="revenue-alert"' in content
    assert "pass 40% of last year&#x27;s revenue of 1,000.00 (limit 400.00)" in content


def test_the_page_is_listed_in_the_admin_index_for_headquarters_only(client, hq_admin, dept001_manager):
    client.force_login(hq_admin)
    assert PAGE in client.get("/admin/").content.decode()
    client.force_login(dept001_manager)
    assert PAGE not in client.get("/admin/").content.decode()


def test_store_staff_are_refused_the_page_and_its_export(client, dept001_manager, this_years_ledger):
    client.force_login(dept001_manager)

    assert client.get(PAGE).status_code == 403
    assert client.get(PAGE, {"export": "xlsx"}).status_code == 403


def test_headquarters_staff_without_the_card_view_permission_are_refused(client, make_staff):
    client.force_login(make_staff("hq_marketing", group="市场营销", scope=StaffProfile.Scope.HQ))

    assert client.get(PAGE).status_code == 403


def test_anonymous_visitors_are_sent_to_the_login(client):
    response = client.get(PAGE)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_excel_export_has_every_issuer_quarter_end_and_the_escrow(client, hq_admin, this_years_ledger,
                                                                  dept_company):
    client.force_login(hq_admin)

    response = client.get(PAGE, {"export": "xlsx"})

    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="prepaid-liability-')
    values = list(load_workbook(io.BytesIO(response.content), read_only=True).active.values)
    ends = quarter_ends(today=timezone.localdate())
    header = values[2]
    assert header[:2] == ("issuer", "prepaid card filing number")
    assert header[2:6] == tuple(f"outstanding at {day:%Y-%m-%d}" for day in ends)
    assert header[6:] == ("outstanding now", "escrow at 30%")
    assert values[3] == (f"LE_DEPT {dept_company.name}", dept_company.prepaid_filing_no, 2000, 2000, 2000, 2000,
                         1700, 600)
    assert values[4][0] == "Total" and values[4][6] == 1700
    rows = {row[0]: row[1] for row in values[6:] if row and row[0]}
    assert rows["outstanding at the previous quarter end"] == 2000
    assert rows["less guarantee"] == 100
    assert rows["required escrow this quarter"] == 500
    assert "limit 400.00" in rows["alert"]


# --- pickup vouchers in the escrow base ---------------------------------------------------------------------------


@pytest.fixture
def voucher_batch(oil, hq_admin, hq_approver):
    """Two vouchers of 10 units sold at 300.00 each: 30.00 a unit."""
    return batch_issued(oil, requested_by=hq_admin, approver=hq_approver, quantity=2, units=10, price="300.00")


def sell(voucher: Voucher, company: LegalEntity, when: datetime) -> None:
    """A sale at a past moment: the voucher active, issued by the company, its units on it with the ledger."""
    Voucher.objects.filter(pk=voucher.pk).update(status=Voucher.Status.ACTIVE, issuer=company, sold_at=when)
    voucher_post(voucher=voucher, kind=VoucherLedgerEntry.Kind.ISSUE, quantity=voucher.units, legal_entity=company,
                 created_at=when)


def test_pickup_vouchers_count_in_the_outstanding_balance_and_the_escrow_base(ledger_over_a_year, dept_company,
                                                                              voucher_batch, card_rules):
    # given: a voucher sold 2024-12-01 and 4 of its units handed out on 2025-04-02; another sold 2024-07-15 and
    # since expired with its 10 units left
    first, second = voucher_batch.vouchers.order_by("serial")
    sell(first, dept_company, at(2024, 12, 1, 10))
    voucher_post(voucher=first, kind=VoucherLedgerEntry.Kind.REDEEM, quantity=-4, legal_entity=dept_company,
                 created_at=at(2025, 4, 2, 10))
    sell(second, dept_company, at(2024, 7, 15, 10))
    Voucher.objects.filter(pk=second.pk).update(status=Voucher.Status.EXPIRED)

    # when
    report = liability_report(today=TODAY, rules=card_rules)

    # then: valued at 30.00 a unit left, beside the card balances (1000.00, 800.00, 800.00, 700.00; 650.00 now)
    dept = report.rows[0]
    assert dept.vouchers_at_quarter_ends == (Decimal("0.00"), Decimal("300.00"), Decimal("600.00"),
                                             Decimal("600.00"))
    assert dept.vouchers == Decimal("480.00")  # 6 + 10 units left
    assert dept.at_quarter_ends == (Decimal("1000.00"), Decimal("1100.00"), Decimal("1400.00"), Decimal("1300.00"))
    assert dept.outstanding == Decimal("1130.00") and report.outstanding == Decimal("1930.00")
    assert (report.card_base, report.voucher_base, report.escrow_base) == (
        Decimal("1500.00"), Decimal("600.00"), Decimal("2100.00"))
    assert report.escrow == Decimal("630.00")  # 30% of 2,100.00


def test_a_voucher_is_valued_at_the_price_paid_for_what_is_left():
    assert voucher_value(units_left=2, price=Decimal("100.00"), units=3).quantize(Decimal("0.01")) == Decimal("66.67")
    assert voucher_value(units_left=0, price=Decimal("100.00"), units=3) == 0


def test_the_page_shows_the_vouchers_and_states_their_valuation(client, hq_admin, dept_company, voucher_batch,
                                                                card_rules):
    first = voucher_batch.vouchers.order_by("serial").first()
    sell(first, dept_company, timezone.now())
    client.force_login(hq_admin)

    page = client.get(PAGE)
    export = client.get(PAGE, {"export": "xlsx"})

    assert page.context["report"].vouchers == Decimal("300.00")
    assert 'id="voucher-valuation"' in page.content.decode() and "remaining units" in page.content.decode()
    values = list(load_workbook(io.BytesIO(export.content), read_only=True).active.values)
    assert values[3][6] == 300  # outstanding now, of LE_DEPT
    assert any(row and row[0] == f"LE_DEPT {dept_company.name}" and row[-1] == 300 for row in values[8:])


# --- the revenue alert while last year's revenue is unknown ------------------------------------------------------


def test_the_report_says_why_the_alert_is_off_without_last_years_revenue(ledger_over_a_year, card_rules):
    off = liability_report(today=TODAY, rules=card_rules)
    card_rules.last_year_revenue = Decimal("3000.00")
    on = liability_report(today=TODAY, rules=card_rules)

    assert off.alert is None and "The revenue alert is off" in off.alert_off and "0.00" in off.alert_off
    assert on.alert is not None and on.alert_off == ""


def test_the_page_and_its_export_say_the_alert_is_off(client, hq_admin, card_factory, stored_product, dept_company,
                                                      card_rules):
    card = card_factory(stored_product, issuer=dept_company)
    post(card, "2000.00", timezone.now())
    client.force_login(hq_admin)

    page = client.get(PAGE).content.decode()
    export = client.get(PAGE, {"export": "xlsx"})

    assert 'id="revenue-alert-off"' in page and "The revenue alert is off" in page
    rows = {row[0]: row[1] for row in load_workbook(io.BytesIO(export.content), read_only=True).active.values
            if row and row[0]}
    assert "The revenue alert is off" in rows["alert"]


@pytest.fixture
def dept_order(dept001, hq_admin):
    return SaleOrder.objects.create(order_no="SOT000001", channel=SaleOrder.Channel.GROUP, store=dept001,
                                    buyer_type=SaleOrder.BuyerType.COMPANY, buyer_name="重庆某某有限公司",
                                    created_by=hq_admin)


def page_messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_card_sales_warn_headquarters_while_the_issuer_has_no_revenue(client, hq_admin, dept_order, dept_company,
                                                                      card_rules):
    client.force_login(hq_admin)

    change = client.get(reverse("admin:cards_saleorder_change", args=[dept_order.pk]))
    add = client.get(reverse("admin:cards_saleorder_add"))

    [warning] = [message for message in page_messages(change) if "revenue alert is off" in message]
    assert dept_company.name in warning
    assert any("revenue alert is off" in message for message in page_messages(add))


def test_no_warning_once_the_revenue_is_known_nor_for_store_staff(client, hq_admin, dept001_manager, dept_order,
                                                                  card_rules):
    url = reverse("admin:cards_saleorder_change", args=[dept_order.pk])
    client.force_login(dept001_manager)
    store_page = client.get(url)
    card_rules.last_year_revenue = Decimal("5000000.00")
    card_rules.save()
    client.force_login(hq_admin)
    hq_page = client.get(url)

    assert store_page.status_code == hq_page.status_code == 200
    assert not any("revenue alert" in message for message in page_messages(store_page) + page_messages(hq_page))
