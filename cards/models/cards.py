from decimal import Decimal

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from cards.models.products import MONEY, CardProduct
from core.models import LedgerEntry, ledger_field


class Card(models.Model):
    """One prepaid card. `balance` is a cache of its ledger, changed only with a ledger row (DESIGN section 3)."""

    class Status(models.TextChoices):
        INACTIVE = "inactive", _("inactive")
        ACTIVE = "active", _("active")
        FROZEN = "frozen", _("frozen")
        EXPIRED = "expired", _("expired")
        CLOSED = "closed", _("closed")

    # Status changes a service may make; anything else is refused (cards.services.ledger.card_status_change).
    TRANSITIONS = {
        Status.INACTIVE: {Status.ACTIVE, Status.CLOSED},
        Status.ACTIVE: {Status.FROZEN, Status.EXPIRED, Status.CLOSED},
        Status.FROZEN: {Status.ACTIVE, Status.CLOSED},
        Status.EXPIRED: {Status.ACTIVE, Status.CLOSED},
        Status.CLOSED: set(),
    }

    class Stock(models.TextChoices):
        PRODUCED = "produced", _("produced, not yet received")
        IN_STOCK = "in_stock", _("in stock")
        IN_TRANSIT = "in_transit", _("in transit")
        SOLD = "sold", _("sold")
        VOID = "void", _("void")

    class FreezeReason(models.TextChoices):
        NONE = "", _("none")
        LOST = "lost", _("reported lost")
        PIN = "pin", _("too many wrong PINs")
        MANUAL = "manual", _("frozen by staff")

    card_no = models.CharField(_("card number"), max_length=32, unique=True)
    product = models.ForeignKey(CardProduct, on_delete=models.PROTECT, related_name="cards", verbose_name=_("product"))
    batch = models.ForeignKey(
        "cards.ProductionBatch", on_delete=models.PROTECT, null=True, blank=True, related_name="cards",
        verbose_name=_("production batch"),
    )
    face_value = models.DecimalField(_("face value"), **MONEY, null=True, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.INACTIVE)
    freeze_reason = models.CharField(
        _("frozen because"), max_length=10, choices=FreezeReason.choices, default=FreezeReason.NONE, blank=True
    )
    balance = models.DecimalField(_("balance"), **MONEY, default=Decimal("0.00"))
    stock_status = models.CharField(_("stock status"), max_length=12, choices=Stock.choices, default=Stock.IN_STOCK)
    location = models.ForeignKey(
        "stores.Store", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("held at"), help_text=_("The store holding the unsold card; empty is headquarters' stock."),
    )
    pin_hash = models.CharField(_("PIN hash"), max_length=64, blank=True, editable=False)
    pin_failures = models.PositiveSmallIntegerField(_("wrong PINs in a row"), default=0, editable=False)
    member = models.ForeignKey(
        "membership.Member", on_delete=models.PROTECT, null=True, blank=True, related_name="prepaid_cards",
        verbose_name=_("holder (member)"), help_text=_("Registered cards and e-cards are bound to a member."),
    )
    holder_name = models.CharField(_("holder name"), max_length=100, blank=True)
    sold_store = models.ForeignKey(
        "stores.Store", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("sold at"), db_index=False,
    )
    issuer = models.ForeignKey(
        "stores.LegalEntity", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("issuer"), db_index=False,
        help_text=_("The company that sold the card and holds its money, for settlement between formats."),
    )
    sale_order = models.ForeignKey(
        "cards.SaleOrder", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("sale order"), db_index=False,
    )
    activated_at = models.DateTimeField(_("activated at"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    replaced_by = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="replaces",
        verbose_name=_("replaced by"), db_index=False,
    )
    legacy_source = models.CharField(_("legacy source"), max_length=50, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("card")
        verbose_name_plural = _("cards")
        ordering = ["card_no"]
        indexes = [
            models.Index(fields=["batch", "card_no"], name="card_batch_no"),
            models.Index(fields=["location", "stock_status", "product"], name="card_stock"),
            models.Index(fields=["status", "expires_at"], name="card_status_expiry"),
            models.Index(fields=["sold_store", "card_no"], name="card_sold_store"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(balance__gte=0), name="card_balance_not_negative"),
        ]
        permissions = [
            ("sell_card", _("Can sell cards at the service desk")),
            ("serve_card", _("Can report cards lost, replace and top them up")),
            ("receive_card_stock", _("Can receive and send card stock")),
            ("download_printer_file", _("Can download a production batch's printer file")),
            ("approve_card_production", _("Can approve card production batches")),
            ("approve_card_sale", _("Can approve large or discounted card sales")),
            ("approve_card_return", _("Can approve card returns (退卡)")),
            ("approve_card_adjustment", _("Can approve manual card balance adjustments")),
        ]

    def __str__(self) -> str:
        return self.card_no

    @property
    def card_no_masked(self) -> str:
        return f"{self.card_no[:4]}****{self.card_no[-4:]}" if len(self.card_no) > 8 else self.card_no


class CardTransaction(models.Model):
    """A POS payment on a card: a debit, a refund of one, or the reverse of either (CONTRACT section 3)."""

    class Kind(models.TextChoices):
        DEBIT = "debit", _("payment")
        REFUND = "refund", _("refund")
        REVERSE = "reverse", _("reversal")

    # Unique by a constraint rather than unique=True, which on PostgreSQL adds a second (LIKE) index that every
    # payment would write and no query reads. The foreign keys' own indexes are left out where an index of
    # Meta begins with the same column: each payment writes the fewest indexes its reads need.
    transaction_id = models.CharField(_("transaction id"), max_length=32)
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    card = models.ForeignKey(
        Card, on_delete=models.PROTECT, related_name="transactions", verbose_name=_("card"), db_index=False
    )
    amount = models.DecimalField(
        _("amount"), **MONEY, help_text=_("Payments: what the basket cost; refunds and reversals: what moved."),
    )
    discount = models.DecimalField(_("discount"), **MONEY, default=Decimal("0.00"))
    charged = models.DecimalField(
        _("moved on the card"), **MONEY, help_text=_("Payments: amount less discount, taken off the card; refunds "
                                                    "and reversals: put back."),
    )
    refunded = models.DecimalField(
        _("refunded so far"), **MONEY, default=Decimal("0.00"), help_text=_("Payments: refunds of it added up."),
    )
    balance_after = models.DecimalField(_("balance after"), **MONEY)
    original = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="followups",
        verbose_name=_("original transaction"), db_index=False,
    )
    store = models.ForeignKey(
        "stores.Store", on_delete=models.PROTECT, related_name="+", verbose_name=_("store"), db_index=False
    )
    terminal = models.ForeignKey(
        "stores.Terminal", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("terminal"), db_index=False,
    )
    receipt_no = models.CharField(_("receipt number"), max_length=64, blank=True)
    lines = models.JSONField(_("lines"), default=list, blank=True, encoder=DjangoJSONEncoder)
    business_date = models.DateField(_("business date"))
    reversed_at = models.DateTimeField(_("reversed at"), null=True, blank=True)
    created_at = models.DateTimeField(_("time"), default=timezone.now)

    class Meta:
        verbose_name = _("card transaction")
        verbose_name_plural = _("card transactions")
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["card", "created_at"], name="card_txn_card_time"),
            models.Index(fields=["store", "business_date"], name="card_txn_store_day"),
            models.Index(fields=["created_at"], name="card_txn_time"),
            # Refunds and reversals only: a payment, which has no original, writes nothing here.
            models.Index(fields=["original"], condition=models.Q(original__isnull=False), name="card_txn_original"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["transaction_id"], name="card_txn_transaction_id_unique"),
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="card_txn_amount_positive"),
            models.CheckConstraint(condition=models.Q(charged__gte=0), name="card_txn_charged_not_negative"),
            models.CheckConstraint(condition=models.Q(discount__gte=0), name="card_txn_discount_not_negative"),
            models.CheckConstraint(
                condition=models.Q(refunded__lte=models.F("charged")), name="card_txn_refunds_within_charge"
            ),
            # One reversal per transaction, kept by the database even under concurrent requests.
            models.UniqueConstraint(
                fields=["original"], condition=models.Q(kind="reverse"), name="card_txn_one_reverse"
            ),
        ]

    def __str__(self) -> str:
        return self.transaction_id


class CardLedgerEntry(LedgerEntry):
    """One movement of a card's balance; append-only (DESIGN section 3)."""

    class Kind(models.TextChoices):
        LOAD = "load", _("load")
        DEBIT = "debit", _("payment")
        REFUND = "refund", _("refund")
        REVERSE = "reverse", _("reversal")
        ADJUST = "adjust", _("manual adjustment")
        EXPIRE = "expire", _("expired")
        TRANSFER_OUT = "transfer_out", _("moved to another card")
        TRANSFER_IN = "transfer_in", _("moved in from another card")
        MIGRATION = "migration", _("opening balance from migration")
        CLOSE = "close", _("paid out on closing")

    card = models.ForeignKey(
        Card, on_delete=models.PROTECT, related_name="ledger_entries", verbose_name=_("card"), db_index=False
    )
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    amount = models.DecimalField(_("amount"), **MONEY, help_text=_("Positive adds, negative takes away."))
    balance_after = models.DecimalField(_("balance after"), **MONEY)
    legal_entity = ledger_field(models.ForeignKey(
        "stores.LegalEntity", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("legal entity"), db_index=False,
        help_text=_("The company that took the money in (loads) or honoured the card (payments), for settlement."),
    ), replaces="legal_entity")
    transaction = ledger_field(models.ForeignKey(
        CardTransaction, on_delete=models.PROTECT, null=True, blank=True, related_name="ledger_entries",
        verbose_name=_("POS transaction"), db_index=False,
    ), after="operator")

    class Meta:
        verbose_name = _("card ledger entry")
        verbose_name_plural = _("card ledger")
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["card", "created_at"], name="card_ledger_card_time"),
            models.Index(fields=["created_at"], name="card_ledger_time"),
            # a card's last load for the card ageing (settlement.queries.liability), probed per card with a balance;
            # ORed equalities, which PostgreSQL prints back unchanged, so a bulk import rebuilds it as it was (an IN
            # list is printed in another form after a rebuild); queries with kind IN (...) still use it
            models.Index(fields=["card", "created_at"], name="card_ledger_load_time",
                         condition=models.Q(kind="load") | models.Q(kind="migration") | models.Q(kind="transfer_in")),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(balance_after__gte=0), name="card_ledger_balance_not_negative"),
            models.CheckConstraint(condition=~models.Q(amount=0), name="card_ledger_amount_not_zero"),
        ]

    def __str__(self) -> str:
        return f"{self.card_id} {self.amount:+}"


class CardEvent(models.Model):
    """What happened to a card besides its balance: status changes, loss reports, binding, PIN lockouts."""

    class Kind(models.TextChoices):
        PRODUCED = "produced", _("produced")
        RECEIVED = "received", _("received into stock")
        SENT = "sent", _("sent to a store")
        ARRIVED = "arrived", _("received by a store")
        SOLD = "sold", _("sold")
        ACTIVATED = "activated", _("activated")
        STATUS = "status", _("status changed")
        LOST = "lost", _("reported lost")
        REPLACED = "replaced", _("replaced")
        PIN_LOCKED = "pin_locked", _("frozen after wrong PINs")
        PIN_RESET = "pin_reset", _("PIN reset")
        BOUND = "bound", _("bound to a member")
        TRANSFERRED = "transferred", _("given to another member")
        EXPIRED = "expired", _("expired")
        REACTIVATED = "reactivated", _("reactivated")
        EXCHANGED = "exchanged", _("exchanged for a new card")
        RETURNED = "returned", _("returned (退卡)")
        IMPORTED = "imported", _("imported")

    card = models.ForeignKey(Card, on_delete=models.PROTECT, related_name="events", verbose_name=_("card"))
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    status_from = models.CharField(_("status before"), max_length=10, blank=True)
    status_to = models.CharField(_("status after"), max_length=10, blank=True)
    store = models.ForeignKey(
        "stores.Store", on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("store"),
        db_index=False,
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("by"), db_index=False,
    )
    note = models.CharField(_("note"), max_length=200, blank=True)
    data = models.JSONField(_("details"), default=dict, blank=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(_("time"), default=timezone.now)

    class Meta:
        verbose_name = _("card event")
        verbose_name_plural = _("card events")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["created_at"], name="card_event_time")]

    def __str__(self) -> str:
        return f"{self.card_id} {self.get_kind_display()}"
