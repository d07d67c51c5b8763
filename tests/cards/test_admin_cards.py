"""The card admin: lists, the card page with its ledger, the service operations' forms, exports, scoping."""

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from approvals.models import ApprovalRequest
from cards.models import Card, CardLedgerEntry, CardProduct, CardReturn, CardRules, CardTransaction
from cards.services import operations
from cards.services.ledger import card_post
from stores.models import StaffProfile
from tests.cards.test_operations import HOLDER_ID, OTHER_ID, blank_card
from tests.membership.conftest import register


@pytest.fixture
def clerk(make_staff):
    return make_staff("card_ops", group="卡务运营", scope=StaffProfile.Scope.HQ)


@pytest.fixture
def holder(db):
    return register(name="李建国", phone="13800138000", id_type="resident_id", id_number=HOLDER_ID)


@pytest.fixture
def dept_card(card_factory, stored_product, holder, dept001):
    return card_factory(stored_product, balance="300.00", member=holder, holder_name=holder.name, store=dept001)


@pytest.fixture
def super_card(card_factory, stored_product, super001):
    return card_factory(stored_product, balance="50.00", store=super001)


@pytest.fixture
def ops_client(client, clerk):
    client.force_login(clerk)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"  # the messages below are asserted in English
    return client


def card_url(card) -> str:
    return reverse("admin:cards_card_change", args=[card.pk])


def operation_url(card, slug: str) -> str:
    return reverse("admin:cards_card_operation", args=[card.pk, slug])


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]] if response.context else []


def workbook_rows(response) -> list[tuple]:
    content = b"".join(response.streaming_content)
    return list(load_workbook(io.BytesIO(content), read_only=True).worksheets[0].iter_rows(values_only=True))


# --- lists, search, scoping -----------------------------------------------------------------------------


def test_the_card_list_finds_a_card_by_its_exact_number_only(ops_client, dept_card, super_card):
    listing = ops_client.get(reverse("admin:cards_card_changelist"))
    exact = ops_client.get(reverse("admin:cards_card_changelist"), {"q": dept_card.card_no})
    partial = ops_client.get(reverse("admin:cards_card_changelist"), {"q": dept_card.card_no[:-1]})

    assert listing.status_code == 200
    assert {card.pk for card in listing.context["cl"].result_list} == {dept_card.pk, super_card.pk}
    assert [card.pk for card in exact.context["cl"].result_list] == [dept_card.pk]
    assert list(partial.context["cl"].result_list) == []


def test_the_card_list_filters_by_status_product_and_store(ops_client, dept_card, super_card, dept001):
    Card.objects.filter(pk=super_card.pk).update(status=Card.Status.FROZEN)
    url = reverse("admin:cards_card_changelist")

    frozen = ops_client.get(url, {"status__exact": "frozen"})
    sold_at_dept = ops_client.get(url, {"sold_store": str(dept001.pk)})
    by_product = ops_client.get(url, {"product__id__exact": str(dept_card.product_id)})

    assert [card.pk for card in frozen.context["cl"].result_list] == [super_card.pk]
    assert [card.pk for card in sold_at_dept.context["cl"].result_list] == [dept_card.pk]
    assert len(by_product.context["cl"].result_list) == 2


def test_store_managers_see_only_their_stores_cards(client, dept001_manager, dept_card, super_card, stored_product,
                                                    dept001):
    in_stock = blank_card(stored_product, location=dept001)
    client.force_login(dept001_manager)

    listing = client.get(reverse("admin:cards_card_changelist"))

    assert {card.pk for card in listing.context["cl"].result_list} == {dept_card.pk, in_stock.pk}
    assert client.get(card_url(dept_card)).status_code == 200
    assert client.get(card_url(super_card)).status_code == 404


def test_store_managers_serve_their_cards_but_do_not_adjust_balances(client, dept001_manager, dept_card,
                                                                     super_card):
    client.force_login(dept001_manager)

    page = client.get(card_url(dept_card))

    slugs = {entry["url"].rstrip("/").rsplit("/", 1)[-1] for entry in page.context["card_operations"]}
    assert "report-lost" in slugs and "return" in slugs
    assert "adjust" not in slugs
    assert client.get(operation_url(dept_card, "report-lost")).status_code == 200
    assert client.post(operation_url(dept_card, "adjust"), {"amount": "5.00", "reason": "x"}).status_code == 403
    assert client.get(operation_url(super_card, "report-lost")).status_code == 404
    assert not ApprovalRequest.objects.exists()


def test_people_without_a_card_role_see_no_cards(client, make_staff, dept001, dept_card):
    client.force_login(make_staff("members_only", group="会员运营", stores=[dept001]))

    assert client.get(reverse("admin:cards_card_changelist")).status_code == 403
    assert client.get(card_url(dept_card)).status_code == 403
    assert client.get(operation_url(dept_card, "report-lost")).status_code == 403


# --- the card page -------------------------------------------------------------------------------------


def test_the_card_page_shows_its_ledger_payments_and_history(ops_client, dept_card, super001, clerk):
    card_post(card=dept_card, kind=CardLedgerEntry.Kind.DEBIT, amount=Decimal("-42.50"), store=super001,
              receipt_no="R-777")
    CardTransaction.objects.create(
        transaction_id="T0000000000000001", kind=CardTransaction.Kind.DEBIT, card=dept_card, amount=Decimal("42.50"),
        charged=Decimal("42.50"), balance_after=Decimal("257.50"), store=super001, receipt_no="R-777",
        business_date=timezone.localdate(),
    )
    operations.card_report_lost(card=dept_card, actor=clerk, holder_name="李建国", id_type="resident_id",
                                id_number=HOLDER_ID)

    page = ops_client.get(card_url(dept_card))

    html = page.content.decode()
    assert page.status_code == 200
    assert "-42.50" in html and "R-777" in html and "T0000000000000001" in html
    assert "reported lost" in html.lower() or "挂失" in html
    slugs = [entry["url"].rstrip("/").rsplit("/", 1)[-1] for entry in page.context["card_operations"]]
    assert "replace" in slugs and "unfreeze" in slugs and "report-lost" not in slugs


def test_the_card_page_cannot_change_or_delete_a_card(ops_client, dept_card):
    page = ops_client.post(card_url(dept_card), {"balance": "9999.00", "status": "closed"})

    assert page.status_code == 403
    assert ops_client.get(reverse("admin:cards_card_add")).status_code == 403
    assert ops_client.post(reverse("admin:cards_card_delete", args=[dept_card.pk]), {"post": "yes"}).status_code \
        == 403
    assert Card.objects.get(pk=dept_card.pk).balance == Decimal("300.00")


# --- operations through their forms ---------------------------------------------------------------------


def test_a_loss_report_through_its_form(ops_client, dept_card):
    wrong = ops_client.post(operation_url(dept_card, "report-lost"),
                            {"holder_name": "李建国", "id_type": "resident_id", "id_number": OTHER_ID})
    assert wrong.status_code == 200
    assert any("do not match" in message for message in messages_of(wrong))
    assert Card.objects.get(pk=dept_card.pk).status == Card.Status.ACTIVE

    done = ops_client.post(operation_url(dept_card, "report-lost"),
                           {"holder_name": "李建国", "id_type": "resident_id", "id_number": HOLDER_ID})

    assert done.status_code == 302 and done["Location"] == card_url(dept_card)
    assert Card.objects.get(pk=dept_card.pk).freeze_reason == Card.FreezeReason.LOST


def test_a_bearer_loss_report_through_the_form_names_the_rule(ops_client, card_factory, bearer_product):
    card = card_factory(bearer_product, balance="10.00")

    page = ops_client.post(operation_url(card, "report-lost"),
                           {"holder_name": "李建国", "id_type": "resident_id", "id_number": HOLDER_ID})

    assert page.status_code == 200
    assert any("only registered cards" in message for message in messages_of(page))


def test_an_empty_form_names_its_fields(ops_client, dept_card):
    page = ops_client.post(operation_url(dept_card, "report-lost"), {})

    assert page.status_code == 200
    assert set(page.context["form"].errors) >= {"holder_name", "id_number"}


def test_a_replacement_through_its_form_opens_the_new_card(ops_client, dept_card, stored_product, clerk,
                                                           ledgers_balanced):
    operations.card_report_lost(card=dept_card, actor=clerk, holder_name="李建国", id_type="resident_id",
                                id_number=HOLDER_ID)
    new = blank_card(stored_product)

    unknown = ops_client.post(operation_url(dept_card, "replace"), {"new_card_no": "123456789"})
    done = ops_client.post(operation_url(dept_card, "replace"), {"new_card_no": new.card_no})

    assert "new_card_no" in unknown.context["form"].errors
    assert done.status_code == 302 and done["Location"] == card_url(new)
    assert Card.objects.get(pk=new.pk).balance == Decimal("300.00")
    assert card_url(dept_card) in ops_client.get(card_url(new)).content.decode()
    assert card_url(new) in ops_client.get(card_url(dept_card)).content.decode()
    ledgers_balanced()


def test_a_return_through_its_form_waits_for_approval(ops_client, dept_card):
    page = ops_client.post(operation_url(dept_card, "return"), {
        "holder_name": "李建国", "id_type": "resident_id", "id_number": HOLDER_ID, "bank_account_name": "李建国",
        "bank_account_no": "6222021001012345678", "bank_name": "工商银行", "reason": "moving away",
    }, follow=True)

    assert any("waits for another person's approval" in message for message in messages_of(page))
    card_return = CardReturn.objects.get(card=dept_card)
    assert card_return.status == CardReturn.Status.PENDING
    assert Card.objects.get(pk=dept_card.pk).balance == Decimal("300.00")


def test_a_return_to_another_persons_account_is_refused_on_the_form(ops_client, dept_card):
    page = ops_client.post(operation_url(dept_card, "return"), {
        "holder_name": "李建国", "id_type": "resident_id", "id_number": HOLDER_ID, "bank_account_name": "王芳",
        "bank_account_no": "6222021001012345678", "bank_name": "工商银行", "reason": "moving away",
    })

    assert any("in the holder's name" in message for message in messages_of(page))
    assert not CardReturn.objects.exists()


def test_an_adjustment_through_its_form_asks_for_approval(ops_client, dept_card, clerk):
    bad = ops_client.post(operation_url(dept_card, "adjust"), {"amount": "1.234", "reason": "typo"})
    done = ops_client.post(operation_url(dept_card, "adjust"), {"amount": "-10.00", "reason": "double charge"})

    assert "amount" in bad.context["form"].errors
    assert done.status_code == 302
    approval = ApprovalRequest.objects.get(action=operations.CARD_ADJUST)
    assert (approval.status, approval.requested_by, approval.amount) == ("pending", clerk, Decimal("10.00"))
    assert Card.objects.get(pk=dept_card.pk).balance == Decimal("300.00")


def test_unfreeze_reactivate_and_exchange_through_their_forms(ops_client, card_factory, bearer_product, clerk,
                                                              dept_card):
    operations.card_report_lost(card=dept_card, actor=clerk, holder_name="李建国", id_type="resident_id",
                                id_number=HOLDER_ID)
    expired = card_factory(bearer_product, balance="80.00", status=Card.Status.EXPIRED,
                           expires_at=timezone.now() - timedelta(days=1))
    other_expired = card_factory(bearer_product, balance="20.00", status=Card.Status.EXPIRED)
    new = blank_card(bearer_product)

    ops_client.post(operation_url(dept_card, "unfreeze"),
                    {"holder_name": "李建国", "id_type": "resident_id", "id_number": HOLDER_ID})
    ops_client.post(operation_url(expired, "reactivate"), {"note": "holder asked"})
    ops_client.post(operation_url(other_expired, "exchange"), {"new_card_no": new.card_no})

    assert Card.objects.get(pk=dept_card.pk).status == Card.Status.ACTIVE
    assert Card.objects.get(pk=expired.pk).status == Card.Status.ACTIVE
    assert Card.objects.get(pk=other_expired.pk).replaced_by_id == new.pk
    assert Card.objects.get(pk=new.pk).balance == Decimal("20.00")


def test_an_e_card_is_bound_and_transferred_through_the_forms(ops_client, card_factory, card_rules, holder):
    product = CardProduct.objects.create(code="ECARD", name="电子卡", kind=CardProduct.Kind.REGISTERED,
                                         medium=CardProduct.Medium.ELECTRONIC, max_balance=Decimal("5000.00"))
    card = card_factory(product, balance="10.00")
    other = register(name="王芳", phone="13900139000")

    unknown = ops_client.post(operation_url(card, "bind"), {"member_no": "NOPE"})
    ops_client.post(operation_url(card, "bind"), {"member_no": holder.member_no})
    ops_client.post(operation_url(card, "transfer"), {"member_no": other.member_no})

    assert "member_no" in unknown.context["form"].errors
    assert Card.objects.get(pk=card.pk).member_id == other.pk


def test_a_write_off_through_its_form_asks_for_approval(ops_client, card_factory, bearer_product):
    card = card_factory(bearer_product, balance="80.00", status=Card.Status.EXPIRED)

    ops_client.post(operation_url(card, "write-off"), {"reason": "unclaimed for five years"})

    assert ApprovalRequest.objects.get(action=operations.CARD_WRITE_OFF).status == "pending"
    assert Card.objects.get(pk=card.pk).balance == Decimal("80.00")


def test_a_registered_card_marked_expired_offers_reactivation_and_no_write_off(ops_client, dept_card):
    # given: a registered card marked expired, as a legacy import once let in
    Card.objects.filter(pk=dept_card.pk).update(status=Card.Status.EXPIRED)

    page = ops_client.get(card_url(dept_card))
    refused = ops_client.post(operation_url(dept_card, "write-off"), {"reason": "unclaimed for five years"})

    offered = [operation["url"] for operation in page.context["card_operations"]]
    assert operation_url(dept_card, "reactivate") in offered and operation_url(dept_card, "write-off") not in offered
    assert any("registered cards never expire" in message for message in messages_of(refused))
    assert not ApprovalRequest.objects.filter(action=operations.CARD_WRITE_OFF).exists()
    assert Card.objects.get(pk=dept_card.pk).balance == Decimal("300.00")


def test_an_unknown_operation_is_refused(ops_client, dept_card):
    assert ops_client.get(operation_url(dept_card, "top-up-for-free")).status_code == 403


# --- ledger and other read-only records -----------------------------------------------------------------


def test_the_ledger_is_read_only_and_searchable_by_card(ops_client, dept_card, super_card):
    url = reverse("admin:cards_cardledgerentry_changelist")
    entry = dept_card.ledger_entries.get()

    found = ops_client.get(url, {"q": dept_card.card_no})
    by_card = ops_client.get(url, {"card__id__exact": str(super_card.pk)})

    assert [row.pk for row in found.context["cl"].result_list] == [entry.pk]
    assert [row.card_id for row in by_card.context["cl"].result_list] == [super_card.pk]
    assert ops_client.get(reverse("admin:cards_cardledgerentry_add")).status_code == 403
    change = ops_client.post(reverse("admin:cards_cardledgerentry_change", args=[entry.pk]), {"amount": "1.00"})
    assert change.status_code == 403


def test_the_ledger_of_a_store_manager_holds_only_their_store(client, dept001_manager, dept_card, super_card):
    client.force_login(dept001_manager)

    listing = client.get(reverse("admin:cards_cardledgerentry_changelist"))

    assert {row.card_id for row in listing.context["cl"].result_list} == {dept_card.pk}


def test_other_record_lists_open(ops_client, dept_card, clerk):
    operations.card_return_request(
        card=dept_card, holder_name="李建国", id_type="resident_id", id_number=HOLDER_ID, bank_account_name="李建国",
        bank_account_no="6222021001012345678", bank_name="工商银行", reason="moving", requested_by=clerk,
        store=dept_card.sold_store)

    for name in ("cardtransaction", "cardreturn", "cardevent"):
        assert ops_client.get(reverse(f"admin:cards_{name}_changelist")).status_code == 200
    returns = ops_client.get(reverse("admin:cards_cardreturn_changelist"))
    assert "****5678" in returns.content.decode()
    assert "6222021001012345678" not in returns.content.decode()


# --- exports --------------------------------------------------------------------------------------------


def test_the_card_export_holds_the_listed_cards(ops_client, dept_card, super_card):
    response = ops_client.get(reverse("admin:cards_card_export"), {"q": dept_card.card_no}, HTTP_ACCEPT_LANGUAGE="en")

    rows = workbook_rows(response)
    assert response["Content-Disposition"].startswith("attachment")
    assert rows[0][:3] == ("card number", "product", "status")  # headers and values by their labels
    assert rows[1][2] == dept_card.get_status_display()
    assert [row[0] for row in rows[1:]] == [dept_card.card_no]
    assert rows[1][9] == "李**"


def test_a_store_managers_export_holds_only_their_cards(client, dept001_manager, dept_card, super_card):
    client.force_login(dept001_manager)

    rows = workbook_rows(client.get(reverse("admin:cards_card_export")))

    assert [row[0] for row in rows[1:]] == [dept_card.card_no]


def test_the_ledger_export_escapes_formulas(ops_client, dept_card, dept001):
    card_post(card=dept_card, kind=CardLedgerEntry.Kind.DEBIT, amount=Decimal("-1.00"), store=dept001,
              reason='=HYPERLINK("http://x")')

    rows = workbook_rows(ops_client.get(reverse("admin:cards_cardledgerentry_export")))

    reasons = [row[-1] for row in rows[1:]]
    assert "'=HYPERLINK(\"http://x\")" in reasons
    assert all(not str(reason).startswith("=") for reason in reasons)


def test_the_list_links_to_its_export(ops_client, dept_card):
    page = ops_client.get(reverse("admin:cards_card_changelist"), {"status__exact": "active"})

    assert reverse("admin:cards_card_export") + "?status__exact=active" in page.content.decode()


def test_exports_are_refused_without_the_view_permission(client, make_staff, dept001):
    client.force_login(make_staff("members_only", group="会员运营", stores=[dept001]))

    assert client.get(reverse("admin:cards_card_export")).status_code == 403
    assert client.get(reverse("admin:cards_cardledgerentry_export")).status_code == 403


# --- products and rules -------------------------------------------------------------------------------


def test_a_product_above_the_rules_cap_is_refused_on_the_form(ops_client, card_rules):
    page = ops_client.post(reverse("admin:cards_cardproduct_add"), {
        "code": "BIGBEARER", "name": "大额不记名卡", "kind": "bearer", "medium": "physical", "max_balance": "2000.00",
        "face_values": "[]", "validity_months": "36", "is_active": "on",
    })

    assert page.status_code == 200
    assert "max_balance" in page.context["adminform"].form.errors
    assert not CardProduct.objects.filter(code="BIGBEARER").exists()


def test_a_bearer_product_needs_the_minimum_validity(ops_client, card_rules):
    page = ops_client.post(reverse("admin:cards_cardproduct_add"), {
        "code": "SHORT", "name": "短期卡", "kind": "bearer", "medium": "physical", "max_balance": "500.00",
        "face_values": '["100.00"]', "validity_months": "12", "is_active": "on",
    })

    assert "validity_months" in page.context["adminform"].form.errors


def test_a_registered_product_with_a_validity_is_refused_on_the_form(ops_client, card_rules):
    page = ops_client.post(reverse("admin:cards_cardproduct_add"), {
        "code": "REG12", "name": "一年储值卡", "kind": "registered", "medium": "physical", "max_balance": "2000.00",
        "face_values": '["100.00"]', "validity_months": "12", "is_active": "on",
    })

    assert page.status_code == 200
    assert "no expiry" in " ".join(page.context["adminform"].form.errors["validity_months"])
    assert not CardProduct.objects.filter(code="REG12").exists()


def test_a_valid_product_is_saved(ops_client, card_rules):
    page = ops_client.post(reverse("admin:cards_cardproduct_add"), {
        "code": "GIFT", "name": "礼品卡", "kind": "registered", "medium": "electronic", "max_balance": "2000.00",
        "face_values": '["100.00", "200.00"]', "is_active": "on",
    })

    assert page.status_code == 302
    assert CardProduct.objects.get(code="GIFT").face_value_list() == [Decimal("100.00"), Decimal("200.00")]


def test_the_rules_are_one_row_never_added_twice_or_deleted(ops_client, card_rules):
    listing = ops_client.get(reverse("admin:cards_cardrules_changelist"))

    assert listing.status_code == 302
    assert listing["Location"] == reverse("admin:cards_cardrules_change", args=[card_rules.pk])
    assert ops_client.get(reverse("admin:cards_cardrules_add")).status_code == 403
    assert ops_client.post(reverse("admin:cards_cardrules_delete", args=[card_rules.pk]),
                           {"post": "yes"}).status_code == 403
    assert CardRules.objects.count() == 1
    assert ops_client.get(reverse("admin:cards_cardrules_history", args=[card_rules.pk])).status_code == 200
