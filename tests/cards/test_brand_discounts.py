"""The brand-card discount at the POS (cards.services.brand_discounts) and the brand's share given back."""

import itertools
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from cards import discounts
from cards.demo.brands import seed_brand_demo
from cards.errors import BrandLinesAboveAmount, CardInvalid
from cards.models import (
    Brand,
    BrandDiscount,
    BrandProgramme,
    BrandSku,
    BrandSkuList,
    Card,
    CardLedgerEntry,
    CardProduct,
    CardTransaction,
)
from cards.services.brand_discounts import sku_list_in_force
from cards.services.payments import card_debit, card_refund, card_transaction_reverse
from stores.models import Store
from stores.services import terminal_create
from tests.cards.conftest import make_card
from tests.membership.conftest import concurrently

D = Decimal
LISTED = [f"69000000000{n:02d}" for n in range(1, 11)]  # 6900000000001 .. 6900000000010
OTHER = "6920000000017"
_keys = itertools.count(1)


# --- fixtures ----------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _brand_hook_registered():
    assert "brand_cards" in discounts.registered()


@pytest.fixture
def programme_owner(db) -> User:
    return User.objects.create_user(username="brand_ops", password="pw-for-tests-123", is_staff=True)


@pytest.fixture
def brand(db) -> Brand:
    return Brand.objects.create(code="HAITIAN", name="海天味业", billing_name="佛山市海天调味食品股份有限公司")


@pytest.fixture
def brand_product(card_rules, brand) -> CardProduct:
    return CardProduct.objects.create(
        code="HAITIAN", name="海天联名卡", kind=CardProduct.Kind.REGISTERED, reloadable=True,
        max_balance=D("5000.00"), face_values=["100.00", "500.00"], brand=brand,
    )


def sku_list(programme, skus, *, valid_from=None, confirmed=True, user=None, confirmed_at=None) -> BrandSkuList:
    user = user or programme.created_by
    listed = BrandSkuList.objects.create(
        programme=programme, valid_from=valid_from or programme.starts_on, sku_count=len(skus), created_by=user,
        confirmed_at=(confirmed_at or timezone.now()) if confirmed else None, confirmed_by=user if confirmed else None,
    )
    BrandSku.objects.bulk_create([BrandSku(sku_list=listed, sku=sku) for sku in skus])
    return listed


@pytest.fixture
def make_programme(brand, brand_product, programme_owner):
    """An ACTIVE programme of the brand card (5%, 60% funded by the brand) with a confirmed list of LISTED."""

    def make(skus=LISTED, **fields) -> BrandProgramme:
        values = {
            "code": f"P{BrandProgramme.objects.count() + 1}", "name": "海天联名卡 95折", "brand": brand,
            "product": brand_product, "discount_rate": D("0.0500"), "brand_share": D("0.6000"),
            "starts_on": timezone.localdate() - timedelta(days=30), "status": BrandProgramme.Status.ACTIVE,
            "created_by": programme_owner, **fields,
        }
        programme = BrandProgramme.objects.create(**values)
        if skus is not None:
            sku_list(programme, skus)
        return programme

    return make


@pytest.fixture
def programme(make_programme) -> BrandProgramme:
    return make_programme()


@pytest.fixture
def brand_card(brand_product, super001) -> Card:
    return make_card(brand_product, balance="500.00", store=super001)


@pytest.fixture
def shop(super001) -> Store:
    return Store.objects.select_related("format").get(pk=super001.pk)


def line(sku, amount, quantity="1"):
    return {"sku": sku, "amount": amount, "quantity": quantity}


def pay(card, amount, lines, store, receipt_no="R-1") -> CardTransaction:
    return card_debit(card_no=card.card_no, amount=D(amount), receipt_no=receipt_no, store=store, lines=lines)


def refund(card, payment, amount, store, receipt_no="RF-1") -> CardTransaction:
    return card_refund(card_no=card.card_no, amount=D(amount), receipt_no=receipt_no,
                       original_transaction_id=payment.transaction_id, store=store)


def balance(card) -> Decimal:
    return Card.objects.values_list("balance", flat=True).get(pk=card.pk)


def row_of(record) -> BrandDiscount:
    return BrandDiscount.objects.get(transaction=record)


def totals(**filters) -> tuple[Decimal, Decimal, Decimal]:
    found = BrandDiscount.objects.filter(**filters).aggregate(
        eligible=Sum("eligible_amount"), discount=Sum("discount"), brand=Sum("brand_amount"))
    return tuple(D(str(found[name] or 0)).quantize(D("0.01")) for name in ("eligible", "discount", "brand"))


# --- the discount of a payment -----------------------------------------------------------------------------


def test_listed_goods_get_the_rate_and_the_brand_is_billed_its_share(programme, brand_card, shop):
    # given a 5% programme, 60% funded by the brand; when 100.00 of listed goods and 50.00 of others are paid
    record = pay(brand_card, "150.00", [line(LISTED[0], "60.00", "2"), line(OTHER, "50.00"),
                                        line(LISTED[1], "40.00")], shop)

    # then the card is charged 145.00 and the brand's statement row says 5.00, 3.00 of it the brand's
    assert (record.amount, record.discount, record.charged) == (D("150.00"), D("5.00"), D("145.00"))
    assert balance(brand_card) == D("355.00")
    assert CardLedgerEntry.objects.get(kind="debit").amount == D("-145.00")
    row = row_of(record)
    assert (row.kind, row.eligible_amount, row.discount, row.brand_amount) == ("debit", D("100.00"), D("5.00"),
                                                                               D("3.00"))
    assert (row.programme, row.brand_id, row.card_id, row.store_id) == (programme, programme.brand_id,
                                                                       brand_card.pk, shop.pk)
    assert row.business_date == record.business_date == timezone.localdate()
    assert row.lines == [
        {"sku": LISTED[0], "amount": "60.00", "quantity": "2", "discount": "3.00", "brand_amount": "1.80"},
        {"sku": LISTED[1], "amount": "40.00", "quantity": "1", "discount": "2.00", "brand_amount": "1.20"},
    ]


@pytest.mark.parametrize(("eligible", "expected"), [
    ("100.00", "5.00"), ("10.01", "0.51"), ("0.10", "0.01"), ("0.01", "0.01"), ("19.99", "1.00"),
])
def test_the_discount_is_rounded_up_to_the_fen_in_the_customers_favour(programme, brand_card, shop, eligible,
                                                                       expected):
    record = pay(brand_card, D(eligible) + D("1.00"), [line(LISTED[0], eligible), line(OTHER, "1.00")], shop)

    assert record.discount == D(expected) == row_of(record).discount


def test_the_brands_part_is_rounded_half_up(make_programme, brand_card, shop):
    make_programme(brand_share=D("0.5000"))
    record = pay(brand_card, "10.01", [line(LISTED[0], "10.01")], shop)  # discount 0.51, half of it 0.255

    assert (record.discount, row_of(record).brand_amount) == (D("0.51"), D("0.26"))


def test_the_split_over_lines_adds_up_to_the_totals_exactly(make_programme, brand_card, shop):
    make_programme(brand_share=D("0.3333"))
    lines = [line(LISTED[0], "3.33"), line(LISTED[1], "3.33"), line(LISTED[2], "3.34"), line(OTHER, "7.00")]

    record = pay(brand_card, "17.00", lines, shop)

    row = row_of(record)
    assert (row.eligible_amount, row.discount, row.brand_amount) == (D("10.00"), D("0.50"), D("0.17"))
    assert [item["discount"] for item in row.lines] == ["0.17", "0.16", "0.17"]
    assert sum(D(item["discount"]) for item in row.lines) == row.discount
    assert sum(D(item["brand_amount"]) for item in row.lines) == row.brand_amount
    assert [item["sku"] for item in row.lines] == LISTED[:3]


def test_a_basket_without_listed_goods_gets_nothing_and_records_nothing(programme, brand_card, shop):
    record = pay(brand_card, "50.00", [line(OTHER, "50.00")], shop)
    no_lines = pay(brand_card, "20.00", None, shop, receipt_no="R-2")

    assert record.discount == no_lines.discount == D("0.00")
    assert balance(brand_card) == D("430.00")
    assert not BrandDiscount.objects.exists()


def test_the_cap_per_receipt_limits_one_payment(make_programme, brand_card, shop):
    make_programme(cap_per_receipt=D("3.00"))

    record = pay(brand_card, "200.00", [line(LISTED[0], "200.00")], shop)

    assert (record.discount, record.charged) == (D("3.00"), D("197.00"))
    assert (row_of(record).discount, row_of(record).brand_amount) == (D("3.00"), D("1.80"))


def test_the_cap_per_card_counts_every_payment_of_the_card(make_programme, brand_product, brand_card, shop):
    programme = make_programme(cap_per_card=D("8.00"))
    other_card = make_card(brand_product, balance="500.00", store=shop)

    first = pay(brand_card, "100.00", [line(LISTED[0], "100.00")], shop)
    second = pay(brand_card, "100.00", [line(LISTED[0], "100.00")], shop, receipt_no="R-2")
    third = pay(brand_card, "100.00", [line(LISTED[0], "100.00")], shop, receipt_no="R-3")
    elsewhere = pay(other_card, "100.00", [line(LISTED[0], "100.00")], shop)

    assert [first.discount, second.discount, third.discount] == [D("5.00"), D("3.00"), D("0.00")]
    assert not BrandDiscount.objects.filter(transaction=third).exists()
    assert totals(programme=programme, card=brand_card)[1] == D("8.00")
    assert elsewhere.discount == D("5.00")
    assert balance(brand_card) == D("500.00") - D("292.00")


def test_what_a_refund_gives_back_frees_the_card_cap_again(make_programme, brand_card, shop):
    make_programme(cap_per_card=D("5.00"))
    first = pay(brand_card, "100.00", [line(LISTED[0], "100.00")], shop)
    refund(brand_card, first, "95.00", shop)

    again = pay(brand_card, "100.00", [line(LISTED[0], "100.00")], shop, receipt_no="R-2")

    assert again.discount == D("5.00")


@pytest.mark.parametrize("state", ["no programme", "ended", "ended by date", "not yet started", "pending", "draft",
                                   "rejected", "brand inactive", "no confirmed list", "another product"])
def test_no_programme_in_force_means_no_discount(make_programme, brand, brand_product, stored_product, super001,
                                                 shop, state):
    today = timezone.localdate()
    card_product = brand_product
    if state == "ended":
        make_programme(status=BrandProgramme.Status.ENDED, ended_at=timezone.now())
    elif state == "ended by date":
        make_programme(starts_on=today - timedelta(days=30), ends_on=today - timedelta(days=1))
    elif state == "not yet started":
        make_programme(starts_on=today + timedelta(days=1))
    elif state in ("pending", "draft", "rejected"):
        make_programme(status=state)
    elif state == "brand inactive":
        make_programme()
        Brand.objects.filter(pk=brand.pk).update(is_active=False)
    elif state == "no confirmed list":
        programme = make_programme(skus=None)
        sku_list(programme, LISTED, confirmed=False)
    elif state == "another product":
        make_programme()
        card_product = stored_product
    card = make_card(card_product, balance="200.00", store=super001)

    record = pay(card, "100.00", [line(LISTED[0], "100.00")], shop)

    assert (record.discount, record.charged) == (D("0.00"), D("100.00"))
    assert not BrandDiscount.objects.exists()


def test_a_programme_ending_today_still_gives_its_discount(make_programme, brand_card, shop):
    make_programme(ends_on=timezone.localdate())

    assert pay(brand_card, "100.00", [line(LISTED[0], "100.00")], shop).discount == D("5.00")


def test_the_sku_list_of_the_day_applies(make_programme, brand_card, shop):
    today = timezone.localdate()
    programme = make_programme(skus=None)
    sku_list(programme, [LISTED[0]], valid_from=today - timedelta(days=30))
    sku_list(programme, [LISTED[1]], valid_from=today)
    sku_list(programme, [LISTED[2]], valid_from=today + timedelta(days=1))  # not yet
    sku_list(programme, [LISTED[3]], valid_from=today, confirmed=False)  # staged, never applies
    lines = [line(sku, "10.00") for sku in LISTED[:4]]

    record = pay(brand_card, "40.00", lines, shop)

    assert [item["sku"] for item in row_of(record).lines] == [LISTED[1]]
    assert record.discount == D("0.50")


def test_the_list_in_force_is_the_latest_applying_then_the_latest_confirmed(make_programme):
    today = timezone.localdate()
    programme = make_programme(skus=None)
    old = sku_list(programme, ["A"], valid_from=today - timedelta(days=10))
    later_confirmed = sku_list(programme, ["B"], valid_from=today - timedelta(days=3),
                               confirmed_at=timezone.now())
    sku_list(programme, ["C"], valid_from=today - timedelta(days=3), confirmed_at=timezone.now() - timedelta(hours=1))
    sku_list(programme, ["D"], valid_from=today - timedelta(days=3), confirmed=False)

    assert sku_list_in_force(programme, today - timedelta(days=11)) is None
    assert sku_list_in_force(programme, today - timedelta(days=10)) == old
    assert sku_list_in_force(programme, today - timedelta(days=4)) == old
    assert sku_list_in_force(programme, today) == later_confirmed


def test_brand_lines_above_the_amount_are_refused_and_move_nothing(programme, brand_card, shop):
    with pytest.raises(BrandLinesAboveAmount) as error:
        pay(brand_card, "100.00", [line(LISTED[0], "80.00"), line(LISTED[1], "40.00")], shop)

    assert isinstance(error.value, CardInvalid) and error.value.code == "validation_error"
    assert "120.00" in error.value.fields["lines"][0] and "100.00" in error.value.fields["lines"][0]
    assert balance(brand_card) == D("500.00")
    assert not CardTransaction.objects.exists() and not BrandDiscount.objects.exists()


# --- refunds and reversals ---------------------------------------------------------------------------------


@pytest.fixture
def paid_with_discount(programme, brand_card, shop) -> CardTransaction:
    """150.00 paid, 100.00 of it listed: 5.00 off (3.00 the brand's), 145.00 charged."""
    return pay(brand_card, "150.00", [line(LISTED[0], "100.00"), line(OTHER, "50.00")], shop)


def test_two_partial_refunds_give_back_exactly_the_discount(paid_with_discount, brand_card, shop, dept001):
    first = refund(brand_card, paid_with_discount, "50.00", shop)
    second = refund(brand_card, paid_with_discount, "95.00", dept001, receipt_no="RF-2")

    # 5.00 x 50 / 145 = 1.7241 -> 1.72; then the rest
    one, two = row_of(first), row_of(second)
    assert (one.kind, one.eligible_amount, one.discount, one.brand_amount) == ("refund", D("-34.48"), D("-1.72"),
                                                                               D("-1.03"))
    assert (two.eligible_amount, two.discount, two.brand_amount) == (D("-65.52"), D("-3.28"), D("-1.97"))
    assert one.lines == two.lines == []
    assert two.store_id == dept001.pk and two.business_date == second.business_date
    assert totals(card=brand_card) == (D("0.00"), D("0.00"), D("0.00"))
    assert balance(brand_card) == D("500.00")


def test_a_refund_of_a_payment_without_discount_records_nothing(programme, brand_card, shop):
    payment = pay(brand_card, "50.00", [line(OTHER, "50.00")], shop)
    refund(brand_card, payment, "50.00", shop)

    assert not BrandDiscount.objects.exists()


def test_the_reverse_of_a_payment_gives_back_all_of_it(paid_with_discount, brand_card, shop):
    reversal = card_transaction_reverse(transaction_id=paid_with_discount.transaction_id, store=shop)

    row = row_of(reversal)
    assert (row.kind, row.eligible_amount, row.discount, row.brand_amount) == ("reverse", D("-100.00"), D("-5.00"),
                                                                               D("-3.00"))
    assert totals(card=brand_card) == (D("0.00"), D("0.00"), D("0.00"))
    assert balance(brand_card) == D("500.00")


def test_the_reverse_of_a_refund_puts_its_give_back_back(paid_with_discount, brand_card, shop):
    first = refund(brand_card, paid_with_discount, "50.00", shop)
    reversal = card_transaction_reverse(transaction_id=first.transaction_id, store=shop)

    row = row_of(reversal)
    assert (row.kind, row.eligible_amount, row.discount, row.brand_amount) == ("reverse", D("34.48"), D("1.72"),
                                                                               D("1.03"))
    assert totals(card=brand_card) == (D("100.00"), D("5.00"), D("3.00"))
    # refunded in full afterwards: exactly everything comes back
    refund(brand_card, paid_with_discount, "20.00", shop, receipt_no="RF-2")
    refund(brand_card, paid_with_discount, "125.00", shop, receipt_no="RF-3")
    assert totals(card=brand_card) == (D("0.00"), D("0.00"), D("0.00"))


def test_the_reverse_of_a_refund_without_give_back_records_nothing(programme, brand_card, shop):
    payment = pay(brand_card, "50.00", [line(OTHER, "50.00")], shop)
    first = refund(brand_card, payment, "10.00", shop)
    card_transaction_reverse(transaction_id=first.transaction_id, store=shop)

    assert not BrandDiscount.objects.exists()


def test_many_small_refunds_still_give_back_exactly_the_discount(make_programme, brand_card, shop):
    make_programme(discount_rate=D("0.0700"), brand_share=D("0.3000"))
    # Refunds in half yuan: SQLite adds the payment's `refunded` up as binary floats, which hold halves exactly.
    payment = pay(brand_card, "33.48", [line(LISTED[0], "21.11"), line(OTHER, "12.37")], shop)
    assert (payment.discount, payment.charged) == (D("1.48"), D("32.00"))  # 21.11 x 7% = 1.4777 -> 1.48

    left = payment.charged
    for step in range(6):
        refund(brand_card, payment, "4.50", shop, receipt_no=f"RF-{step}")
        left -= D("4.50")
    refund(brand_card, payment, left, shop, receipt_no="RF-last")

    assert totals(card=brand_card) == (D("0.00"), D("0.00"), D("0.00"))
    assert all(row.discount <= 0 for row in BrandDiscount.objects.filter(kind="refund"))


# --- the hook protocol ---------------------------------------------------------------------------------------


def test_discount_for_adds_programmes_up_and_records_each(monkeypatch):
    recorded = []
    monkeypatch.setattr(discounts, "_registry", {})
    discounts.register("plain", lambda **kw: D("1.00"))
    discounts.register("kept", lambda **kw: discounts.Discount(D("2.50"), record=recorded.append))

    quote = discounts.discount_for(card=None, store=None, lines=[], amount=D("10.00"))
    quote.record("the payment")

    assert quote.amount == D("3.50")
    assert recorded == ["the payment"]


def test_follow_up_reaches_programmes_that_have_one(monkeypatch):
    seen = []

    class Programme:
        def __call__(self, **kw):
            return D("0.00")

        def follow_up(self, *, transaction):
            seen.append(transaction)

    monkeypatch.setattr(discounts, "_registry", {})
    discounts.register("plain", lambda **kw: D("0.00"))
    discounts.register("with_follow_up", Programme())
    discounts.follow_up("a refund")

    assert seen == ["a refund"]


# --- through the POS API -----------------------------------------------------------------------------------


def post(client, url, body, key=None):
    return client.post(url, data=json.dumps(body), content_type="application/json",
                       HTTP_IDEMPOTENCY_KEY=key or f"key-{next(_keys)}")


@pytest.fixture
def super_till(super001) -> Client:
    _terminal, key = terminal_create(store_code="SUPER001", name="S1")
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


def test_the_pos_is_charged_the_amount_less_the_brand_discount(programme, brand_card, super_till):
    response = post(super_till, f"/api/v1/cards/{brand_card.card_no}/debit", {
        "amount": "150.00", "receipt_no": "R-1",
        "lines": [{"sku": LISTED[0], "amount": "100.00", "quantity": 4}, {"sku": OTHER, "amount": "50.00",
                                                                         "quantity": "1"}],
    })

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["amount"], body["discount"], body["balance"]) == ("150.00", "5.00", "355.00")
    assert balance(brand_card) == D("355.00")
    row = BrandDiscount.objects.get()
    assert row.transaction.transaction_id == body["transaction_id"]
    assert (row.discount, row.brand_amount) == (D("5.00"), D("5.00") * programme.brand_share)


def test_a_replayed_debit_records_one_brand_discount(programme, brand_card, super_till):
    body = {"amount": "100.00", "receipt_no": "R-1", "lines": [{"sku": LISTED[0], "amount": "100.00",
                                                                 "quantity": "1"}]}
    first = post(super_till, f"/api/v1/cards/{brand_card.card_no}/debit", body, key="pay-1")
    again = post(super_till, f"/api/v1/cards/{brand_card.card_no}/debit", body, key="pay-1")

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert BrandDiscount.objects.count() == 1 and CardTransaction.objects.count() == 1
    assert balance(brand_card) == D("405.00")


def test_the_api_names_lines_above_the_amount(programme, brand_card, super_till):
    response = post(super_till, f"/api/v1/cards/{brand_card.card_no}/debit", {
        "amount": "50.00", "receipt_no": "R-1", "lines": [{"sku": LISTED[0], "amount": "60.00", "quantity": "1"}],
    })

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error" and "lines" in error["fields"]
    assert balance(brand_card) == D("500.00") and not BrandDiscount.objects.exists()


def test_refund_and_reverse_through_the_api_give_the_share_back(programme, brand_card, super_till):
    paid = post(super_till, f"/api/v1/cards/{brand_card.card_no}/debit", {
        "amount": "150.00", "receipt_no": "R-1",
        "lines": [{"sku": LISTED[0], "amount": "100.00", "quantity": "1"}, {"sku": OTHER, "amount": "50.00",
                                                                           "quantity": "1"}],
    }).json()
    refunded = post(super_till, f"/api/v1/cards/{brand_card.card_no}/refund", {
        "amount": "50.00", "receipt_no": "RF-1", "original_transaction_id": paid["transaction_id"]})
    assert refunded.status_code == 201, refunded.content
    reversed_ = post(super_till, f"/api/v1/transactions/{refunded.json()['transaction_id']}/reverse", {})
    assert reversed_.status_code == 201, reversed_.content

    assert list(BrandDiscount.objects.order_by("pk").values_list("kind", "discount")) == [
        ("debit", D("5.00")), ("refund", D("-1.72")), ("reverse", D("1.72"))]


# --- concurrency (PostgreSQL) ------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_debits_on_one_card_never_pass_the_card_cap(make_programme, brand_card, super001,
                                                                ledgers_balanced):
    # given: a 5% programme with at most 12.00 per card, and a card holding 500.00
    make_programme(cap_per_card=D("12.00"))
    _terminal, key = terminal_create(store_code="SUPER001", name="S1")
    cache.clear()

    # when: 12 tills pay 30.00 of listed goods with it at once (1.50 each uncapped)
    def send(index):
        response = post(Client(HTTP_AUTHORIZATION=f"Bearer {key}"), f"/api/v1/cards/{brand_card.card_no}/debit", {
            "amount": "30.00", "receipt_no": f"R-{index}",
            "lines": [{"sku": LISTED[0], "amount": "30.00", "quantity": "1"}],
        }, key=f"k-{index}")
        return response.status_code, response.json()

    results = concurrently(12, send)

    # then: every payment went through, and the discounts stop exactly at the cap
    assert [status for status, _body in results] == [201] * 12
    given = sorted(D(body["discount"]) for _status, body in results)
    assert sum(given) == D("12.00")
    assert given.count(D("1.50")) == 8 and given.count(D("0.00")) == 4
    assert totals(card=brand_card)[1] == D("12.00")
    assert BrandDiscount.objects.count() == 8
    assert balance(brand_card) == D("500.00") - 12 * D("30.00") + D("12.00")
    ledgers_balanced()


# --- demo data ---------------------------------------------------------------------------------------------


def test_the_brand_demo_is_created_once_and_pays_with_discounts(reference_stores):
    first = seed_brand_demo()
    again = seed_brand_demo()

    assert (first["brand"], first["product"], first["programme"], first["skus"]) == (1, 1, 1, 300)
    assert first["cards"] == 6 and first["payments"] >= 6
    assert again == {"brand": 0, "product": 0, "programme": 0, "skus": 0, "cards": 0, "payments": 0}
    product = CardProduct.objects.get(code="BRANDDEMO")
    assert product.brand.code == "DEMOBRAND" and product.is_registered and product.reloadable
    assert product.max_balance == D("5000.00") and product.brand.billing_name and product.brand.contact_name
    programme = BrandProgramme.objects.get(code="BRANDDEMO5")
    assert (programme.status, programme.discount_rate, programme.brand_share) == ("active", D("0.0500"), D("1"))
    in_force = sku_list_in_force(programme, timezone.localdate())
    skus = set(in_force.skus.values_list("sku", flat=True))
    assert len(skus) == 300 and {"6900000000001", "6900000000300"} <= skus
    rows = BrandDiscount.objects.filter(programme=programme)
    assert rows.count() == first["payments"]
    assert all(row.store.code == "SUPER001" and row.discount > 0 and row.brand_amount == row.discount
               for row in rows)
    assert CardTransaction.objects.filter(card__product=product, kind="debit").count() == first["payments"]
