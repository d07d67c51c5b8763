"""Card service operations (DESIGN section 7): enquiry, loss and replacement, unfreezing, returns (退卡),
bearer-card expiry with reactivation or exchange, e-cards bound to and passed between members, and manual
balance adjustments and write-offs through approval.

Every balance change is a `card_post` in the operation's transaction and every status change a
`card_status_change` with its event: the same rules hold at the desk, in the admin and in the nightly job.
Cards are locked in one helper (`_lock_cards`), in primary-key order, so two operations on the same pair of
cards never deadlock.
"""

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from approvals import registry
from approvals.models import ApprovalRequest
from approvals.services import approval_request_submit
from cards.errors import (
    CardInvalid,
    CardLimitExceeded,
    CardNotFound,
    CardOperationRefused,
    CardRuleBroken,
    CardStatusChangeRefused,
    HolderMismatch,
    InsufficientBalance,
)
from cards.models import Card, CardEvent, CardLedgerEntry, CardProduct, CardReturn, CardRules, SaleOrder
from cards.models.products import LEGAL_BEARER_MIN_VALIDITY_MONTHS
from cards.services.ledger import card_cap, card_event, card_no_clean, card_post, card_status_change, money_clean
from core.dates import moment_months_add
from core.pii import InvalidPersonalData, mask_id_number, pii_encrypt
from core.sql import keyset_chunks
from membership.models import Member
from membership.services.members import LIVE_STATUSES, id_document_parse

__all__ = [
    "CARD_ADJUST",
    "CARD_RETURN",
    "CARD_WRITE_OFF",
    "CardEnquiry",
    "HolderMismatch",
    "card_adjust_request",
    "card_balance_enquiry",
    "card_exchange",
    "card_reactivate",
    "card_replace",
    "card_report_lost",
    "card_return_request",
    "card_unfreeze",
    "card_write_off_request",
    "cards_expire",
    "ecard_bind",
    "ecard_transfer",
]

logger = logging.getLogger(__name__)

CARD_RETURN = "cards.card_return"
CARD_ADJUST = "cards.card_adjust"
CARD_WRITE_OFF = "cards.balance_write_off"
ENQUIRY_ENTRIES = 10
_BANK_ACCOUNT = re.compile(r"^[0-9]{8,30}$")
_REASON_LENGTH = CardLedgerEntry._meta.get_field("reason").max_length


# --- helpers ------------------------------------------------------------------------------------------


def _lock_cards(*card_ids: int) -> list[Card]:
    """Lock the cards (SELECT ... FOR UPDATE) in primary-key order and return them in the order asked."""
    locked = {
        card.pk: card
        for card in Card.objects.select_for_update(of=("self",)).select_related("product", "member")
        .filter(pk__in=card_ids).order_by("pk")
    }
    missing = [card_id for card_id in card_ids if card_id not in locked]
    if missing:
        raise CardNotFound(card_no=str(missing[0]))
    return [locked[card_id] for card_id in card_ids]


def _refused(reason: str) -> CardOperationRefused:
    return CardOperationRefused(reason=reason)


def _registered_only(card: Card) -> None:
    if not card.product.is_registered:
        raise CardRuleBroken(gettext(
            "Card %(card_no)s is a bearer card (不记名卡): only registered cards (记名卡) can be reported lost, "
            "replaced or returned (prepaid card rules: loss and return)."
        ) % {"card_no": card.card_no})


def _reason_clean(reason: str, *, field_name: str = "reason") -> str:
    reason = (reason or "").strip()
    if not reason:
        raise CardInvalid(fields={field_name: [gettext("Give the reason; the card's history shows it.")]})
    if len(reason) > _REASON_LENGTH:
        raise CardInvalid(fields={field_name: [
            gettext("A reason has at most %(length)s characters.") % {"length": _REASON_LENGTH}]})
    return reason


def _id_document(*, id_type: str, id_number: str):
    """The ID shown at the desk, validated (GB 11643 for resident IDs); raise CardInvalid naming the field."""
    if not (id_number or "").strip():
        raise CardInvalid(fields={"id_number": [gettext("The holder's ID number is needed for this.")]})
    if id_type and id_type not in SaleOrder.IdType.values:
        raise CardInvalid(fields={"id_type": [gettext("Unknown ID type.")]})
    try:
        return id_document_parse(id_type=id_type or SaleOrder.IdType.RESIDENT_ID, id_number=id_number)
    except InvalidPersonalData as error:
        raise CardInvalid(fields={"id_number": [str(error.message)]}) from None


def _holders(card: Card) -> list[tuple[str, str]]:
    """(name, ID digest) of the people who may act as the holder: the card's member, and the person who bought
    it unless the card has since been given to another member."""
    holders = []
    if card.member_id is not None and card.member.id_number_digest:
        holders.append((card.member.name, card.member.id_number_digest))
    if card.sale_order_id is not None and not card.events.filter(kind=CardEvent.Kind.TRANSFERRED).exists():
        order = SaleOrder.objects.filter(pk=card.sale_order_id).values("buyer_type", "buyer_name",
                                                                       "buyer_id_digest").first()
        if order and order["buyer_type"] == SaleOrder.BuyerType.PERSON and order["buyer_id_digest"]:
            holders.append((order["buyer_name"], order["buyer_id_digest"]))
    return holders


def _holder_verify(card: Card, *, holder_name: str, id_type: str, id_number: str):
    """Check the name and ID against the card's holder; return the parsed ID. Raise CardInvalid, HolderMismatch."""
    name = (holder_name or "").strip()
    if not name:
        raise CardInvalid(fields={"holder_name": [gettext("The holder's name is needed for this.")]})
    document = _id_document(id_type=id_type, id_number=id_number)
    holders = _holders(card)
    if not holders:
        raise _refused(gettext("card %(card_no)s has no holder on record whose ID could be checked.")
                       % {"card_no": card.card_no})
    if not any(name == holder_name_ and document.digest == digest for holder_name_, digest in holders):
        raise HolderMismatch(card_no=card.card_no)
    return document


def _expiry_for(product: CardProduct, *, now: datetime, rules: CardRules) -> datetime | None:
    """When a card activated or reactivated now expires: never for a registered card (the law gives it no
    expiry, whatever its product says); a bearer card at least the rules' minimum, never under 3 years."""
    if product.is_registered:
        return None
    months = max(product.validity_months or 0, rules.bearer_min_validity_months, LEGAL_BEARER_MIN_VALIDITY_MONTHS)
    return moment_months_add(timezone.localtime(now), months)


def _successor_check(old: Card, new: Card, *, store) -> None:
    """A card that takes over another's balance: unused, in stock, and at the desk's store if it is physical."""
    if new.pk == old.pk:
        raise CardInvalid(fields={"new_card_no": [gettext("Choose another card than the one being replaced.")]})
    if new.status != Card.Status.INACTIVE or new.stock_status != Card.Stock.IN_STOCK or new.balance:
        raise CardInvalid(fields={"new_card_no": [
            gettext("Card %(card_no)s is not an unused card in stock.") % {"card_no": new.card_no}]})
    if (store is not None and new.product.medium == CardProduct.Medium.PHYSICAL
            and new.location_id != store.pk):
        raise CardInvalid(fields={"new_card_no": [
            gettext("Card %(card_no)s is not held at %(store)s.") % {"card_no": new.card_no, "store": store.code}]})
    if not new.product.is_active:
        raise CardInvalid(fields={"new_card_no": [
            gettext("Product %(product)s is no longer sold.") % {"product": new.product.code}]})


def _balance_carry(*, old: Card, new: Card, store, actor, reason: str) -> Decimal:
    """Move all of old's balance onto new: transfer_out and transfer_in in one transaction, new's cap checked."""
    amount = old.balance
    if amount > 0:
        issuer = old.issuer
        card_post(card=old, kind=CardLedgerEntry.Kind.TRANSFER_OUT, amount=-amount, store=store, operator=actor,
                  legal_entity=issuer, reason=reason, cause=new)
        card_post(card=new, kind=CardLedgerEntry.Kind.TRANSFER_IN, amount=amount, store=store, operator=actor,
                  legal_entity=issuer, reason=reason, cause=old, cap=card_cap(new))
    return amount


def _successor_activate(*, old: Card, new: Card, store, actor, now, event: str, note: str) -> Card:
    rules = CardRules.current()
    return card_status_change(
        card=new, status=Card.Status.ACTIVE, event=CardEvent.Kind.ACTIVATED, store=store, actor=actor,
        note=note, data={"replaces": old.card_no, "operation": event},
        stock_status=Card.Stock.SOLD, location=None, member=old.member, holder_name=old.holder_name,
        sold_store=old.sold_store if old.sold_store_id else store, issuer=old.issuer, sale_order=old.sale_order,
        activated_at=now, expires_at=_expiry_for(new.product, now=now, rules=rules),
    )


def _card_for(card: Card) -> Card:
    return _lock_cards(card.pk)[0]


# --- enquiry ------------------------------------------------------------------------------------------


@dataclass
class CardEnquiry:
    card: Card
    balance: Decimal
    status: str
    expires_at: datetime | None
    cap: Decimal
    entries: list = field(default_factory=list)


def card_balance_enquiry(*, card_no: str, entries: int = ENQUIRY_ENTRIES) -> CardEnquiry:
    """A card's balance, status, expiry and last ledger entries, for staff. Raise CardInvalid, CardNotFound."""
    card_no = card_no_clean(card_no)
    card = Card.objects.select_related("product", "member").filter(card_no=card_no).first()
    if card is None:
        raise CardNotFound(card_no=card_no)
    rows = list(CardLedgerEntry.objects.filter(card=card).select_related("store").order_by("-created_at", "-pk")
                [:entries])
    return CardEnquiry(card=card, balance=card.balance, status=card.status, expires_at=card.expires_at,
                       cap=card_cap(card), entries=rows)


# --- loss, replacement, unfreezing ----------------------------------------------------------------------


@transaction.atomic
def card_report_lost(*, card: Card, holder_name: str, id_type: str, id_number: str, actor, store=None,
                     note: str = "") -> Card:
    """Freeze a registered card reported lost (挂失) once the holder's ID is checked.

    Raise CardRuleBroken (bearer card), CardInvalid, HolderMismatch, CardOperationRefused (not active).
    """
    card = _card_for(card)
    _registered_only(card)
    _holder_verify(card, holder_name=holder_name, id_type=id_type, id_number=id_number)
    if card.status != Card.Status.ACTIVE:
        raise _refused(gettext("card %(card_no)s is %(status)s; only an active card can be reported lost.")
                       % {"card_no": card.card_no, "status": card.get_status_display()})
    return card_status_change(card=card, status=Card.Status.FROZEN, event=CardEvent.Kind.LOST, store=store,
                              actor=actor, note=note, freeze_reason=Card.FreezeReason.LOST)


@transaction.atomic
def card_replace(*, card: Card, new_card: Card, actor, store=None, note: str = "") -> Card:
    """Replace a registered card reported lost (补卡) by an unused card, carrying its whole balance over.

    The old card is closed with `replaced_by` set; the new one is active and bound to the same holder.
    Raise CardRuleBroken (bearer card), CardOperationRefused (not reported lost), CardInvalid (new card),
    CardLimitExceeded (the new card's limit is below the balance).
    """
    old, new = _lock_cards(card.pk, new_card.pk)
    _registered_only(old)
    if old.status != Card.Status.FROZEN or old.freeze_reason != Card.FreezeReason.LOST:
        raise _refused(gettext("card %(card_no)s has not been reported lost; report it lost first.")
                       % {"card_no": old.card_no})
    _successor_check(old, new, store=store)
    if not new.product.is_registered:
        raise CardInvalid(fields={"new_card_no": [gettext(
            "A registered card is replaced by a registered card: %(card_no)s is a bearer card."
        ) % {"card_no": new.card_no}]})
    now = timezone.now()
    reason = gettext("replacement of lost card %(old)s by %(new)s") % {"old": old.card_no, "new": new.card_no}
    _successor_activate(old=old, new=new, store=store, actor=actor, now=now, event="replace", note=note or reason)
    amount = _balance_carry(old=old, new=new, store=store, actor=actor, reason=reason)
    card_status_change(card=old, status=Card.Status.CLOSED, event=CardEvent.Kind.REPLACED, store=store, actor=actor,
                       note=note or reason, data={"new_card_no": new.card_no, "amount": str(amount)},
                       replaced_by=new)
    return new


@transaction.atomic
def card_unfreeze(*, card: Card, actor, store=None, holder_name: str = "", id_type: str = "", id_number: str = "",
                  note: str = "") -> Card:
    """Make a frozen card active again: a lost card found, a card locked by wrong PINs, a card staff froze.

    A registered card's holder shows their ID; a bearer card has no holder on record, so the clerk notes
    how the card was shown. Raise CardOperationRefused (not frozen), CardInvalid, HolderMismatch.
    """
    card = _card_for(card)
    if card.status != Card.Status.FROZEN:
        raise _refused(gettext("card %(card_no)s is %(status)s, not frozen.")
                       % {"card_no": card.card_no, "status": card.get_status_display()})
    if card.product.is_registered and card.freeze_reason != Card.FreezeReason.MANUAL:
        _holder_verify(card, holder_name=holder_name, id_type=id_type, id_number=id_number)
    elif not note.strip():
        raise CardInvalid(fields={"note": [gettext("Note how the holder showed the card is theirs.")]})
    return card_status_change(card=card, status=Card.Status.ACTIVE, store=store, actor=actor,
                              note=note or gettext("unfrozen after an ID check"),
                              data={"frozen_because": card.freeze_reason}, freeze_reason=Card.FreezeReason.NONE)


# --- returns (退卡) -----------------------------------------------------------------------------------


@transaction.atomic
def card_return_request(*, card: Card, holder_name: str, id_type: str, id_number: str, bank_account_name: str,
                        bank_account_no: str, bank_name: str, reason: str, requested_by, store) -> CardReturn:
    """Ask to return a registered card (退卡): ID checked, paid out to a bank account in the holder's name once
    another person approves. Nothing moves before that.

    Raise CardRuleBroken (bearer card, account not in the holder's name), CardInvalid, HolderMismatch,
    CardOperationRefused (status, a return already pending).
    """
    card = _card_for(card)
    _registered_only(card)
    if card.status not in (Card.Status.ACTIVE, Card.Status.FROZEN):
        raise _refused(gettext("card %(card_no)s is %(status)s and cannot be returned.")
                       % {"card_no": card.card_no, "status": card.get_status_display()})
    reason = _reason_clean(reason)
    document = _holder_verify(card, holder_name=holder_name, id_type=id_type, id_number=id_number)
    holder_name = holder_name.strip()
    account_name = (bank_account_name or "").strip()
    account_no = re.sub(r"[\s-]", "", bank_account_no or "")
    bank_name = (bank_name or "").strip()
    errors = {}
    if not _BANK_ACCOUNT.match(account_no):
        errors["bank_account_no"] = [gettext("A bank account number is 8 to 30 digits.")]
    if not bank_name:
        errors["bank_name"] = [gettext("Name the bank of the account.")]
    if errors:
        raise CardInvalid(fields=errors)
    if account_name != holder_name:
        raise CardRuleBroken(gettext(
            "A returned card is paid out only to a bank account in the holder's name (prepaid card rules: "
            "return); the account is in the name of %(account)s, the holder is %(holder)s."
        ) % {"account": account_name or "-", "holder": holder_name})
    if CardReturn.objects.filter(card=card, status=CardReturn.Status.PENDING).exists():
        raise _refused(gettext("a return of card %(card_no)s is already waiting for approval.")
                       % {"card_no": card.card_no})
    card_return = CardReturn.objects.create(
        card=card, store=store, amount=card.balance, holder_name=holder_name, holder_id_type=document.id_type,
        holder_id_digest=document.digest, holder_id_sealed=pii_encrypt(document.number),
        holder_id_masked=mask_id_number(document.number), bank_account_name=account_name,
        bank_account_no=account_no, bank_name=bank_name, reason=reason, requested_by=requested_by,
    )
    approval_request_submit(
        action=CARD_RETURN, subject=card_return, requested_by=requested_by, reason=reason, amount=card.balance,
        store=store, payload={"card_id": card.pk, "card_no": card.card_no, "amount": str(card.balance),
                              "bank_account_masked": f"****{account_no[-4:]}"},
    )
    card_return.refresh_from_db()
    return card_return


def _card_return_execute(request: ApprovalRequest) -> None:
    """Pay the balance out with a `close` entry and close the card, in the approval's transaction.

    The approver approved the balance at the request: if it has changed since (a payment), the return is
    refused and the request stays pending, to be rejected and asked again.
    """
    card_return = CardReturn.objects.select_for_update().get(pk=request.object_id)
    card = _card_for(card_return.card)
    if card.balance != card_return.amount:
        raise _refused(gettext("the balance of card %(card_no)s changed from %(then)s to %(now)s since the request; "
                               "reject it and ask again.")
                       % {"card_no": card.card_no, "then": card_return.amount, "now": card.balance})
    approver = request.decided_by or request.requested_by
    if card.balance > 0:
        card_post(card=card, kind=CardLedgerEntry.Kind.CLOSE, amount=-card.balance, store=card_return.store,
                  operator=approver, legal_entity=card.issuer, cause=card_return,
                  reason=gettext("returned (退卡), paid to account ****%(last)s")
                  % {"last": card_return.bank_account_no[-4:]})
    card_status_change(card=card, status=Card.Status.CLOSED, event=CardEvent.Kind.RETURNED, store=card_return.store,
                       actor=approver, note=card_return.reason[:200],
                       data={"card_return": card_return.pk, "amount": str(card_return.amount)})
    card_return.status = CardReturn.Status.PAID
    card_return.paid_at = timezone.now()
    card_return.save(update_fields=["status", "paid_at"])


def _card_return_reject(request: ApprovalRequest) -> None:
    """Rejected or withdrawn: the card stays as it was; the return is kept, marked rejected."""
    card_return = CardReturn.objects.select_for_update().get(pk=request.object_id)
    card_return.status = CardReturn.Status.REJECTED
    card_return.save(update_fields=["status"])


# --- bearer-card expiry, reactivation, exchange -----------------------------------------------------


def cards_expire(*, now: datetime | None = None, batch_size: int = 1000) -> int:
    """Mark active bearer cards past their expiry as expired; return how many. Balances stay on the cards:
    an expired bearer card is reactivated or exchanged on request, never written off silently."""
    now = now or timezone.now()
    due = Card.objects.filter(status=Card.Status.ACTIVE, expires_at__lte=now,
                              product__kind=CardProduct.Kind.BEARER)
    expired = 0
    for ids in keyset_chunks(due, size=batch_size):
        for card in Card.objects.filter(pk__in=ids).select_related("product"):
            try:
                with transaction.atomic():
                    card_status_change(card=card, status=Card.Status.EXPIRED, event=CardEvent.Kind.EXPIRED,
                                       note=gettext("validity ended"),
                                       data={"expires_at": card.expires_at, "balance": str(card.balance)})
            except CardStatusChangeRefused:
                # Changed by someone else since it was read (frozen, closed): that change stands.
                logger.info("card %s changed while expiring; left as it is", card.card_no)
                continue
            expired += 1
    return expired


@transaction.atomic
def card_reactivate(*, card: Card, actor, store=None, note: str = "") -> Card:
    """Make an expired bearer card with a balance active again, valid at least the rules' minimum from now.

    Raise CardOperationRefused (not expired, nothing on it).
    """
    card = _card_for(card)
    _expired_with_balance(card)
    expires_at = _expiry_for(card.product, now=timezone.now(), rules=CardRules.current())
    return card_status_change(card=card, status=Card.Status.ACTIVE, event=CardEvent.Kind.REACTIVATED, store=store,
                              actor=actor, note=note, data={"expired_at": card.expires_at,
                                                            "expires_at": expires_at}, expires_at=expires_at)


def _expired_with_balance(card: Card) -> None:
    if card.status != Card.Status.EXPIRED:
        raise _refused(gettext("card %(card_no)s is %(status)s, not expired.")
                       % {"card_no": card.card_no, "status": card.get_status_display()})
    if card.balance <= 0:
        raise _refused(gettext("card %(card_no)s holds nothing.") % {"card_no": card.card_no})


@transaction.atomic
def card_exchange(*, card: Card, new_card: Card, actor, store=None, note: str = "") -> Card:
    """Exchange an expired card with a balance for an unused card, carrying the balance over.

    Raise CardOperationRefused (not expired, nothing on it), CardInvalid (new card), CardLimitExceeded.
    """
    old, new = _lock_cards(card.pk, new_card.pk)
    _expired_with_balance(old)
    _successor_check(old, new, store=store)
    if new.product.is_registered:
        raise CardInvalid(fields={"new_card_no": [gettext(
            "Card %(card_no)s is a registered card; exchange a bearer card for a bearer card."
        ) % {"card_no": new.card_no}]})
    now = timezone.now()
    reason = gettext("exchange of expired card %(old)s for %(new)s") % {"old": old.card_no, "new": new.card_no}
    _successor_activate(old=old, new=new, store=store, actor=actor, now=now, event="exchange", note=note or reason)
    amount = _balance_carry(old=old, new=new, store=store, actor=actor, reason=reason)
    card_status_change(card=old, status=Card.Status.CLOSED, event=CardEvent.Kind.EXCHANGED, store=store,
                       actor=actor, note=note or reason, data={"new_card_no": new.card_no, "amount": str(amount)},
                       replaced_by=new)
    return new


# --- e-cards ------------------------------------------------------------------------------------------


def _ecard_check(card: Card) -> None:
    if card.product.medium != CardProduct.Medium.ELECTRONIC:
        raise _refused(gettext("card %(card_no)s is a physical card; only e-cards are bound to and passed between "
                               "members.") % {"card_no": card.card_no})
    if card.status in (Card.Status.CLOSED, Card.Status.FROZEN, Card.Status.INACTIVE):
        raise _refused(gettext("card %(card_no)s is %(status)s.")
                       % {"card_no": card.card_no, "status": card.get_status_display()})


def _member_live(member: Member, field_name: str) -> Member:
    member = Member.objects.filter(pk=member.pk).first() if member is not None else None
    if member is None or member.status not in LIVE_STATUSES:
        raise CardInvalid(fields={field_name: [gettext("Choose a member whose account is open.")]})
    return member


def _member_set(card: Card, member: Member) -> None:
    # The holder is not a status: one UPDATE of the card, its event written by the caller.
    Card.objects.filter(pk=card.pk).update(member=member, holder_name=member.name, updated_at=timezone.now())
    card.member, card.holder_name = member, member.name


@transaction.atomic
def ecard_bind(*, card: Card, member: Member, actor, store=None) -> Card:
    """Bind an e-card nobody holds yet to a member. Raise CardOperationRefused, CardInvalid."""
    card = _card_for(card)
    _ecard_check(card)
    if card.member_id is not None:
        raise _refused(gettext("e-card %(card_no)s is already bound to member %(member_no)s; transfer it instead.")
                       % {"card_no": card.card_no, "member_no": card.member.member_no})
    member = _member_live(member, "member")
    _member_set(card, member)
    card_event(card=card, kind=CardEvent.Kind.BOUND, store=store, actor=actor,
               data={"member_no": member.member_no})
    return card


@transaction.atomic
def ecard_transfer(*, card: Card, to_member: Member, actor, store=None, note: str = "") -> Card:
    """Give an e-card to another member (转赠): the card and its balance go with it.

    Raise CardOperationRefused (physical card, closed or frozen, not bound), CardInvalid (member).
    """
    card = _card_for(card)
    _ecard_check(card)
    if card.member_id is None:
        raise _refused(gettext("e-card %(card_no)s is not bound to a member; bind it first.")
                       % {"card_no": card.card_no})
    to_member = _member_live(to_member, "to_member")
    if to_member.pk == card.member_id:
        raise CardInvalid(fields={"to_member": [gettext("The card already belongs to this member.")]})
    from_member_no = card.member.member_no
    _member_set(card, to_member)
    card_event(card=card, kind=CardEvent.Kind.TRANSFERRED, store=store, actor=actor, note=note,
               data={"from_member_no": from_member_no, "to_member_no": to_member.member_no})
    return card


# --- adjustments and write-offs through approval ---------------------------------------------------------


@transaction.atomic
def card_adjust_request(*, card: Card, amount, reason: str, requested_by, store=None) -> ApprovalRequest:
    """Ask for a manual balance adjustment (positive adds, negative takes away); it moves only when another
    person approves. Raise CardInvalid, CardLimitExceeded, InsufficientBalance, CardOperationRefused,
    ApprovalAlreadyPending."""
    card = _card_for(card)
    signed = _signed_money(amount)
    reason = _reason_clean(reason)
    if card.status in (Card.Status.INACTIVE, Card.Status.CLOSED):
        raise _refused(gettext("card %(card_no)s is %(status)s; its balance is not adjusted.")
                       % {"card_no": card.card_no, "status": card.get_status_display()})
    _adjust_check(card, signed)
    return approval_request_submit(
        action=CARD_ADJUST, subject=card, requested_by=requested_by, reason=reason, amount=abs(signed), store=store,
        payload={"card_id": card.pk, "card_no": card.card_no, "amount": str(signed),
                 "balance_at_request": str(card.balance), "store_id": store.pk if store is not None else None},
    )


def _signed_money(value) -> Decimal:
    """An amount with a sign (12.50 adds, -12.50 takes away); raise CardInvalid naming the field."""
    if isinstance(value, Decimal):
        negative, size = value < 0, abs(value)
    else:
        text = str(value if value is not None else "").strip()
        negative, size = text.startswith("-"), text.removeprefix("-")
    size = money_clean(size, field="amount")
    return -size if negative else size


def _adjust_check(card: Card, signed: Decimal) -> None:
    """Never below zero, never above the card's limit: checked at the request and again by card_post."""
    cap = card_cap(card)
    if card.balance + signed < 0:
        raise InsufficientBalance(card_no=card.card_no, balance=card.balance, amount=-signed)
    if card.balance + signed > cap:
        raise CardLimitExceeded(
            gettext("Card %(card_no)s may hold at most %(cap)s; it holds %(balance)s (prepaid card rules).")
            % {"card_no": card.card_no, "cap": cap, "balance": card.balance})


def _card_adjust_execute(request: ApprovalRequest) -> None:
    card = _lock_cards(int(request.payload["card_id"]))[0]
    if card.status in (Card.Status.INACTIVE, Card.Status.CLOSED):
        raise _refused(gettext("card %(card_no)s is %(status)s; its balance is not adjusted.")
                       % {"card_no": card.card_no, "status": card.get_status_display()})
    card_post(card=card, kind=CardLedgerEntry.Kind.ADJUST, amount=Decimal(request.payload["amount"]),
              store=request.store, operator=request.decided_by or request.requested_by, legal_entity=card.issuer,
              reason=request.reason, cause=request, cap=card_cap(card))


def _write_off_allowed(card: Card) -> None:
    """Only a bearer card past its expiry, with a balance, is ever written off: registered cards never expire.

    Raise CardRuleBroken (registered card), CardOperationRefused (not expired, still within its validity, nothing
    on it).
    """
    if card.product.is_registered:
        raise CardRuleBroken(gettext(
            "Card %(card_no)s is a registered card (记名卡): registered cards never expire and their balance is never "
            "written off (prepaid card rules: validity). Reactivate the card instead."
        ) % {"card_no": card.card_no})
    _expired_with_balance(card)
    if card.expires_at is not None and card.expires_at > timezone.now():
        raise _refused(gettext("card %(card_no)s is valid until %(expires_at)s; only a card past its expiry is "
                               "written off.")
                       % {"card_no": card.card_no, "expires_at": timezone.localtime(card.expires_at).date()})


@transaction.atomic
def card_write_off_request(*, card: Card, reason: str, requested_by, store=None) -> ApprovalRequest:
    """Ask to write off the balance of an expired bearer card (an `expire` entry), only ever through approval.

    Raise CardRuleBroken (a registered card), CardOperationRefused (not expired, nothing on it), CardInvalid,
    ApprovalAlreadyPending.
    """
    card = _card_for(card)
    _write_off_allowed(card)
    reason = _reason_clean(reason)
    return approval_request_submit(
        action=CARD_WRITE_OFF, subject=card, requested_by=requested_by, reason=reason, amount=card.balance,
        store=store, payload={"card_id": card.pk, "card_no": card.card_no, "amount": str(card.balance)},
    )


def _card_write_off_execute(request: ApprovalRequest) -> None:
    """Write off what the approver saw; a card reactivated or changed since is refused and left as it is."""
    card = _lock_cards(int(request.payload["card_id"]))[0]
    _write_off_allowed(card)
    amount = Decimal(request.payload["amount"])
    if card.balance != amount:
        raise _refused(gettext("the balance of card %(card_no)s changed from %(then)s to %(now)s since the request; "
                               "reject it and ask again.")
                       % {"card_no": card.card_no, "then": amount, "now": card.balance})
    approver = request.decided_by or request.requested_by
    card_post(card=card, kind=CardLedgerEntry.Kind.EXPIRE, amount=-amount, store=request.store, operator=approver,
              legal_entity=card.issuer, reason=request.reason, cause=request)
    card_event(card=card, kind=CardEvent.Kind.EXPIRED, store=request.store, actor=approver,
               note=gettext("balance written off"), data={"amount": str(amount), "approval": request.pk})


registry.register(CARD_RETURN, label=_("Card return (退卡)"), execute=_card_return_execute,
                  on_reject=_card_return_reject)
registry.register(CARD_ADJUST, label=_("Manual card balance adjustment"), execute=_card_adjust_execute)
registry.register(CARD_WRITE_OFF, label=_("Write off an expired card's balance"), execute=_card_write_off_execute)
