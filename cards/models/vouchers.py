"""Pickup vouchers (提货券): B2B vouchers for a quantity of given goods, redeemed at any store in parts."""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from cards.models.products import MONEY
from core.history import AuditHistory
from core.models import LedgerEntry, ledger_field


class Supplier(models.Model):
    """The supplier of a voucher's goods, settled with for what the stores hand out."""

    code = models.CharField(_("code"), max_length=20, unique=True)
    name = models.CharField(_("name"), max_length=100)
    contact_name = models.CharField(_("contact person"), max_length=100, blank=True)
    contact_phone = models.CharField(_("contact phone"), max_length=20, blank=True)
    tax_no = models.CharField(_("taxpayer number"), max_length=20, blank=True)
    bank = models.CharField(_("bank"), max_length=100, blank=True)
    bank_account_no = models.CharField(_("bank account number"), max_length=40, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    history = AuditHistory()

    class Meta:
        verbose_name = _("supplier")
        verbose_name_plural = _("suppliers")
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class VoucherProduct(models.Model):
    """What a voucher is for: one SKU, counted in a unit (box, bottle, kg), supplied and settled at a price."""

    code = models.CharField(_("code"), max_length=20, unique=True)
    name = models.CharField(_("name"), max_length=100)
    sku = models.CharField(_("SKU"), max_length=64)
    description = models.CharField(_("description"), max_length=200, blank=True)
    unit = models.CharField(_("unit"), max_length=10, help_text=_("e.g. 箱, 瓶, 桶, kg"))
    supplier = models.ForeignKey(Supplier, on_delete=models.PROTECT, related_name="products",
                                 verbose_name=_("supplier"))
    settlement_price = models.DecimalField(
        _("settlement price per unit"), **MONEY, help_text=_("What the supplier is paid for each unit handed out."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    history = AuditHistory()

    class Meta:
        verbose_name = _("voucher product")
        verbose_name_plural = _("voucher products")
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=models.Q(settlement_price__gte=0), name="voucher_product_price_ok"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class VoucherBatch(models.Model):
    """A run of vouchers with unique codes, each good for `units` of the product, sold at `price` each."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("draft")
        PENDING = "pending", _("waiting for approval")
        ISSUED = "issued", _("approved, codes generated")
        REJECTED = "rejected", _("rejected")
        CANCELLED = "cancelled", _("cancelled")

    batch_no = models.CharField(_("batch number"), max_length=20, unique=True)
    product = models.ForeignKey(VoucherProduct, on_delete=models.PROTECT, related_name="batches",
                                verbose_name=_("product"))
    quantity = models.PositiveIntegerField(
        _("vouchers"), validators=[MinValueValidator(1), MaxValueValidator(1_000_000)]
    )
    units = models.PositiveIntegerField(
        _("units per voucher"), validators=[MinValueValidator(1), MaxValueValidator(100_000)],
    )
    price = models.DecimalField(_("price per voucher"), **MONEY)
    expires_on = models.DateField(_("valid until"), help_text=_("Redeemable until the end of this day."))
    note = models.CharField(_("note"), max_length=200, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.DRAFT)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("requested by")
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    issued_at = models.DateTimeField(_("codes generated at"), null=True, blank=True)
    history = AuditHistory()

    class Meta:
        verbose_name = _("voucher batch")
        verbose_name_plural = _("voucher batches")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=models.Q(price__gt=0), name="voucher_batch_price_positive"),
        ]
        permissions = [("approve_voucher_batch", _("Can approve voucher batches"))]

    def __str__(self) -> str:
        return self.batch_no


def voucher_value(*, units_left: int, price: Decimal, units: int) -> Decimal:
    """What `units_left` units of a voucher are worth: at the price paid per unit, its batch's price per voucher
    divided by the voucher's units. Unrounded: round a total once, not each voucher."""
    return Decimal(price) * units_left / units


class Voucher(models.Model):
    """One pickup voucher. `remaining` is a cache of its ledger (units still to hand out)."""

    class Status(models.TextChoices):
        UNSOLD = "unsold", _("not sold")
        ACTIVE = "active", _("active")
        USED = "used", _("fully redeemed")
        EXPIRED = "expired", _("expired")
        VOID = "void", _("void")

    code = models.CharField(_("code"), max_length=32, unique=True,
                            help_text=_("The code printed on the voucher and scanned at the till; not guessable."))
    serial = models.PositiveIntegerField(_("serial in batch"))
    batch = models.ForeignKey(VoucherBatch, on_delete=models.PROTECT, related_name="vouchers",
                              verbose_name=_("batch"))
    product = models.ForeignKey(VoucherProduct, on_delete=models.PROTECT, related_name="vouchers",
                                verbose_name=_("product"), db_index=False)
    units = models.PositiveIntegerField(_("units"))
    remaining = models.PositiveIntegerField(_("units remaining"), default=0)
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.UNSOLD)
    expires_at = models.DateTimeField(_("expires at"))
    sale_order = models.ForeignKey(
        "cards.SaleOrder", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("sale order"), db_index=False,
    )
    sold_at = models.DateTimeField(_("sold at"), null=True, blank=True)
    issuer = models.ForeignKey(
        "stores.LegalEntity", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("issuer"), db_index=False, help_text=_("The company that sold the voucher."),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("pickup voucher")
        verbose_name_plural = _("pickup vouchers")
        ordering = ["batch", "serial"]
        indexes = [models.Index(fields=["status", "expires_at"], name="voucher_status_expiry")]
        constraints = [
            models.UniqueConstraint(fields=["batch", "serial"], name="voucher_batch_serial_unique"),
            models.CheckConstraint(condition=models.Q(remaining__lte=models.F("units")),
                                   name="voucher_remaining_within_units"),
        ]

    def __str__(self) -> str:
        return self.code

    @property
    def code_masked(self) -> str:
        return f"{self.code[:4]}****{self.code[-4:]}" if len(self.code) > 8 else self.code

    @property
    def outstanding_value(self) -> Decimal:
        """The remaining units at the price paid per unit (prepaid funds still owed: DESIGN section 7)."""
        return voucher_value(units_left=self.remaining, price=self.batch.price, units=self.units)


class VoucherLedgerEntry(LedgerEntry):
    """One movement of a voucher's remaining units; append-only (DESIGN section 3)."""

    class Kind(models.TextChoices):
        ISSUE = "issue", _("sold and activated")
        REDEEM = "redeem", _("redeemed")
        ADJUST = "adjust", _("manual adjustment")
        MIGRATION = "migration", _("opening quantity from migration")

    voucher = models.ForeignKey(Voucher, on_delete=models.PROTECT, related_name="ledger_entries",
                                verbose_name=_("voucher"), db_index=False)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    quantity = models.IntegerField(_("units"), help_text=_("Positive adds, negative hands out."))
    remaining_after = models.PositiveIntegerField(_("remaining after"))
    legal_entity = ledger_field(models.ForeignKey(
        "stores.LegalEntity", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("legal entity"), db_index=False,
        help_text=_("The company that sold (issue) or handed out the goods (redeem), for settlement."),
    ), replaces="legal_entity")

    class Meta:
        verbose_name = _("voucher ledger entry")
        verbose_name_plural = _("voucher ledger")
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["voucher", "created_at"], name="voucher_ledger_voucher_time"),
            models.Index(fields=["kind", "created_at"], name="voucher_ledger_kind_time"),
        ]
        constraints = [
            models.CheckConstraint(condition=~models.Q(quantity=0), name="voucher_ledger_quantity_not_zero"),
        ]

    def __str__(self) -> str:
        return f"{self.voucher_id} {self.quantity:+}"


class SaleVoucherLine(models.Model):
    """A voucher in a sale order (the same orders, rules and approvals as cards), at its batch's price."""

    order = models.ForeignKey("cards.SaleOrder", on_delete=models.CASCADE, related_name="voucher_lines",
                              verbose_name=_("order"))
    voucher = models.ForeignKey(Voucher, on_delete=models.PROTECT, related_name="+", verbose_name=_("voucher"))
    amount = models.DecimalField(_("price"), **MONEY)

    class Meta:
        verbose_name = _("voucher in an order")
        verbose_name_plural = _("vouchers in an order")
        constraints = [
            models.UniqueConstraint(fields=["order", "voucher"], name="voucher_sale_line_unique"),
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="voucher_sale_line_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.voucher_id} {self.amount}"
