"""Tiers in time, the points rules, purchases from every format's POS, and the gift catalogue."""

from decimal import Decimal

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.history import AuditHistory

ZERO = Decimal("0.00")

# The payment methods a till or the desk names (the POS sends a free code): shown by their label, an unknown
# code as it came.
PAYMENT_METHOD_LABELS = {
    "cash": _("cash"),
    "bank_card": _("bank card"),
    "unionpay": _("UnionPay card"),
    "wechat": _("WeChat Pay"),
    "alipay": _("Alipay"),
    "prepaid_card": _("prepaid card"),
    "bank_transfer": _("bank transfer"),
    "other": _("other"),
}


def payment_method_label(code: str) -> str:
    label = PAYMENT_METHOD_LABELS.get(code)
    return str(label) if label is not None else code


class PaymentMethodShown:
    """`payment_method_shown` for lists and pages: the payment method by its label."""

    def payment_method_shown(self) -> str:
        return payment_method_label(self.payment_method)

    payment_method_shown.short_description = _("payment method")
    payment_method_shown.admin_order_field = "payment_method"


class PointsPolicy(models.Model):
    """The group's points rules (one row): points-to-cash, expiry and the tier window."""

    cash_points = models.PositiveIntegerField(
        _("points per cash unit"), default=100, validators=[MinValueValidator(1)],
        help_text=_("This many points are worth the cash value below (default 100 points = 1.00 yuan)."),
    )
    cash_value = models.DecimalField(
        _("cash value"), max_digits=8, decimal_places=2, default=Decimal("1.00"),
        validators=[MinValueValidator(Decimal("0.01"))],
    )
    cash_min_points = models.PositiveIntegerField(
        _("minimum points per receipt"), default=100,
        help_text=_("A receipt may not turn fewer points than this into cash."),
    )
    cash_max_points = models.PositiveIntegerField(
        _("maximum points per receipt"), default=50_000,
        help_text=_("All points turned into cash on one receipt together stay within this."),
    )
    expiry_enabled = models.BooleanField(_("points expire"), default=True)
    expiry_years = models.PositiveSmallIntegerField(
        _("years points stay valid"), default=1, validators=[MinValueValidator(0)],
        help_text=_("Points earned in year N expire at the end of year N + this (default 1)."),
    )
    expiry_notice_days = models.PositiveSmallIntegerField(
        _("notice before expiry (days)"), default=30,
        help_text=_("Members whose points expire within this many days are listed for a reminder."),
    )
    tier_window_months = models.PositiveSmallIntegerField(
        _("tier qualifying window (months)"), default=12, validators=[MinValueValidator(1)],
        help_text=_("Earned tiers follow the spend across all formats over this many months."),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    history = AuditHistory()

    class Meta:
        verbose_name = _("points policy")
        verbose_name_plural = _("points policy")
        constraints = [models.CheckConstraint(condition=models.Q(pk=1), name="points_policy_single_row")]

    def __str__(self) -> str:
        return str(_("points policy"))

    @classmethod
    def current(cls) -> "PointsPolicy":
        policy, _created = cls.objects.get_or_create(pk=1)
        return policy


class EarnRule(models.Model):
    """How a format's purchases earn points (DEPT 1 point per yuan, SUPER 1 per 2 yuan ...)."""

    format = models.OneToOneField(
        "stores.Format", on_delete=models.PROTECT, related_name="earn_rule", verbose_name=_("format")
    )
    amount_per_point = models.DecimalField(
        _("yuan per point"), max_digits=10, decimal_places=2, default=Decimal("1.00"),
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text=_("Spend that earns one point before multipliers; the result is rounded down."),
    )
    excluded_categories = models.TextField(
        _("excluded categories"), blank=True,
        help_text=_("Category codes that earn no points (tobacco, gold ...), one per line or separated by commas."),
    )
    pending_days = models.PositiveSmallIntegerField(
        _("return window (days)"), default=0,
        help_text=_("Points are held as pending this many days and become usable when the window has passed."),
    )
    # Sanity bounds against a till's typo or a hostile POS: a receipt above either is refused, not recorded.
    max_receipt_amount = models.DecimalField(
        _("largest receipt amount"), max_digits=14, decimal_places=2, default=Decimal("10000000.00"),
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text=_("A purchase above this amount is refused (limit_exceeded) and earns nothing."),
    )
    max_points_per_receipt = models.PositiveIntegerField(
        _("most points per receipt"), default=1_000_000, validators=[MinValueValidator(1)],
        help_text=_("A purchase that would earn more points than this (after multipliers) is refused."),
    )
    is_active = models.BooleanField(_("earns points"), default=True)
    history = AuditHistory()

    class Meta:
        verbose_name = _("earn rule")
        verbose_name_plural = _("earn rules")
        ordering = ["format__code"]

    def __str__(self) -> str:
        return str(self.format)

    @property
    def excluded_category_set(self) -> frozenset[str]:
        text = self.excluded_categories.replace(",", "\n").replace("，", "\n")
        return frozenset(code.strip() for code in text.splitlines() if code.strip())


class TierChange(models.Model):
    """Every change of a member's tier, with its reason (upgrades, downgrades, paid tiers)."""

    class Reason(models.TextChoices):
        UPGRADE = "upgrade", _("upgraded by spend")
        GRACE = "grace", _("below the threshold: downgrade after the grace period")
        KEPT = "kept", _("back above the threshold: grace period ended")
        DOWNGRADE = "downgrade", _("downgraded after the grace period")
        PAID = "paid", _("paid tier bought")
        RENEWAL = "renewal", _("paid tier renewed")
        PAID_EXPIRY = "paid_expiry", _("paid tier expired")
        MIGRATION = "migration", _("from a legacy system")
        MERGE = "merge", _("taken over in a merge")
        MANUAL = "manual", _("set by staff")

    member = models.ForeignKey(
        "membership.Member", on_delete=models.PROTECT, related_name="tier_changes", verbose_name=_("member"),
        db_index=False,
    )
    from_tier = models.ForeignKey(
        "membership.Tier", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("from tier"), db_index=False,
    )
    to_tier = models.ForeignKey(
        "membership.Tier", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("to tier"), db_index=False,
    )
    reason = models.CharField(_("reason"), max_length=12, choices=Reason.choices)
    spend = models.DecimalField(
        _("qualifying spend"), max_digits=14, decimal_places=2, null=True, blank=True,
        help_text=_("Spend over the qualifying window when the change was decided."),
    )
    note = models.CharField(_("note"), max_length=200, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("by"), db_index=False,
    )
    created_at = models.DateTimeField(_("time"), default=timezone.now)

    class Meta:
        verbose_name = _("tier change")
        verbose_name_plural = _("tier changes")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["member", "created_at"], name="tier_change_member_time")]

    def __str__(self) -> str:
        return f"{self.member_id}: {self.from_tier_id} -> {self.to_tier_id}"


class TierSubscription(PaymentMethodShown, models.Model):
    """One term of a paid tier (Plus) bought or renewed at the desk or in the admin."""

    class Kind(models.TextChoices):
        PURCHASE = "purchase", _("bought")
        RENEWAL = "renewal", _("renewed")

    member = models.ForeignKey(
        "membership.Member", on_delete=models.PROTECT, related_name="tier_subscriptions",
        verbose_name=_("member"),
    )
    tier = models.ForeignKey("membership.Tier", on_delete=models.PROTECT, related_name="+", verbose_name=_("tier"))
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    starts_on = models.DateField(_("starts on"))
    ends_on = models.DateField(_("ends on"), help_text=_("The last day the benefits apply."))
    fee = models.DecimalField(_("fee"), max_digits=14, decimal_places=2, validators=[MinValueValidator(ZERO)])
    payment_method = models.CharField(_("payment method"), max_length=20, blank=True)
    store = models.ForeignKey(
        "stores.Store", on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("store")
    )
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("operator"),
    )
    created_at = models.DateTimeField(_("time"), default=timezone.now)

    class Meta:
        verbose_name = _("paid tier term")
        verbose_name_plural = _("paid tier terms")
        ordering = ["-starts_on", "-pk"]
        constraints = [
            models.CheckConstraint(condition=models.Q(ends_on__gte=models.F("starts_on")), name="subscription_dates"),
        ]

    def __str__(self) -> str:
        return f"{self.tier} {self.starts_on} - {self.ends_on}"


class Purchase(PaymentMethodShown, models.Model):
    """A receipt from a format's POS (CONTRACT: POST /api/v1/purchases), of a member or of a customer who showed
    no membership (member empty: the sale counts in total sales and earns nothing)."""

    member = models.ForeignKey(
        "membership.Member", on_delete=models.PROTECT, null=True, blank=True, related_name="purchases",
        verbose_name=_("member"), db_index=False, help_text=_("Empty for a customer who showed no membership."),
    )
    store = models.ForeignKey(
        "stores.Store", on_delete=models.PROTECT, related_name="+", verbose_name=_("store"), db_index=False
    )
    format = models.ForeignKey(
        "stores.Format", on_delete=models.PROTECT, related_name="+", verbose_name=_("format"), db_index=False
    )
    legal_entity = models.ForeignKey(
        "stores.LegalEntity", on_delete=models.PROTECT, related_name="+", verbose_name=_("legal entity"),
        db_index=False,
    )
    terminal = models.ForeignKey(
        "stores.Terminal", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("terminal"), db_index=False,
    )
    receipt_no = models.CharField(_("receipt number"), max_length=64)
    amount = models.DecimalField(_("amount"), max_digits=14, decimal_places=2)
    returned_amount = models.DecimalField(
        _("returned"), max_digits=14, decimal_places=2, default=ZERO, db_default=ZERO,
        help_text=_("The part of the amount taken back by returns so far."),
    )
    occurred_at = models.DateTimeField(_("time of sale"))
    payment_method = models.CharField(_("payment method"), max_length=20, blank=True)
    lines = models.JSONField(_("lines"), default=list, blank=True)
    points_earned = models.IntegerField(
        _("points earned"), default=0, help_text=_("Including points still pending in the return window.")
    )
    promotions_text = models.CharField(
        _("points promotions"), max_length=200, blank=True,
        help_text=_("The points promotions that raised what this purchase earned, as the ledger names them."),
    )
    created_at = models.DateTimeField(_("recorded at"), default=timezone.now)

    class Meta:
        verbose_name = _("purchase")
        verbose_name_plural = _("purchases")
        ordering = ["-occurred_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["store", "receipt_no"], name="purchase_store_receipt_unique"),
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="purchase_amount_positive"),
            models.CheckConstraint(
                condition=models.Q(returned_amount__gte=0, returned_amount__lte=models.F("amount")),
                name="purchase_returned_within_amount",
            ),
            models.CheckConstraint(condition=models.Q(points_earned__gte=0), name="purchase_points_not_negative"),
            # A sale without a member earns nothing (it may be claimed later, which names the member first).
            models.CheckConstraint(
                condition=models.Q(member__isnull=False) | models.Q(points_earned=0, promotions_text=""),
                name="purchase_without_member_earns_nothing",
            ),
        ]
        indexes = [
            models.Index(fields=["member", "occurred_at"], name="purchase_member_time"),
            models.Index(fields=["occurred_at"], name="purchase_time"),
            # A store's recent buyers: who store staff see among the members (membership.queries.members_in_scope).
            models.Index(fields=["store", "occurred_at"], name="purchase_store_time"),
        ]

    def __str__(self) -> str:
        return f"{self.store_id}/{self.receipt_no}"

    @property
    def net_amount(self) -> Decimal:
        return self.amount - self.returned_amount


class PurchaseReturn(models.Model):
    """Goods of a purchase brought back; takes back the points the returned part earned."""

    purchase = models.ForeignKey(Purchase, on_delete=models.PROTECT, related_name="returns", verbose_name=_("purchase"))
    store = models.ForeignKey(
        "stores.Store", on_delete=models.PROTECT, related_name="+", verbose_name=_("store"), db_index=False
    )
    terminal = models.ForeignKey(
        "stores.Terminal", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("terminal"), db_index=False,
    )
    receipt_no = models.CharField(_("return receipt number"), max_length=64)
    amount = models.DecimalField(_("amount"), max_digits=14, decimal_places=2)
    points_reversed = models.IntegerField(_("points taken back"), default=0)
    points_debt = models.IntegerField(
        _("points owed"), default=0,
        help_text=_("Points the member had already spent: recorded as a debt, paid off by later earnings."),
    )
    occurred_at = models.DateTimeField(_("time of return"), default=timezone.now)
    created_at = models.DateTimeField(_("recorded at"), default=timezone.now)

    class Meta:
        verbose_name = _("purchase return")
        verbose_name_plural = _("purchase returns")
        ordering = ["-occurred_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["store", "receipt_no"], name="purchase_return_store_receipt_unique"),
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="purchase_return_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.store_id}/{self.receipt_no}"


class PointsHold(models.Model):
    """Points earned inside a format's return window: pending, usable once the window has passed."""

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        RELEASED = "released", _("released")
        CANCELLED = "cancelled", _("cancelled by a return")

    member = models.ForeignKey(
        "membership.Member", on_delete=models.PROTECT, related_name="points_holds", verbose_name=_("member"),
        db_index=False,
    )
    purchase = models.OneToOneField(
        Purchase, on_delete=models.PROTECT, related_name="points_hold", verbose_name=_("purchase")
    )
    points = models.PositiveIntegerField(_("points"))
    cancelled_points = models.PositiveIntegerField(_("points cancelled by returns"), default=0)
    available_at = models.DateTimeField(_("usable from"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    released_entry = models.OneToOneField(
        "membership.PointsEntry", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("ledger entry"),
    )

    class Meta:
        verbose_name = _("pending points")
        verbose_name_plural = _("pending points")
        ordering = ["available_at", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(cancelled_points__lte=models.F("points")), name="points_hold_cancel_within"
            ),
        ]
        indexes = [
            models.Index(fields=["member"], name="points_hold_member", condition=models.Q(status="pending")),
            models.Index(fields=["available_at"], name="points_hold_due", condition=models.Q(status="pending")),
        ]

    def __str__(self) -> str:
        return f"{self.member_id} {self.points}"

    @property
    def remaining(self) -> int:
        return self.points - self.cancelled_points


class PointsDebtEntry(models.Model):
    """Points a member owes after a return took back points already spent; append-only.

    Member.points_debt is the cache of this ledger; later earnings pay the debt off first.
    """

    class Kind(models.TextChoices):
        INCURRED = "incurred", _("owed after a return")
        REPAID = "repaid", _("paid off from earnings")
        WAIVED = "waived", _("waived by approval")

    member = models.ForeignKey(
        "membership.Member", on_delete=models.PROTECT, related_name="points_debt_entries", verbose_name=_("member"),
        db_index=False,
    )
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    points = models.IntegerField(_("points"), help_text=_("Positive adds to the debt, negative pays it off."))
    debt_after = models.IntegerField(_("debt after"))
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    cause_type = models.ForeignKey(
        ContentType, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("cause type"), db_index=False,
    )
    cause_id = models.CharField(_("cause id"), max_length=64, blank=True)
    cause = GenericForeignKey("cause_type", "cause_id")
    created_at = models.DateTimeField(_("time"), default=timezone.now)

    class Meta:
        verbose_name = _("points debt entry")
        verbose_name_plural = _("points debt ledger")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["member", "created_at"], name="points_debt_member_time")]
        constraints = [
            models.CheckConstraint(condition=models.Q(debt_after__gte=0), name="points_debt_after_not_negative"),
            models.CheckConstraint(condition=~models.Q(points=0), name="points_debt_entry_not_zero"),
        ]

    def __str__(self) -> str:
        return f"{self.member_id} {self.points:+d}"


class Gift(models.Model):
    """A gift members take for points at the service desk (礼品兑换)."""

    code = models.CharField(_("code"), max_length=20, unique=True)
    name = models.CharField(_("name"), max_length=100)
    points = models.PositiveIntegerField(_("points"), validators=[MinValueValidator(1)])
    description = models.CharField(_("description"), max_length=200, blank=True)
    is_active = models.BooleanField(_("available"), default=True)
    history = AuditHistory()

    class Meta:
        verbose_name = _("gift")
        verbose_name_plural = _("gift catalogue")
        ordering = ["points", "code"]
        constraints = [models.CheckConstraint(condition=models.Q(points__gt=0), name="gift_points_positive")]

    def __str__(self) -> str:
        return f"{self.name} ({self.points})"


class GiftStock(models.Model):
    """How many of a gift a store holds; changed only with a GiftStockMovement."""

    gift = models.ForeignKey(
        Gift, on_delete=models.PROTECT, related_name="stocks", verbose_name=_("gift"), db_index=False
    )
    store = models.ForeignKey("stores.Store", on_delete=models.PROTECT, related_name="+", verbose_name=_("store"))
    quantity = models.IntegerField(_("in stock"), default=0, editable=False)

    class Meta:
        verbose_name = _("gift stock")
        verbose_name_plural = _("gift stock")
        ordering = ["store__code", "gift__points"]
        constraints = [
            models.UniqueConstraint(fields=["gift", "store"], name="gift_stock_unique"),
            models.CheckConstraint(condition=models.Q(quantity__gte=0), name="gift_stock_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.gift} @ {self.store_id}: {self.quantity}"


class GiftStockMovement(models.Model):
    """One movement of a store's gift stock; append-only."""

    class Kind(models.TextChoices):
        RECEIVED = "received", _("received")
        REDEEMED = "redeemed", _("given to a member")
        ADJUSTED = "adjusted", _("stock count correction")

    stock = models.ForeignKey(GiftStock, on_delete=models.PROTECT, related_name="movements", verbose_name=_("stock"))
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    quantity = models.IntegerField(_("quantity"), help_text=_("Positive adds, negative takes away."))
    quantity_after = models.IntegerField(_("in stock after"))
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("operator"), db_index=False,
    )
    created_at = models.DateTimeField(_("time"), default=timezone.now)

    class Meta:
        verbose_name = _("gift stock movement")
        verbose_name_plural = _("gift stock movements")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=models.Q(quantity_after__gte=0), name="gift_movement_after_not_negative"),
            models.CheckConstraint(condition=~models.Q(quantity=0), name="gift_movement_not_zero"),
        ]

    def __str__(self) -> str:
        return f"{self.stock_id} {self.quantity:+d}"


class GiftRedemption(models.Model):
    """A member took gifts for points at a store's desk."""

    member = models.ForeignKey(
        "membership.Member", on_delete=models.PROTECT, related_name="gift_redemptions", verbose_name=_("member")
    )
    gift = models.ForeignKey(Gift, on_delete=models.PROTECT, related_name="redemptions", verbose_name=_("gift"))
    store = models.ForeignKey("stores.Store", on_delete=models.PROTECT, related_name="+", verbose_name=_("store"))
    quantity = models.PositiveIntegerField(_("quantity"), validators=[MinValueValidator(1)])
    points = models.PositiveIntegerField(_("points"))
    points_entry = models.OneToOneField(
        "membership.PointsEntry", on_delete=models.PROTECT, related_name="+", verbose_name=_("ledger entry")
    )
    stock_movement = models.OneToOneField(
        GiftStockMovement, on_delete=models.PROTECT, related_name="redemption", verbose_name=_("stock movement")
    )
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("operator"),
    )
    created_at = models.DateTimeField(_("time"), default=timezone.now)

    class Meta:
        verbose_name = _("gift redemption")
        verbose_name_plural = _("gift redemptions")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.member_id} {self.gift_id} x{self.quantity}"
