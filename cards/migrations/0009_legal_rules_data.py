"""Bring rows written before the rules were bounded by the law (DESIGN section 7) within it, before 0010 adds the
CHECK constraints that keep them there.

- The rules row: each setting looser than the legal figure is set to that figure (never loosened; a setting
  already stricter stays). Escrow is raised to the group issuer's 30% if below: the issuer type is new and starts
  as group issuer (HQ sets it on the rules screen).
- Card products: registered products lose their validity; bearer products get at least 36 months (or the rules'
  longer minimum); a maximum balance above the kind's legal cap comes down to it.
- Registered cards never expire: their expiry is cleared, and one marked expired (a legacy import let that in) is
  active again. Bearer cards sold with less than 3 years' validity are valid 3 years from activation; one already
  marked expired within those 3 years is active again. Each card changed gets a card event saying why; a balance
  written off meanwhile is named in it, to be restored by an approved adjustment.

The figures are written out here rather than imported, so the migration does the same whatever the code says later.
"""

import calendar
from datetime import timedelta
from decimal import Decimal

from django.db import migrations
from django.db.models import Q
from django.utils import timezone

REGISTERED_CAP = Decimal("5000.00")
BEARER_CAP = Decimal("1000.00")
UPPER_BOUNDS = {  # field: the most the law allows
    "registered_max_balance": REGISTERED_CAP,
    "bearer_max_balance": BEARER_CAP,
    "bearer_real_name_from": Decimal("10000.00"),
    "company_transfer_from": Decimal("5000.00"),
    "person_transfer_from": Decimal("50000.00"),
    "revenue_alert_share": Decimal("0.40"),
}
LOWER_BOUNDS = {  # field: the least allowed
    "bearer_min_validity_months": 36,
    "split_window_days": 7,
    "escrow_rate": Decimal("0.30"),
}
MAX_PIN_ATTEMPTS = 5
BEARER_MONTHS = 36
# 36 months are 1,095 or 1,096 days: any expiry this close to the activation is checked month by month.
BEARER_DAYS_AT_MOST = 1097
BATCH = 2000


def _months_add(moment, months: int):
    local = timezone.localtime(moment)
    index = local.month - 1 + months
    year, month = local.year + index // 12, index % 12 + 1
    return local.replace(year=year, month=month, day=min(local.day, calendar.monthrange(year, month)[1]))


def _rules_within_law(CardRules) -> int:
    rules_months = BEARER_MONTHS
    for rules in CardRules.objects.all():
        changed = []
        for name, most in UPPER_BOUNDS.items():
            value = getattr(rules, name)
            if value > most:
                setattr(rules, name, most)
                changed.append(name)
            elif value <= 0:
                # Zero meant "always" (every order, every balance): the smallest amount keeps that meaning.
                setattr(rules, name, Decimal("0.01"))
                changed.append(name)
        for name, least in LOWER_BOUNDS.items():
            if getattr(rules, name) < least:
                setattr(rules, name, least)
                changed.append(name)
        if rules.escrow_rate > 1:
            rules.escrow_rate = Decimal("1.00")
            changed.append("escrow_rate")
        if not 1 <= rules.pin_attempts <= MAX_PIN_ATTEMPTS:
            rules.pin_attempts = min(max(rules.pin_attempts, 1), MAX_PIN_ATTEMPTS)
            changed.append("pin_attempts")
        for name in ("escrow_guarantee", "last_year_revenue"):
            if getattr(rules, name) < 0:
                setattr(rules, name, Decimal("0.00"))
                changed.append(name)
        if changed:
            rules.save(update_fields=changed)
        rules_months = max(rules_months, rules.bearer_min_validity_months)
    return rules_months


def _products_within_law(CardProduct, bearer_months: int) -> None:
    CardProduct.objects.filter(kind="registered", validity_months__isnull=False).update(validity_months=None)
    CardProduct.objects.filter(kind="bearer", validity_months__isnull=True).update(validity_months=bearer_months)
    CardProduct.objects.filter(kind="bearer", validity_months__lt=bearer_months).update(validity_months=bearer_months)
    CardProduct.objects.filter(kind="registered", max_balance__gt=REGISTERED_CAP).update(max_balance=REGISTERED_CAP)
    CardProduct.objects.filter(kind="bearer", max_balance__gt=BEARER_CAP).update(max_balance=BEARER_CAP)


def _event(CardEvent, card, *, status_to: str, note: str, data: dict):
    return CardEvent(card_id=card.pk, kind="reactivated" if status_to != card.status else "status",
                     status_from=card.status, status_to=status_to, note=note[:200], data=data)


def _written_off(CardLedgerEntry, card_ids) -> dict:
    totals = {}
    for card_id, amount in CardLedgerEntry.objects.filter(card_id__in=card_ids, kind="expire").values_list(
            "card_id", "amount"):
        totals[card_id] = totals.get(card_id, Decimal("0.00")) - amount
    return totals


def _registered_cards_without_expiry(Card, CardEvent, CardLedgerEntry, now) -> None:
    cards = Card.objects.filter(Q(expires_at__isnull=False) | Q(status="expired"),
                                product__kind="registered").order_by("pk")
    last = 0
    while batch := list(cards.filter(pk__gt=last).only("pk", "status", "expires_at")[:BATCH]):
        last = batch[-1].pk
        written_off = _written_off(CardLedgerEntry, [card.pk for card in batch])
        events = []
        for card in batch:
            status = "active" if card.status == "expired" else card.status
            data = {"expires_at": card.expires_at.isoformat() if card.expires_at else None,
                    "rule": "registered cards have no expiry", "migration": "cards.0009"}
            note = "Registered cards never expire (prepaid card rules): expiry removed"
            if status != card.status:
                note += "; the card is active again"
            if card.pk in written_off:
                data["written_off"] = str(written_off[card.pk])
                note += f"; {written_off[card.pk]} written off earlier is to be restored by an approved adjustment"
            events.append(_event(CardEvent, card, status_to=status, note=note, data=data))
            Card.objects.filter(pk=card.pk).update(status=status, expires_at=None, updated_at=now)
        CardEvent.objects.bulk_create(events)


def _bearer_cards_valid_three_years(Card, CardEvent, CardLedgerEntry, now) -> None:
    cards = Card.objects.filter(
        product__kind="bearer", activated_at__isnull=False, expires_at__isnull=False,
        status__in=["active", "frozen", "expired"],
    ).order_by("pk")
    last = 0
    while batch := list(cards.filter(pk__gt=last).only("pk", "status", "activated_at", "expires_at")[:BATCH]):
        last = batch[-1].pk
        short = [card for card in batch if card.expires_at - card.activated_at < timedelta(days=BEARER_DAYS_AT_MOST)
                 and card.expires_at < _months_add(card.activated_at, BEARER_MONTHS)]
        written_off = _written_off(CardLedgerEntry, [card.pk for card in short])
        events = []
        for card in short:
            expires_at = _months_add(card.activated_at, BEARER_MONTHS)
            status = "active" if card.status == "expired" and expires_at > now else card.status
            data = {"expired_at": card.expires_at.isoformat(), "expires_at": expires_at.isoformat(),
                    "rule": "bearer cards are valid at least 3 years", "migration": "cards.0009"}
            note = "Bearer cards are valid at least 3 years (prepaid card rules): validity extended"
            if status != card.status:
                note += "; the card is active again"
            if card.pk in written_off:
                data["written_off"] = str(written_off[card.pk])
                note += f"; {written_off[card.pk]} written off earlier is to be restored by an approved adjustment"
            events.append(_event(CardEvent, card, status_to=status, note=note, data=data))
            Card.objects.filter(pk=card.pk).update(status=status, expires_at=expires_at, updated_at=now)
        CardEvent.objects.bulk_create(events)


def forward(apps, schema_editor):
    now = timezone.now()
    bearer_months = _rules_within_law(apps.get_model("cards", "CardRules"))
    _products_within_law(apps.get_model("cards", "CardProduct"), bearer_months)
    Card, CardEvent, CardLedgerEntry = (apps.get_model("cards", name) for name in ("Card", "CardEvent",
                                                                                   "CardLedgerEntry"))
    _registered_cards_without_expiry(Card, CardEvent, CardLedgerEntry, now)
    _bearer_cards_valid_three_years(Card, CardEvent, CardLedgerEntry, now)


class Migration(migrations.Migration):
    dependencies = [("cards", "0008_voucher_expiry_schedule")]

    # Nothing to undo: the rows stay within the law whichever code runs.
    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]
