"""What `seed_demo` gives a newcomer to try (issue 18 item 6): requests of every kind waiting for `hq_approver`,
paid card sale orders (walk-in and corporate), cards with a PIN, and the README's example numbers answering."""

import re
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve
from cards.demo import showcase as card_showcase
from cards.models import Card, CardLedgerEntry, ProductionBatch, SaleOrder
from membership.demo import showcase as member_showcase
from membership.models import Member, PointsEntry

pytestmark = pytest.mark.django_db

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
WAITING = {"campaigns.coupon_template_start", "cards.batch_produce", "cards.sale_approve", "membership.points_adjust",
           "membership.member_merge_conflicting_ids"}


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", members=0, cards=0, stdout=out)
    return out.getvalue()


def _pending():
    return ApprovalRequest.objects.filter(status=ApprovalRequest.Status.PENDING)


def _state():
    return (ApprovalRequest.objects.count(), SaleOrder.objects.count(), Card.objects.count(),
            CardLedgerEntry.objects.count(), Member.objects.count(), PointsEntry.objects.count())


def test_seed_demo_leaves_a_request_of_every_kind_for_hq_approver_and_twice_adds_nothing(ledgers_balanced):
    output = seed()

    pending = _pending()
    assert set(pending.values_list("action", flat=True)) == WAITING
    assert pending.count() == len(WAITING)
    approver = User.objects.get(username="hq_approver")
    assert not pending.filter(requested_by=approver).exists()
    assert "waiting for approval now" in output
    ledgers_balanced()

    before = _state()
    again = seed()
    assert _state() == before
    assert "nothing new" in again


def test_hq_approver_approves_each_demo_request_and_the_engine_carries_it_out(ledgers_balanced):
    seed()
    approver = User.objects.get(username="hq_approver")
    requests = {request.action: request for request in _pending()}
    readme = member_showcase.showcase_member(member_showcase.README_MEMBER["key"])
    points_before = readme.points

    for request in requests.values():
        decided = approval_request_approve(approval_request=request, approver=approver, comment="演示审批")
        assert decided.status == ApprovalRequest.Status.APPROVED

    batch = ProductionBatch.objects.get(note=card_showcase.BATCH_NOTE)
    assert batch.first_card_no and Card.objects.filter(batch=batch).count() == 200
    order = SaleOrder.objects.get(note=card_showcase.GROUP_PENDING_NOTE)
    assert order.status == SaleOrder.Status.APPROVED
    readme.refresh_from_db()
    assert readme.points == points_before + member_showcase.POINTS_ADJUSTMENT
    merged = member_showcase.showcase_member(member_showcase.MERGE_PAIR[1]["key"])
    assert merged is not None  # its identity moved to the survivor with the merge
    assert Member.objects.filter(name="王建国", phone=member_showcase.MERGE_PHONE,
                                 status=Member.Status.MERGED).count() == 1
    assert not _pending().exists()
    ledgers_balanced()


def test_demo_card_sale_orders_walk_in_and_corporate_are_paid_and_the_walk_in_cards_have_a_pin():
    seed()

    walk_in = SaleOrder.objects.get(note=card_showcase.WALK_IN_NOTE)
    group = SaleOrder.objects.get(note=card_showcase.GROUP_PAID_NOTE)
    assert (walk_in.channel, walk_in.status, walk_in.buyer_type) == ("walk_in", "completed", "person")
    assert (group.channel, group.status, group.buyer_type) == ("group", "completed", "company")
    assert {payment.method for payment in walk_in.payments.all()} == {"wechat"}
    assert {payment.method for payment in group.payments.all()} == {"bank_transfer"}
    sold = Card.objects.filter(card_no__in=card_showcase.showcase_card_range(card_showcase.GROUP_PAID_CARDS))
    assert {(card.status, card.balance) for card in sold} == {("active", Decimal("1000.00"))}
    with_pin = Card.objects.exclude(pin_hash="")
    assert set(with_pin.values_list("card_no", flat=True)) == set(
        card_showcase.showcase_card_range(card_showcase.WALK_IN_CARDS))
    assert {(card.status, card.balance) for card in with_pin} == {("active", Decimal("500.00"))}


def test_the_readme_example_phone_member_card_and_pin_card_answer_through_the_api(api):
    seed()
    phones = set(re.findall(r"members/lookup\?phone=(\d{11})", README))
    member_cards = set(re.findall(r"\?card_no=(\d+)", README))
    cards = set(re.findall(r"/api/v1/cards/(\d{16})", README))
    pins = set(re.findall(r'"pin": "(\d{6})"', README))
    assert phones and member_cards and cards and pins == {card_showcase.DEMO_PIN}
    assert card_showcase.DEMO_PIN in README and member_showcase.README_PHONE in phones

    readme = member_showcase.showcase_member(member_showcase.README_MEMBER["key"])
    assert readme.points > 0  # her two purchases at DEPT001
    for query in [f"phone={phone}" for phone in phones] + [f"card_no={card_no}" for card_no in member_cards]:
        answer = api.get(f"/api/v1/members/lookup?{query}")
        assert answer.status_code == 200, answer.content
        found = answer.json()["results"]
        assert [(row["member_no"], row["name_masked"]) for row in found] == [(readme.member_no, "张**")], query
    for card_no in cards:
        answer = api.get(f"/api/v1/cards/{card_no}")
        assert answer.status_code == 200, answer.content
        assert answer.json()["status"] == "active"

    # the README's debit with the PIN pays; without it the card refuses
    card_no = sorted(cards)[0]
    paid = api.post(f"/api/v1/cards/{card_no}/debit", {"amount": "88.00", "receipt_no": "R0001", "pin": "135790"},
                    content_type="application/json", HTTP_IDEMPOTENCY_KEY="demo-1")
    assert paid.status_code == 201, paid.content
    assert paid.json()["balance"] == "412.00"
    refused = api.post(f"/api/v1/cards/{card_no}/debit", {"amount": "1.00", "receipt_no": "R0002"},
                       content_type="application/json", HTTP_IDEMPOTENCY_KEY="demo-2")
    assert refused.status_code == 400


def test_every_card_number_the_readme_names_exists_after_seed_demo():
    seed()
    named = set(re.findall(r"`(8697\d{12})`", README)) | set(re.findall(r"/cards/(8697\d{12})", README))
    assert named
    assert set(Card.objects.filter(card_no__in=named).values_list("card_no", flat=True)) == named
