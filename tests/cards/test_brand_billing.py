"""Brand billing: statements per brand and period, programme results, the discount rows' list, and their Excel.

The discount rows are made here directly, each with its POS card transaction and ledger row (the discount engine
that writes them in production is tested on its own), so these tests pin down what billing reads.
"""

import io
import itertools
from datetime import date, datetime, time
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone
from openpyxl import load_workbook

from cards.admin import brand_reports as billing_admin
from cards.models import (
    Brand,
    BrandDiscount,
    BrandProgramme,
    Card,
    CardLedgerEntry,
    CardProduct,
    CardTransaction,
    SaleOrder,
)
from cards.queries.brand_reports import (
    ProgrammeResult,
    previous_month,
    programme_results,
    statement_query,
    statement_rows,
    statement_totals,
    user_may_view_brand_billing,
)
from cards.services.ledger import card_post
from stores.models import StaffProfile

D = Decimal
PAGE = "/admin/cards/brand-billing/"
LIST = "/admin/cards/branddiscount/"
MARCH = {"starts_on": "2025-03-01", "ends_on": "2025-03-31"}
_numbers = itertools.count(1)


def at(day: date, hour: int = 10, minute: int = 0) -> datetime:
    """A time in China (the project's time zone)."""
    return timezone.make_aware(datetime.combine(day, time(hour, minute)))


def workbook(response):
    return load_workbook(io.BytesIO(b"".join(response.streaming_content)))


def money(value) -> Decimal:
    return D(str(value)).quantize(D("0.01"))


# --- fixtures ------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def english_pages(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


@pytest.fixture
def brand(db) -> Brand:
    return Brand.objects.create(
        code="HAITIAN", name="海天味业", contact_name="王经理", contact_phone="13800000000",
        contact_email="billing@haitian.example", contract_starts_on=date(2025, 1, 1),
        contract_ends_on=date(2026, 12, 31), billing_name="佛山市海天调味食品股份有限公司",
        billing_tax_no="91440600231947021X", billing_address="广东省佛山市文沙路16号", billing_bank="工商银行佛山分行",
        billing_account_no="2013000000000000001",
    )


@pytest.fixture
def other_brand(db) -> Brand:
    return Brand.objects.create(code="YILI", name="伊利", billing_name="内蒙古伊利实业集团股份有限公司")


def brand_product(code: str, brand: Brand) -> CardProduct:
    return CardProduct.objects.create(code=code, name=f"{brand.name}联名卡", kind=CardProduct.Kind.REGISTERED,
                                      reloadable=True, max_balance=D("5000.00"), brand=brand)


def make_programme(code: str, product: CardProduct, user, *, share="0.6000", starts_on=date(2025, 1, 1),
                   ends_on=None, status=BrandProgramme.Status.ACTIVE) -> BrandProgramme:
    return BrandProgramme.objects.create(
        code=code, name=f"{code} 5%", brand=product.brand, product=product, discount_rate=D("0.0500"),
        brand_share=D(share), starts_on=starts_on, ends_on=ends_on, status=status, created_by=user,
    )


@pytest.fixture
def programme_owner(django_user_model):
    return django_user_model.objects.create_user(username="programme_owner", password="pw-for-tests-123")


@pytest.fixture
def programme(card_rules, brand, programme_owner) -> BrandProgramme:
    return make_programme("HT5", brand_product("HTCARD", brand), programme_owner)


@pytest.fixture
def other_programme(card_rules, other_brand, programme_owner) -> BrandProgramme:
    return make_programme("YL5", brand_product("YLCARD", other_brand), programme_owner, share="1.0000")


@pytest.fixture
def brand_card(card_factory, programme, dept001):
    return card_factory(programme.product, balance="3000.00", store=dept001, card_no="6200001234567890")


def record(card: Card, programme: BrandProgramme, *, day: date, eligible: str, discount: str, brand_amount: str,
           store, kind=CardTransaction.Kind.DEBIT, lines=None, original: CardTransaction | None = None,
           receipt_no: str | None = None, hour: int = 10) -> BrandDiscount:
    """One brand discount row with its card transaction and ledger row, as a payment, refund or reversal makes them.

    A payment's amounts are given positive; a refund's or reversal's give-back negative (kind names which).
    """
    number = next(_numbers)
    eligible, discount, brand_amount = D(eligible), D(discount), D(brand_amount)
    if kind == CardTransaction.Kind.DEBIT:
        amount = eligible + D("20.00")  # other goods in the basket
        charged, moved = amount - discount, -(amount - discount)
    else:
        amount = charged = D("30.00") + abs(eligible)
        moved = charged
        if kind == CardTransaction.Kind.REVERSE and original.kind == CardTransaction.Kind.REFUND:
            moved = -charged
    card.refresh_from_db()
    transaction = CardTransaction.objects.create(
        transaction_id=f"TXN{number:013d}", kind=kind, card=card, amount=amount,
        discount=discount if kind == CardTransaction.Kind.DEBIT else D("0.00"), charged=charged,
        balance_after=card.balance + moved, original=original, store=store,
        receipt_no=receipt_no or f"R{number:05d}", business_date=day, created_at=at(day, hour),
    )
    if original is not None and kind == CardTransaction.Kind.REVERSE:
        CardTransaction.objects.filter(pk=original.pk).update(reversed_at=at(day, hour))
    ledger_kind = {CardTransaction.Kind.DEBIT: CardLedgerEntry.Kind.DEBIT,
                   CardTransaction.Kind.REFUND: CardLedgerEntry.Kind.REFUND,
                   CardTransaction.Kind.REVERSE: CardLedgerEntry.Kind.REVERSE}[kind]
    card_post(card=card, kind=ledger_kind, amount=moved, store=store, transaction_record=transaction,
              receipt_no=transaction.receipt_no, created_at=transaction.created_at)
    return BrandDiscount.objects.create(
        transaction=transaction, kind=kind, programme=programme, brand=programme.brand, card=card, store=store,
        business_date=day, eligible_amount=eligible, discount=discount, brand_amount=brand_amount,
        lines=lines or [], created_at=transaction.created_at,
    )


@pytest.fixture
def march(brand_card, programme, other_programme, card_factory, dept001, super001):
    """The brand's March 2025 and the days around it, and another brand's row in March.

    in March: 100.00 eligible (5.00 discount, 3.00 the brand's) on the 1st at DEPT001 with two SKU lines; 40.00
    (2.00 / 1.20) on the 31st at SUPER001, refunded in part the same day (-20.00 / -1.00 / -0.60); outside:
    the last day of February and the first of April; the other brand: 60.00 (3.00 / 3.00) on March 15th.
    """
    first = record(brand_card, programme, day=date(2025, 3, 1), eligible="100.00", discount="5.00",
                   brand_amount="3.00", store=dept001, lines=[
                       {"sku": "6900000000001", "amount": "60.00", "quantity": "2", "discount": "3.00",
                        "brand_amount": "1.80"},
                       {"sku": "6900000000002", "amount": "40.00", "quantity": "1", "discount": "2.00",
                        "brand_amount": "1.20"},
                   ])
    last = record(brand_card, programme, day=date(2025, 3, 31), eligible="40.00", discount="2.00",
                  brand_amount="1.20", store=super001, hour=23)
    refund = record(brand_card, programme, day=date(2025, 3, 31), eligible="-20.00", discount="-1.00",
                    brand_amount="-0.60", store=super001, kind=CardTransaction.Kind.REFUND,
                    original=last.transaction, hour=23)
    before = record(brand_card, programme, day=date(2025, 2, 28), eligible="50.00", discount="2.50",
                    brand_amount="1.50", store=dept001, hour=23)
    after = record(brand_card, programme, day=date(2025, 4, 1), eligible="80.00", discount="4.00",
                   brand_amount="2.40", store=dept001, hour=0)
    other_card = card_factory(other_programme.product, balance="500.00", store=dept001)
    other = record(other_card, other_programme, day=date(2025, 3, 15), eligible="60.00", discount="3.00",
                   brand_amount="3.00", store=dept001)
    return {"first": first, "last": last, "refund": refund, "before": before, "after": after, "other": other}


# --- statements: the queries ------------------------------------------------------------------------------------


def test_statement_has_the_brands_rows_of_the_period_with_both_boundary_days(march, brand):
    rows = list(statement_rows(statement_query(brand=brand, starts_on=date(2025, 3, 1), ends_on=date(2025, 3, 31))))

    assert [row.pk for row in rows] == [march["first"].pk, march["last"].pk, march["refund"].pk]
    assert rows[0].store == "DEPT001 " + march["first"].store.name
    assert rows[0].card_no_masked == "6200****7890"
    assert rows[0].transaction_id == march["first"].transaction.transaction_id
    assert rows[2].kind_label == "refund"


def test_statement_total_funded_by_the_brand_equals_the_sum_of_its_rows_in_the_period(march, brand):
    totals = statement_totals(brand=brand, starts_on=date(2025, 3, 1), ends_on=date(2025, 3, 31))

    direct = BrandDiscount.objects.filter(
        brand=brand, business_date__gte=date(2025, 3, 1), business_date__lte=date(2025, 3, 31)
    ).aggregate(brand_amount=Sum("brand_amount"), discount=Sum("discount"), eligible=Sum("eligible_amount"))
    assert totals.brand_amount == money(direct["brand_amount"]) == D("3.60")
    assert totals.discount == money(direct["discount"]) == D("6.00")
    assert totals.eligible_amount == money(direct["eligible"]) == D("120.00")
    assert totals.count == 3
    assert totals.group_cost == D("2.40")
    assert set(totals.by_programme) == {"HT5"}


def test_a_single_day_period_holds_that_business_day_only(march, brand):
    totals = statement_totals(brand=brand, starts_on=date(2025, 4, 1), ends_on=date(2025, 4, 1))

    assert (totals.count, totals.brand_amount) == (1, D("2.40"))


def test_an_empty_period_adds_up_to_zero(brand):
    totals = statement_totals(brand=brand, starts_on=date(2024, 1, 1), ends_on=date(2024, 1, 31))

    assert (totals.count, totals.eligible_amount, totals.discount, totals.brand_amount) == (0, 0, 0, 0)


def test_previous_month_is_the_calendar_month_before():
    assert previous_month(date(2025, 3, 15)) == (date(2025, 2, 1), date(2025, 2, 28))
    assert previous_month(date(2025, 1, 1)) == (date(2024, 12, 1), date(2024, 12, 31))


# --- who may see billing ----------------------------------------------------------------------------------------


def test_only_headquarters_staff_with_the_discount_view_permission_may_see_billing(hq_finance, dept001_manager,
                                                                                    make_staff):
    marketing = make_staff("hq_marketing", group="市场营销", scope=StaffProfile.Scope.HQ)

    assert user_may_view_brand_billing(hq_finance)
    assert dept001_manager.has_perm("cards.view_branddiscount")  # the role may, but the figures are HQ's
    assert not user_may_view_brand_billing(dept001_manager)
    assert not user_may_view_brand_billing(marketing)


def test_store_manager_is_refused_the_page_its_exports_and_the_discount_rows(client, dept001_manager, march):
    client.force_login(dept001_manager)

    assert client.get(PAGE).status_code == 403
    assert client.get(PAGE, {"brand": march["first"].brand_id, **MARCH, "export": "xlsx"}).status_code == 403
    assert client.get(PAGE, {"report": "results", **MARCH, "export": "xlsx"}).status_code == 403
    assert client.get(LIST).status_code == 403
    assert client.get(f"{LIST}{march['first'].pk}/change/").status_code == 403
    assert client.get(f"{LIST}export/").status_code == 403


def test_headquarters_staff_without_the_permission_are_refused(client, make_staff):
    client.force_login(make_staff("hq_marketing", group="市场营销", scope=StaffProfile.Scope.HQ))

    assert client.get(PAGE).status_code == 403
    assert client.get(LIST).status_code == 403


def test_anonymous_visitors_are_sent_to_the_login(client):
    response = client.get(PAGE)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_the_page_and_the_list_are_in_the_admin_index_for_headquarters_only(client, hq_finance, dept001_manager):
    client.force_login(hq_finance)
    index = client.get("/admin/").content.decode()
    assert PAGE in index and LIST in index

    client.force_login(dept001_manager)
    index = client.get("/admin/").content.decode()
    assert PAGE not in index and LIST not in index


# --- the statement page -----------------------------------------------------------------------------------------


def test_the_page_opens_on_the_form_with_last_month(client, hq_finance):
    client.force_login(hq_finance)

    page = client.get(PAGE)

    assert page.status_code == 200
    starts_on, ends_on = previous_month()
    assert page.context["form"]["starts_on"].value() == starts_on
    assert page.context["form"]["ends_on"].value() == ends_on
    assert "Choose a brand partner and a period." in page.content.decode()


def test_finance_sees_the_statement_with_billing_details_rows_and_totals(client, hq_finance, march, brand):
    client.force_login(hq_finance)

    page = client.get(PAGE, {"brand": brand.pk, **MARCH})

    assert page.status_code == 200
    assert [row.pk for row in page.context["rows"]] == [march[name].pk for name in ("first", "last", "refund")]
    assert page.context["totals"].brand_amount == D("3.60")
    content = page.content.decode()
    for text in (brand.billing_name, brand.billing_tax_no, brand.billing_account_no, "6200****7890",
                 march["first"].transaction.transaction_id):
        assert text in content
    assert '<th class="money" id="statement-brand-total">3.60</th>' in content
    assert brand_card_number(march) not in content  # card numbers are masked on a brand's statement
    assert march["other"].transaction.transaction_id not in content


def brand_card_number(march) -> str:
    return march["first"].card.card_no


def test_the_statement_is_paginated_with_totals_over_every_page(client, hq_finance, march, brand, monkeypatch):
    monkeypatch.setattr(billing_admin, "PAGE_ROWS", 2)
    client.force_login(hq_finance)

    first = client.get(PAGE, {"brand": brand.pk, **MARCH})
    second = client.get(PAGE + first.context["next_url"])

    assert [row.pk for row in first.context["rows"]] == [march["first"].pk, march["last"].pk]
    assert [row.pk for row in second.context["rows"]] == [march["refund"].pk]
    assert second.context["totals"].brand_amount == first.context["totals"].brand_amount == D("3.60")
    assert "page=1" in second.context["previous_url"] and second.context["next_url"] == ""


@pytest.mark.parametrize(("query", "field", "message"), [
    ({**MARCH, "ends_on": "2025-02-01"}, "ends_on", "The period cannot end before it starts."),
    ({**MARCH, "starts_on": "2025-13-01"}, "starts_on", "Enter a valid date."),
    ({**MARCH, "starts_on": ""}, "starts_on", "This field is required."),
])
def test_a_bad_period_is_shown_on_the_field_and_nothing_is_exported(client, hq_finance, brand, query, field,
                                                                     message):
    client.force_login(hq_finance)

    for extra in ({}, {"export": "xlsx"}):
        page = client.get(PAGE, {"brand": brand.pk, **query, **extra})
        assert page.status_code == 200
        assert page["Content-Type"].startswith("text/html")
        assert message in page.context["form"].errors[field]


def test_an_unknown_brand_is_refused_on_its_field(client, hq_finance, brand):
    client.force_login(hq_finance)

    page = client.get(PAGE, {"brand": "999999", **MARCH, "export": "xlsx"})

    assert page.status_code == 200
    assert "brand" in page.context["form"].errors


# --- the statement in Excel -------------------------------------------------------------------------------------


def test_statement_excel_has_the_billing_block_rows_totals_and_the_sku_lines(client, hq_finance, march, brand):
    client.force_login(hq_finance)

    response = client.get(PAGE, {"brand": brand.pk, **MARCH, "export": "xlsx"})

    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="brand-statement-HAITIAN-20250301-20250331.xlsx"'
    book = workbook(response)
    assert book.sheetnames == ["Statement", "SKU lines"]
    values = list(book["Statement"].values)
    block = {row[0]: row[1:] for row in values[:11] if row and row[0]}
    assert block["brand partner"][:2] == ("HAITIAN", "海天味业")
    assert block["billed company"][0] == brand.billing_name
    assert block["taxpayer number"][0] == brand.billing_tax_no
    assert block["bank account number"][0] == brand.billing_account_no
    assert block["contract period"][0] == "2025-01-01 – 2026-12-31"
    assert block["period (business dates)"][0] == "2025-03-01 – 2025-03-31"
    header_at = next(index for index, row in enumerate(values) if row and row[0] == "business date")
    assert values[header_at] == ("business date", "time", "store", "card number", "receipt number",
                                 "transaction id", "kind", "programme", "eligible sales", "discount",
                                 "funded by the brand")
    rows = values[header_at + 1:header_at + 4]
    assert [row[5] for row in rows] == [march[name].transaction.transaction_id for name in ("first", "last", "refund")]
    assert rows[0][0].date() == date(2025, 3, 1) and rows[0][1] == "10:00:00"
    assert rows[0][3] == "6200****7890"
    assert [row[6] for row in rows] == ["payment", "payment", "refund"]
    assert [money(row[10]) for row in rows] == [D("3.00"), D("1.20"), D("-0.60")]
    total = values[header_at + 4]
    assert total[0] == "Total" and total[1] == "3 rows"
    assert money(total[10]) == sum(money(row[10]) for row in rows) == D("3.60")
    assert money(total[9]) == D("6.00") and money(total[8]) == D("120.00")
    lines = list(book["SKU lines"].values)
    assert lines[0][5:] == ("SKU", "quantity", "amount", "discount", "funded by the brand")
    assert [(line[5], money(line[7]), money(line[9])) for line in lines[1:]] == [
        ("6900000000001", D("60.00"), D("1.80")), ("6900000000002", D("40.00"), D("1.20"))]
    assert lines[1][1] == march["first"].transaction.transaction_id


def test_statement_excel_of_many_rows_adds_up_to_the_database_sum(client, hq_finance, brand_card, programme,
                                                                   dept001, brand):
    for number in range(60):
        record(brand_card, programme, day=date(2025, 3, 1 + number % 28), eligible=f"{1 + number % 10}.15",
               discount="0.51", brand_amount="0.31", store=dept001)
    client.force_login(hq_finance)

    book = workbook(client.get(PAGE, {"brand": brand.pk, **MARCH, "export": "xlsx"}))

    values = list(book["Statement"].values)
    total = next(row for row in values if row and row[0] == "Total")
    database = BrandDiscount.objects.filter(brand=brand).aggregate(total=Sum("brand_amount"))["total"]
    assert money(total[10]) == money(database) == D("18.60")


def test_formula_like_text_is_escaped_in_every_excel_file(client, hq_finance, card_rules, programme_owner, dept001,
                                                          card_factory):
    evil = Brand.objects.create(code="EVIL", name="=HYPERLINK(\"http://x\",\"click\")",
                                billing_name="+cmd|' /C calc'!A0", billing_address="@SUM(1+1)")
    evil_programme = make_programme("EV1", brand_product("EVCARD", evil), programme_owner)
    evil_programme.name = "-2+3"
    evil_programme.save()
    card = card_factory(evil_programme.product, balance="500.00", store=dept001)
    record(card, evil_programme, day=date(2025, 3, 3), eligible="10.00", discount="0.50", brand_amount="0.30",
           store=dept001, receipt_no="=1+1", lines=[
               {"sku": "=cmd()", "amount": "10.00", "quantity": "1", "discount": "0.50", "brand_amount": "0.30"}])
    client.force_login(hq_finance)

    statement = workbook(client.get(PAGE, {"brand": evil.pk, **MARCH, "export": "xlsx"}))
    results = workbook(client.get(PAGE, {"report": "results", "brand": evil.pk, **MARCH, "export": "xlsx"}))

    cells = [cell for sheet in (*statement.worksheets, *results.worksheets) for row in sheet.values for cell in row
             if isinstance(cell, str)]
    assert "'=HYPERLINK(\"http://x\",\"click\")" in cells
    assert "'+cmd|' /C calc'!A0" in cells and "'@SUM(1+1)" in cells
    assert "'=1+1" in cells and "'=cmd()" in cells and "'-2+3" in cells
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@")]


# --- programme results ------------------------------------------------------------------------------------------


@pytest.fixture
def sold_cards(programme, card_factory, dept001, programme_owner):
    """Cards of the programme's product: two sold by an order in March (one on its last evening, China time),
    one sold in April, one activated in March without a sale order (a replacement)."""
    order = SaleOrder.objects.create(order_no="SO2025030001", channel=SaleOrder.Channel.GROUP, store=dept001,
                                     status=SaleOrder.Status.COMPLETED, created_by=programme_owner)
    product = programme.product
    return [
        card_factory(product, sale_order=order, activated_at=at(date(2025, 3, 2))),
        card_factory(product, sale_order=order, activated_at=at(date(2025, 3, 31), 23, 59)),
        card_factory(product, sale_order=order, activated_at=at(date(2025, 4, 1), 0, 0)),
        card_factory(product, activated_at=at(date(2025, 3, 5))),
    ]


def test_programme_results_count_sales_payments_and_net_amounts(march, sold_cards, programme, other_programme,
                                                                brand_card, dept001):
    # a third March payment, reversed the same day: not counted as a payment; its amounts net to nothing
    voided = record(brand_card, programme, day=date(2025, 3, 10), eligible="10.00", discount="0.50",
                    brand_amount="0.30", store=dept001)
    record(brand_card, programme, day=date(2025, 3, 10), eligible="-10.00", discount="-0.50", brand_amount="-0.30",
           store=dept001, kind=CardTransaction.Kind.REVERSE, original=voided.transaction, hour=11)

    results = programme_results(starts_on=date(2025, 3, 1), ends_on=date(2025, 3, 31))

    by_code = {row.programme.code: row for row in results.rows}
    assert set(by_code) == {"HT5", "YL5"}
    haitian = by_code["HT5"]
    assert (haitian.cards_sold, haitian.paying_cards, haitian.payments) == (2, 1, 2)
    assert (haitian.eligible_amount, haitian.discount, haitian.brand_amount) == (D("120.00"), D("6.00"), D("3.60"))
    assert haitian.group_cost == D("2.40")
    assert haitian.sales_per_yuan == D("20.00")
    yili = by_code["YL5"]
    assert (yili.cards_sold, yili.paying_cards, yili.payments, yili.discount, yili.group_cost) == (
        0, 1, 1, D("3.00"), D("0.00"))
    total = results.total
    assert (total.cards_sold, total.paying_cards, total.payments) == (2, 2, 3)
    assert (total.eligible_amount, total.discount, total.brand_amount) == (D("180.00"), D("9.00"), D("6.60"))


def test_a_programme_without_discount_has_no_sales_per_yuan():
    assert ProgrammeResult(programme=None).sales_per_yuan is None
    assert ProgrammeResult(programme=None, eligible_amount=D("10.00"), discount=D("-1.00")).sales_per_yuan is None
    assert ProgrammeResult(programme=None, eligible_amount=D("10.00"), discount=D("3.00")).sales_per_yuan == D("3.33")


def test_results_list_programmes_that_ran_in_the_period_only(programme, programme_owner, card_rules, brand):
    product = programme.product
    make_programme("OLD", product, programme_owner, starts_on=date(2024, 1, 1), ends_on=date(2024, 12, 31),
                   status=BrandProgramme.Status.ENDED)
    make_programme("LATER", product, programme_owner, starts_on=date(2025, 4, 1))
    make_programme("DRAFT", product, programme_owner, status=BrandProgramme.Status.DRAFT)
    make_programme("REJECTED", product, programme_owner, status=BrandProgramme.Status.REJECTED)
    ended_early = make_programme("STOPPED", product, programme_owner, status=BrandProgramme.Status.ENDED)
    BrandProgramme.objects.filter(pk=ended_early.pk).update(ended_at=at(date(2025, 2, 27)))
    make_programme("LASTDAY", product, programme_owner, starts_on=date(2025, 3, 31))

    results = programme_results(starts_on=date(2025, 3, 1), ends_on=date(2025, 3, 31))

    assert [row.programme.code for row in results.rows] == ["HT5", "LASTDAY"]
    assert results.rows[0] == ProgrammeResult(programme=programme)


def test_results_of_one_brand_leave_the_others_out(march, brand):
    results = programme_results(starts_on=date(2025, 3, 1), ends_on=date(2025, 3, 31), brand=brand)

    assert [row.programme.code for row in results.rows] == ["HT5"]
    assert results.total.brand_amount == D("3.60")


def test_results_page_and_excel(client, hq_finance, march, sold_cards):
    client.force_login(hq_finance)

    page = client.get(PAGE, {"report": "results", **MARCH})
    response = client.get(PAGE, {"report": "results", **MARCH, "export": "xlsx"})

    assert page.status_code == 200
    assert [row.programme.code for row in page.context["results"].rows] == ["HT5", "YL5"]
    assert "20.00" in page.content.decode()
    assert response["Content-Disposition"] == 'attachment; filename="brand-programme-results-20250301-20250331.xlsx"'
    values = list(workbook(response).active.values)
    header_at = next(index for index, row in enumerate(values) if row and row[0] == "programme")
    header = values[header_at]
    assert header[9:] == ("cards sold", "paying cards", "payments", "eligible sales", "discount",
                          "funded by the brand", "cost to the group", "sales per yuan of discount")
    haitian = values[header_at + 1]
    assert haitian[0] == "HT5" and haitian[2] == "海天味业"
    assert haitian[9:12] == (2, 1, 2)
    assert [money(cell) for cell in haitian[12:]] == [D("120.00"), D("6.00"), D("3.60"), D("2.40"), D("20.00")]
    total = values[header_at + 3]
    assert total[0] == "Total" and money(total[14]) == D("6.60")


def test_results_page_opens_on_last_month(client, hq_finance):
    client.force_login(hq_finance)

    page = client.get(PAGE, {"report": "results"})

    assert page.status_code == 200
    results = page.context["results"]
    assert (results.starts_on, results.ends_on) == previous_month()


def test_results_with_a_bad_period_show_the_error(client, hq_finance):
    client.force_login(hq_finance)

    page = client.get(PAGE, {"report": "results", "starts_on": "2025-03-31", "ends_on": "2025-03-01",
                             "export": "xlsx"})

    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    assert "The period cannot end before it starts." in page.context["form"].errors["ends_on"]


# --- the discount rows in the admin -------------------------------------------------------------------------------


def test_finance_lists_filters_and_searches_discount_rows(client, hq_finance, march, brand, other_brand):
    client.force_login(hq_finance)

    everything = client.get(LIST)
    of_brand = client.get(LIST, {"brand__id__exact": brand.pk, "kind": "refund"})
    by_transaction = client.get(LIST, {"q": march["other"].transaction.transaction_id})
    by_day = client.get(LIST, {"business_date__gte": "2025-03-31", "business_date__lt": "2025-04-01"})

    assert everything.status_code == 200
    assert everything.context["cl"].result_count == 6
    assert [row.pk for row in of_brand.context["cl"].result_list] == [march["refund"].pk]
    assert [row.pk for row in by_transaction.context["cl"].result_list] == [march["other"].pk]
    assert {row.pk for row in by_day.context["cl"].result_list} == {march["last"].pk, march["refund"].pk}
    assert client.get(f"{LIST}{march['first'].pk}/change/").status_code == 200


def test_discount_rows_cannot_be_added_changed_or_deleted(client, hq_admin, march):
    client.force_login(hq_admin)
    row = march["first"]

    assert client.get(f"{LIST}add/").status_code == 403
    assert client.post(f"{LIST}{row.pk}/change/", {"discount": "0.00"}).status_code == 403
    assert client.post(f"{LIST}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    row.refresh_from_db()
    assert row.discount == D("5.00")


def test_discount_rows_export_to_excel_follows_the_filters(client, hq_finance, march, other_brand):
    client.force_login(hq_finance)

    response = client.get(f"{LIST}export/", {"brand__id__exact": other_brand.pk})

    assert response.status_code == 200
    values = list(workbook(response).active.values)
    assert values[0] == ("time", "business date", "brand partner", "programme", "kind", "card number", "store",
                         "transaction id", "receipt number", "eligible sales", "discount", "funded by the brand")
    assert len(values) == 2
    other = march["other"]
    assert values[1][2:8] == ("YILI", "YL5", "payment", other.card.card_no, "DEPT001",
                              other.transaction.transaction_id)
    assert money(values[1][11]) == D("3.00")
