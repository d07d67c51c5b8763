"""The prepaid-card rules may be tightened, never loosened past the law (DESIGN section 7): on the rules screen, in
the model and in the database; a lowered cap holds for every later load, and the cards above it are listed."""

import importlib
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.forms.models import model_to_dict
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from cards.errors import CardLimitExceeded
from cards.models import Card, CardLedgerEntry, CardProduct, CardRules
from cards.services.ledger import card_post
from cards.services.payments import card_debit, card_refund
from tests.cards.test_desk_sale import ID_NUMBER, _clerk, sale_form

pytestmark = pytest.mark.django_db

RULES_FIELDS = ["registered_max_balance", "bearer_max_balance", "bearer_real_name_from", "company_transfer_from",
                "person_transfer_from", "split_window_days", "group_approval_from", "bearer_min_validity_months",
                "pin_attempts", "issuer_type", "escrow_rate", "escrow_guarantee", "revenue_alert_share",
                "last_year_revenue"]
# What the audit saved on the rules screen, and more of the same: every one looser than the law allows.
AUDIT_VALUES = {
    "registered_max_balance": "8000.00", "bearer_max_balance": "3000.00", "company_transfer_from": "100000.00",
    "person_transfer_from": "1000000.00", "bearer_min_validity_months": "6", "pin_attempts": "50",
    "escrow_rate": "0.00", "bearer_real_name_from": "20000.00", "split_window_days": "1",
    "revenue_alert_share": "0.50",
}


@pytest.fixture
def hq_client(client, hq_admin):
    client.force_login(hq_admin)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def rules_url(rules: CardRules) -> str:
    return reverse("admin:cards_cardrules_change", args=[rules.pk])


def rules_form(rules: CardRules, **changes) -> dict:
    data = {name: "" if value is None else str(value) for name, value in model_to_dict(rules, RULES_FIELDS).items()}
    data.update({name: str(value) for name, value in changes.items()})
    return data


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]] if response.context else []


# --- the rules screen -----------------------------------------------------------------------------------------


def test_the_rules_screen_refuses_every_setting_looser_than_the_law(hq_client, card_rules):
    # when: the audit's settings are saved on the rules screen
    page = hq_client.post(rules_url(card_rules), rules_form(card_rules, **AUDIT_VALUES))

    # then: each field is refused and nothing is saved
    assert page.status_code == 200
    errors = page.context["adminform"].form.errors
    assert set(AUDIT_VALUES) <= set(errors)
    saved = CardRules.objects.get()
    assert (saved.registered_max_balance, saved.bearer_max_balance, saved.pin_attempts, saved.escrow_rate) == (
        Decimal("5000.00"), Decimal("1000.00"), 5, Decimal("0.30"))


@pytest.mark.parametrize(("field", "value", "words"), [
    ("registered_max_balance", "5000.01", "5000"),
    ("bearer_max_balance", "1000.01", "1000"),
    ("bearer_real_name_from", "10000.01", "10000"),
    ("company_transfer_from", "5000.01", "5000"),
    ("person_transfer_from", "50000.01", "50000"),
    ("bearer_min_validity_months", "35", "36"),
    ("pin_attempts", "6", "5"),
    ("revenue_alert_share", "0.41", "0.4"),
    ("split_window_days", "6", "7"),
])
def test_one_step_past_each_legal_figure_is_refused_naming_it(hq_client, card_rules, field, value, words):
    page = hq_client.post(rules_url(card_rules), rules_form(card_rules, **{field: value}))

    assert list(page.context["adminform"].form.errors) == [field]
    assert words in " ".join(page.context["adminform"].form.errors[field])


def test_the_rules_screen_saves_settings_stricter_than_the_law(hq_client, card_rules):
    stricter = {"registered_max_balance": "3000.00", "bearer_max_balance": "500.00",
                "bearer_real_name_from": "8000.00", "company_transfer_from": "2000.00",
                "person_transfer_from": "20000.00", "bearer_min_validity_months": "48", "pin_attempts": "3",
                "escrow_rate": "0.50", "split_window_days": "30", "revenue_alert_share": "0.30"}

    response = hq_client.post(rules_url(card_rules), rules_form(card_rules, **stricter))

    assert response.status_code == 302
    saved = CardRules.objects.get()
    assert {name: str(getattr(saved, name)) for name in stricter} == stricter


@pytest.mark.parametrize(("issuer_type", "refused", "allowed"), [
    ("group", "0.29", "0.30"), ("scale", "0.19", "0.20"), ("brand", "0.39", "0.40"),
])
def test_escrow_is_at_least_the_issuer_types_share(hq_client, card_rules, issuer_type, refused, allowed):
    below = hq_client.post(rules_url(card_rules), rules_form(card_rules, issuer_type=issuer_type,
                                                             escrow_rate=refused))
    at = hq_client.post(rules_url(card_rules), rules_form(card_rules, issuer_type=issuer_type, escrow_rate=allowed))

    assert "escrow_rate" in below.context["adminform"].form.errors
    assert at.status_code == 302
    assert (CardRules.objects.get().issuer_type, CardRules.objects.get().escrow_rate) == (issuer_type,
                                                                                          Decimal(allowed))


# --- the database keeps them there --------------------------------------------------------------------------------


@pytest.mark.parametrize("changes", [
    {"registered_max_balance": Decimal("8000.00")}, {"bearer_max_balance": Decimal("3000.00")},
    {"bearer_real_name_from": Decimal("20000.00")}, {"company_transfer_from": Decimal("100000.00")},
    {"person_transfer_from": Decimal("1000000.00")}, {"bearer_min_validity_months": 6}, {"pin_attempts": 50},
    {"escrow_rate": Decimal("0.00")}, {"issuer_type": "brand", "escrow_rate": Decimal("0.30")},
    {"revenue_alert_share": Decimal("0.50")}, {"split_window_days": 1},
])
def test_the_database_refuses_rules_looser_than_the_law(card_rules, changes):
    with pytest.raises(IntegrityError), transaction.atomic():
        CardRules.objects.filter(pk=card_rules.pk).update(**changes)


def test_the_database_refuses_a_validity_on_a_registered_product_and_a_short_one_on_a_bearer(card_rules):
    with pytest.raises(IntegrityError), transaction.atomic():
        CardProduct.objects.create(code="REG12", name="r", kind=CardProduct.Kind.REGISTERED,
                                   max_balance=Decimal("100.00"), validity_months=12)
    with pytest.raises(IntegrityError), transaction.atomic():
        CardProduct.objects.create(code="BEARER6", name="b", kind=CardProduct.Kind.BEARER,
                                   max_balance=Decimal("100.00"), validity_months=6)
    with pytest.raises(IntegrityError), transaction.atomic():
        CardProduct.objects.create(code="BEARERX", name="b", kind=CardProduct.Kind.BEARER,
                                   max_balance=Decimal("100.00"))


def test_a_product_above_its_kinds_legal_cap_is_refused_on_the_form(hq_client, card_rules):
    page = hq_client.post(reverse("admin:cards_cardproduct_add"), {
        "code": "BIG", "name": "大额记名卡", "kind": "registered", "medium": "physical", "max_balance": "8000.00",
        "face_values": "[]", "is_active": "on",
    })

    assert "max_balance" in page.context["adminform"].form.errors
    assert not CardProduct.objects.filter(code="BIG").exists()


# --- a lowered cap: no further loads, the cards above it listed ----------------------------------------------------


@pytest.fixture
def desk(client, dept001):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    client.force_login(_clerk("dept001_card_desk", stores=[dept001]))
    return client


def test_a_card_above_a_lowered_cap_takes_no_further_top_up_at_the_desk(desk, dept001, stored_product,
                                                                         card_factory, ledgers_balanced):
    # given: a card holding 4,500.00, then headquarters lowers the registered cap to 3,000.00
    card = card_factory(stored_product, balance="4500.00", store=dept001)
    CardRules.objects.update(registered_max_balance=Decimal("3000.00"))
    form = {**sale_form(""), "card_no": card.card_no, "amount": "10.00", "buyer_name": "张秀英",
            "buyer_id_number": ID_NUMBER, "buyer_phone": "13800138000", "confirm": "1"}
    del form["cards"]

    # when: the desk tops it up by 10.00
    response = desk.post(reverse("cards:top_up"), form)

    # then: refused naming the cap; the balance stays
    assert response.status_code == 422 and "Card cap" in response.content.decode()
    card.refresh_from_db()
    assert card.balance == Decimal("4500.00")
    ledgers_balanced()


def test_a_pos_refund_onto_a_card_above_a_lowered_cap_is_refused(dept001, stored_product, card_factory,
                                                                  ledgers_balanced):
    card = card_factory(stored_product, balance="4500.00", store=dept001)
    payment = card_debit(card_no=card.card_no, amount=Decimal("100.00"), receipt_no="R-1", store=dept001)
    CardRules.objects.update(registered_max_balance=Decimal("3000.00"))

    with pytest.raises(CardLimitExceeded):
        card_refund(card_no=card.card_no, amount=Decimal("10.00"), receipt_no="RF-1",
                    original_transaction_id=payment.transaction_id, store=dept001)

    card.refresh_from_db()
    assert card.balance == Decimal("4400.00")
    ledgers_balanced()


def test_lowering_a_cap_lists_the_cards_above_it_for_follow_up(hq_client, card_rules, stored_product,
                                                               bearer_product, card_factory):
    above = card_factory(stored_product, balance="4500.00")
    below = card_factory(stored_product, balance="2000.00")
    bearer = card_factory(bearer_product, balance="900.00")

    saved = hq_client.post(rules_url(card_rules), rules_form(card_rules, registered_max_balance="3000.00"),
                           follow=True)
    listing = hq_client.get(reverse("admin:cards_card_changelist"), {"above_cap": "yes"})
    export = hq_client.get(reverse("admin:cards_card_export"), {"above_cap": "yes"})

    assert any("1 card holds more than the new cap" in message for message in messages_of(saved))
    assert "?above_cap=yes" in saved.content.decode()
    assert [card.pk for card in listing.context["cl"].result_list] == [above.pk]
    rows = list(load_workbook(io.BytesIO(b"".join(export.streaming_content)), read_only=True)
                .worksheets[0].iter_rows(values_only=True))
    assert [row[0] for row in rows[1:]] == [above.card_no]
    assert {below.pk, bearer.pk}.isdisjoint(card.pk for card in listing.context["cl"].result_list)
    assert Card.objects.get(pk=above.pk).balance == Decimal("4500.00")


# --- rows written before the bounds (migration cards.0009) -------------------------------------------------------


def migrate_rows_within_law() -> None:
    from django.apps import apps

    importlib.import_module("cards.migrations.0009_legal_rules_data").forward(apps, None)


def test_the_migration_reactivates_registered_cards_marked_expired_and_clears_their_expiry(
        card_factory, stored_product, ledgers_balanced):
    # given: a registered card imported as expired whose balance was then written off, and one with an expiry
    now = timezone.now()
    written_off = card_factory(stored_product, balance="120.00", status=Card.Status.EXPIRED,
                               expires_at=now - timedelta(days=10))
    card_post(card=written_off, kind=CardLedgerEntry.Kind.EXPIRE, amount=Decimal("-120.00"), reason="write-off")
    with_expiry = card_factory(stored_product, balance="50.00", expires_at=now + timedelta(days=10))
    untouched = card_factory(stored_product, balance="10.00")

    # when
    migrate_rows_within_law()

    # then: both are active without an expiry, each with an event saying why; the write-off is named
    for card in (written_off, with_expiry):
        card.refresh_from_db()
        assert (card.status, card.expires_at) == (Card.Status.ACTIVE, None)
    event = written_off.events.get()
    assert (event.kind, event.status_from, event.status_to) == ("reactivated", "expired", "active")
    assert "never expire" in event.note and event.data["written_off"] == "120.00"
    assert with_expiry.events.get().kind == "status" and "expiry removed" in with_expiry.events.get().note
    assert not untouched.events.exists()
    ledgers_balanced()


def test_the_migration_gives_bearer_cards_sold_with_a_short_validity_three_years(card_factory, bearer_product):
    # given: bearer cards sold under a 6-month validity, one already marked expired
    activated = timezone.now() - timedelta(days=300)
    expired = card_factory(bearer_product, balance="80.00", status=Card.Status.EXPIRED, activated_at=activated,
                           expires_at=activated + timedelta(days=182))
    legal = card_factory(bearer_product, balance="80.00", activated_at=activated,
                         expires_at=activated + timedelta(days=3 * 366))

    migrate_rows_within_law()

    expired.refresh_from_db()
    assert expired.status == Card.Status.ACTIVE
    assert expired.expires_at >= activated + timedelta(days=3 * 365)
    assert expired.events.get().kind == "reactivated"
    assert not legal.events.exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_migrating_brings_rules_and_products_saved_before_the_bounds_within_the_law():
    try:
        # given: the tables as they were before the bounds, holding the audit's settings and illegal products
        before, after = [("cards", "0008_voucher_expiry_schedule")], [("cards", "0010_card_rules_legal_bounds")]
        executor = MigrationExecutor(connection)
        executor.migrate(before)
        old = executor.loader.project_state(before).apps
        old_rules = old.get_model("cards", "CardRules").objects
        old_rules.update_or_create(pk=old_rules.order_by("pk").values_list("pk", flat=True).first(), defaults={
            "registered_max_balance": Decimal("8000.00"), "bearer_max_balance": Decimal("3000.00"),
            "company_transfer_from": Decimal("100000.00"), "person_transfer_from": Decimal("1000000.00"),
            "bearer_min_validity_months": 6, "pin_attempts": 50, "escrow_rate": Decimal("0.00"),
            "bearer_real_name_from": Decimal("3000.00"), "split_window_days": 30,
        })
        products = old.get_model("cards", "CardProduct").objects
        products.create(code="REG12", name="r", kind="registered", max_balance=Decimal("8000.00"), validity_months=12)
        products.create(code="BEARER6", name="b", kind="bearer", max_balance=Decimal("3000.00"), validity_months=6)

        # when
        executor = MigrationExecutor(connection)
        executor.migrate(after)

        # then: looser settings are at the legal figure, stricter ones kept; products within the law
        rules = CardRules.objects.get()
        assert (rules.registered_max_balance, rules.bearer_max_balance, rules.company_transfer_from,
                rules.person_transfer_from, rules.bearer_min_validity_months, rules.pin_attempts, rules.escrow_rate,
                rules.issuer_type) == (Decimal("5000.00"), Decimal("1000.00"), Decimal("5000.00"),
                                       Decimal("50000.00"), 36, 5, Decimal("0.30"), "group")
        assert (rules.bearer_real_name_from, rules.split_window_days) == (Decimal("3000.00"), 30)
        assert list(CardProduct.objects.filter(code__in=["REG12", "BEARER6"]).order_by("code").values_list(
            "code", "max_balance", "validity_months")) == [("BEARER6", Decimal("1000.00"), 36),
                                                           ("REG12", Decimal("5000.00"), None)]
    finally:
        # Every app's latest migrations again, so the tests after this one find the schema they expect.
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
