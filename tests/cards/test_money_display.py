"""Money reads like money on every report page and in every Excel sheet (issue 18): two decimals, thousands
separated (68,551.50), on SQLite and PostgreSQL alike; Excel cells stay numbers with the yuan format.

SQLite adds Decimal sums up with long tails (2000.00000000000000); the pages must never show them. The report
forms have labels of their own, a default period the browser shows (ISO dates), one-click periods and a clear
message when the period has nothing in it.
"""

import io
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.template import Context, Template
from django.utils import timezone
from openpyxl import load_workbook

from cards.models import CardLedgerEntry
from cards.services import vouchers
from cards.services.ledger import card_post
from core.dates import month_last_full, month_to_date
from core.numbers import MONEY_XLSX_FORMAT, money_display, money_round, points_display
from stores.models import LegalEntity
from tests.cards import test_brand_billing as billing
from tests.cards import test_vouchers as voucher_fixtures

D = Decimal
LIABILITY = "/admin/cards/liability/"
BILLING = "/admin/cards/brand-billing/"
VOUCHER_LIABILITY = "/admin/cards/voucher/liability/"
SETTLEMENT = "/admin/cards/voucher/settlement/"
CARDS = "/admin/cards/card/"
# A long decimal tail, as SQLite's sums come back: five or more decimals after a digit.
LONG_TAIL = re.compile(r"\d\.\d{5,}")

# Fixtures shared with the brand billing and voucher tests.
brand = billing.brand
other_brand = billing.other_brand
programme_owner = billing.programme_owner
programme = billing.programme
other_programme = billing.other_programme
supplier = voucher_fixtures.supplier
oil = voucher_fixtures.oil


@pytest.fixture(autouse=True)
def english_pages(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


def html(response) -> str:
    assert response.status_code == 200
    return response.content.decode()


def no_long_tails(content: str) -> None:
    assert not LONG_TAIL.search(content), LONG_TAIL.search(content).group(0)


def sheet_rows(response):
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return list(load_workbook(io.BytesIO(content)).worksheets[0].iter_rows())


# --- the helpers -----------------------------------------------------------------------------------------------


def test_money_display_rounds_to_the_fen_and_separates_thousands():
    assert money_display(D("2000.00000000000000") + D("30824.000000000000") + D("35727.50")) == "68,551.50"
    assert money_display(D("1234.565")) == "1,234.57"
    assert money_display(D("-1234.5")) == "-1,234.50"
    assert money_display(D("-0.001")) == "0.00"
    assert money_display(D("12"), signed=True) == "+12.00"
    assert money_display(None) == "" and money_display("12.5") == "12.50" and money_display(7) == "7.00"
    assert money_round(D("0.005")) == D("0.01")
    assert points_display(1234567) == "1,234,567" and points_display(None) == ""


def test_the_money_template_filter():
    rendered = Template("{% load money %}{{ amount|money }} {{ points|points }} [{{ none|money }}]").render(
        Context({"amount": D("68551.5"), "points": 15000, "none": None}))
    assert rendered == "68,551.50 15,000 []"


# --- the prepaid liability page ----------------------------------------------------------------------------


@pytest.fixture
def big_balances(card_factory, stored_product, reference_stores):
    """The department store company's cards: 2000.00 and 4824.00 loaded, 4999.50 on a third: 11,823.50."""
    company = LegalEntity.objects.get(code="LE_DEPT")
    moment = timezone.now() - timedelta(days=400)
    for amount in ("2000.00", "4824.00", "4999.50"):
        card = card_factory(stored_product, issuer=company)
        card_post(card=card, kind=CardLedgerEntry.Kind.LOAD, amount=D(amount), reason="test", created_at=moment)
    return company


def test_the_liability_page_shows_money(client, hq_admin, big_balances, ledgers_balanced):
    client.force_login(hq_admin)

    content = html(client.get(LIABILITY))

    assert "11,823.50" in content
    assert "11823.50" not in content
    no_long_tails(content)
    ledgers_balanced()


def test_the_liability_excel_keeps_numbers_with_the_yuan_format(client, hq_admin, big_balances):
    client.force_login(hq_admin)

    rows = sheet_rows(client.get(LIABILITY, {"export": "xlsx"}))

    totals = next(row for row in rows if row[0].value == "Total")
    money_cells = [cell for cell in totals[2:] if cell.value is not None]
    assert money_cells and all(isinstance(cell.value, (int, float, Decimal)) for cell in money_cells)
    assert all(cell.number_format == MONEY_XLSX_FORMAT for cell in money_cells)
    assert D(str(totals[-2].value)).quantize(D("0.01")) == D("11823.50")


# --- brand billing: the statement and the programme results ------------------------------------------------------


@pytest.fixture
def big_month(card_factory, programme, dept001):
    """The brand's March 2025 on three cards: eligible 2000.00, 4824.00 and 4727.50 (11,551.50)."""
    rows = []
    for eligible, discount, brand_amount in (("2000.00", "100.00", "60.00"), ("4824.00", "241.20", "144.72"),
                                             ("4727.50", "236.38", "141.83")):
        card = card_factory(programme.product, balance="5000.00", store=dept001)
        rows.append(billing.record(card, programme, day=date(2025, 3, 10), eligible=eligible, discount=discount,
                                   brand_amount=brand_amount, store=dept001))
    return rows


def test_the_statement_shows_money(client, hq_finance, big_month, brand, ledgers_balanced):
    client.force_login(hq_finance)

    content = html(client.get(BILLING, {"brand": brand.pk, **billing.MARCH}))

    assert "11,551.50" in content and "577.58" in content and "346.55" in content
    assert "11551.50" not in content
    no_long_tails(content)
    ledgers_balanced()


def test_the_programme_results_show_money(client, hq_finance, big_month):
    client.force_login(hq_finance)

    content = html(client.get(BILLING, {"report": "results", **billing.MARCH}))

    assert "11,551.50" in content and "11551.50" not in content
    assert 'id="no-data"' not in content
    no_long_tails(content)


def test_the_statement_excel_keeps_numbers_with_the_yuan_format(client, hq_finance, big_month, brand):
    client.force_login(hq_finance)

    rows = sheet_rows(client.get(BILLING, {"brand": brand.pk, **billing.MARCH, "export": "xlsx"}))

    total = next(row for row in rows if row[0].value == "Total")
    assert [D(str(cell.value)) for cell in total[8:11]] == [D("11551.50"), D("577.58"), D("346.55")]
    assert all(cell.number_format == MONEY_XLSX_FORMAT for cell in total[8:11])


# --- pickup vouchers: liability and supplier settlement -----------------------------------------------------------


@pytest.fixture
def big_vouchers(oil, hq_admin, hq_approver, dept001):
    """Two vouchers of 100 units at 2345.67 each, sold at DEPT001; 30 units of one handed out today (58.00 each)."""
    batch = voucher_fixtures.batch_issued(oil, requested_by=hq_admin, approver=hq_approver, quantity=2, units=100,
                                          price="2345.67")
    first, _second = voucher_fixtures.sold(batch, store=dept001, user=hq_admin)
    vouchers.voucher_redeem(code=first.code, quantity=30, receipt_no="D-1", store=dept001)
    return batch


def test_the_voucher_liability_page_shows_money(client, hq_finance, big_vouchers, ledgers_balanced):
    client.force_login(hq_finance)

    response = client.get(VOUCHER_LIABILITY)
    content = html(response)

    [row] = response.context["rows"]
    assert row.active_value > 1000
    assert money_display(row.active_value) in content and "," in money_display(row.active_value)
    no_long_tails(content)
    ledgers_balanced()


def test_the_settlement_page_and_excel_show_money(client, hq_finance, big_vouchers):
    today = timezone.localdate().isoformat()
    client.force_login(hq_finance)

    content = html(client.get(SETTLEMENT, {"date_from": today, "date_to": today}))
    rows = sheet_rows(client.get(SETTLEMENT, {"date_from": today, "date_to": today, "export": "xlsx"}))

    assert "1,740.00" in content and "1740.00" not in content and "58.00" in content
    no_long_tails(content)
    line, total = rows[-2], rows[-1]
    assert line[8].value == 58 and line[8].number_format == MONEY_XLSX_FORMAT
    assert total[9].value == 1740 and total[9].number_format == MONEY_XLSX_FORMAT


# --- an admin list column, read-only fields and an Excel list export --------------------------------------------------


def test_the_card_list_and_its_export_show_money(client, hq_admin, card_factory, stored_product):
    card = card_factory(stored_product, balance="4321.50")
    client.force_login(hq_admin)

    content = html(client.get(CARDS, {"q": card.card_no}))
    rows = sheet_rows(client.get(f"{CARDS}export/", {"q": card.card_no}))

    assert "4,321.50" in content
    change_page = html(client.get(f"{CARDS}{card.pk}/change/"))
    assert "4,321.50" in change_page and "5,000.00" in change_page  # the balance and the card's cap
    no_long_tails(change_page)
    [line] = [row for row in rows if row[0].value == card.card_no]
    balance = line[4]
    assert balance.value == 4321.5 and balance.number_format == MONEY_XLSX_FORMAT


# --- the report forms ---------------------------------------------------------------------------------------------


def test_billing_forms_have_their_own_labels_and_show_last_month_in_iso(client, hq_finance):
    client.force_login(hq_finance)
    starts_on, ends_on = month_last_full(timezone.localdate())

    for query in ({}, {"report": "results"}):
        content = html(client.get(BILLING, query))
        assert "period starts on" in content and "period ends on" in content
        assert f'value="{starts_on:%Y-%m-%d}"' in content and f'value="{ends_on:%Y-%m-%d}"' in content
        assert 'type="date"' in content


def test_billing_labels_in_chinese_are_not_the_card_transfer_ones(client, hq_finance):
    client.force_login(hq_finance)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "zh-hans"

    content = html(client.get(BILLING))

    assert "调出方" not in content and "调入门店" not in content
    starts_on, _ends_on = month_last_full(timezone.localdate())
    assert f'value="{starts_on:%Y-%m-%d}"' in content


def test_settlement_form_has_its_own_labels_and_shows_last_month_in_iso(client, hq_finance):
    client.force_login(hq_finance)
    starts_on, ends_on = month_last_full(timezone.localdate())

    content = html(client.get(SETTLEMENT))

    assert "period starts on" in content and "period ends on" in content
    assert 'type="date"' in content
    assert f'value="{starts_on:%Y-%m-%d}"' in content and f'value="{ends_on:%Y-%m-%d}"' in content


@pytest.mark.parametrize("page, query, start, end", [
    (BILLING, {}, "starts_on", "ends_on"),
    (BILLING, {"report": "results"}, "starts_on", "ends_on"),
    (SETTLEMENT, {}, "date_from", "date_to"),
])
def test_each_report_offers_last_full_month_and_this_month(client, hq_finance, page, query, start, end):
    client.force_login(hq_finance)
    today = timezone.localdate()

    response = client.get(page, query)
    content = html(response)

    choices = {choice["key"]: choice for choice in response.context["period_choices"]}
    assert (choices["last-full-month"]["starts_on"], choices["last-full-month"]["ends_on"]) == month_last_full(today)
    assert (choices["this-month"]["starts_on"], choices["this-month"]["ends_on"]) == month_to_date(today)
    assert "last full month" in content and "this month" in content
    for key, (starts_on, ends_on) in (("last-full-month", month_last_full(today)),
                                      ("this-month", month_to_date(today))):
        url = choices[key]["url"]
        assert f"{start}={starts_on:%Y-%m-%d}" in url and f"{end}={ends_on:%Y-%m-%d}" in url
        assert f'id="period-{key}"' in content
        # the link opens the page with the period filled in
        followed = client.get(page + url)
        assert f'value="{starts_on:%Y-%m-%d}"' in html(followed)


def test_a_period_without_data_says_so(client, hq_finance, brand, oil):
    client.force_login(hq_finance)
    empty = {"starts_on": "2024-01-01", "ends_on": "2024-01-31"}

    statement = html(client.get(BILLING, {"brand": brand.pk, **empty}))
    results = html(client.get(BILLING, {"report": "results", **empty}))
    settlement = html(client.get(SETTLEMENT, {"date_from": "2024-01-01", "date_to": "2024-01-31"}))

    assert 'id="no-data"' in statement and "nothing to bill for this period" in statement
    assert 'id="no-data"' in results and "No brand card was sold or paid with" in results
    assert 'id="no-data"' in settlement
    assert "No pickup vouchers were redeemed from 2024-01-01 to 2024-01-31" in settlement
