"""Coupons, points promotions and member-only sale days (DESIGN section 1, "Campaigns").

A coupon template (券模板) says what a coupon is worth and where it applies; coupons (券) are its issued
copies, one row each, with the member who holds it (or none for a printed bulk code). A redemption row
records each use at a till and, if its purchase comes back, that it was given back. The template's
counters are a cache of its coupons and redemptions, kept in step by campaigns/services.py in the same
transaction and proved by `manage.py check_ledgers` (campaigns/ledgers.py).
"""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from core.history import AuditHistory
from stores.models import code_validator

ZERO = Decimal("0.00")
WEEKDAY_CHOICES = [
    (1, _("Monday")), (2, _("Tuesday")), (3, _("Wednesday")), (4, _("Thursday")),
    (5, _("Friday")), (6, _("Saturday")), (7, _("Sunday")),
]


def weekday_set(text: str) -> set[int]:
    """The ISO weekdays (1 = Monday) a comma-separated field names; empty means every day."""
    return {int(part) for part in (text or "").split(",") if part.strip().isdigit()}


def word_set(text: str) -> set[str]:
    """The codes a comma- or space-separated field names (categories, payment methods)."""
    return {part.strip() for part in (text or "").replace("，", ",").replace(" ", ",").split(",") if part.strip()}


class MemberDay(models.Model):
    """A member-only sale day (会员日): dates, the stores taking part, its promotions and coupons."""

    code = models.CharField(_("code"), max_length=30, unique=True, validators=[code_validator])
    name = models.CharField(_("name"), max_length=100)
    starts_on = models.DateField(_("first day"))
    ends_on = models.DateField(_("last day"))
    stores = models.ManyToManyField(
        "stores.Store", blank=True, related_name="+", verbose_name=_("participating stores"),
        help_text=_("Leave empty when every store takes part."),
    )
    description = models.TextField(_("description"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    history = AuditHistory(excluded_fields=["created_at"])

    class Meta:
        verbose_name = _("member day")
        verbose_name_plural = _("member days")
        ordering = ["-starts_on", "pk"]
        constraints = [
            models.CheckConstraint(condition=models.Q(ends_on__gte=models.F("starts_on")),
                                   name="member_day_ends_after_start"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.starts_on:%Y-%m-%d})"


class CouponTemplate(models.Model):
    """What a coupon is worth and where it applies (券模板)."""

    class Kind(models.TextChoices):
        AMOUNT_OFF = "amount_off", _("amount off")
        PERCENT_OFF = "percent_off", _("percent off")
        THRESHOLD = "threshold", _("spend X, save Y (满减)")
        ITEM = "item", _("item coupon (SKU list)")
        GIFT = "gift", _("gift coupon")

    class Status(models.TextChoices):
        DRAFT = "draft", _("draft")
        PENDING = "pending", _("pending approval")
        ACTIVE = "active", _("active")
        PAUSED = "paused", _("paused")
        ENDED = "ended", _("ended")

    class SkuScope(models.TextChoices):
        ALL = "all", _("every item")
        INCLUDE = "include", _("only the listed SKUs")
        EXCLUDE = "exclude", _("every item except the listed SKUs")

    code = models.CharField(_("code"), max_length=30, unique=True, validators=[code_validator])
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices, default=Kind.AMOUNT_OFF)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.DRAFT)
    amount = models.DecimalField(
        _("amount off"), max_digits=14, decimal_places=2, default=ZERO, validators=[MinValueValidator(ZERO)],
        help_text=_("Amount off, the Y of spend X save Y, or the value of the gift (for its cost)."),
    )
    percent = models.DecimalField(
        _("percent off"), max_digits=5, decimal_places=2, default=ZERO,
        validators=[MinValueValidator(ZERO), MaxValueValidator(Decimal("100"))],
        help_text=_("Percent off coupons: 10 takes 10 percent off the eligible amount."),
    )
    max_discount = models.DecimalField(
        _("largest discount"), max_digits=14, decimal_places=2, null=True, blank=True,
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text=_("Percent off coupons: the discount never goes above this. Empty: no cap."),
    )
    threshold = models.DecimalField(
        _("spend threshold"), max_digits=14, decimal_places=2, default=ZERO, validators=[MinValueValidator(ZERO)],
        help_text=_("Spend X save Y: the X (the eligible amount that earns the discount)."),
    )
    repeat = models.BooleanField(
        _("repeat per threshold"), default=False,
        help_text=_("Spend X save Y: take Y off for every full X (满200减30: 400 saves 60)."),
    )
    gift_sku = models.CharField(
        _("gift SKU"), max_length=64, blank=True, help_text=_("Gift coupons: the item the holder receives free."),
    )
    min_basket = models.DecimalField(
        _("minimum basket"), max_digits=14, decimal_places=2, default=ZERO, validators=[MinValueValidator(ZERO)],
        help_text=_("The receipt must reach this amount before the coupon applies."),
    )
    formats = models.ManyToManyField(
        "stores.Format", blank=True, related_name="+", verbose_name=_("formats"),
        help_text=_("Leave empty for every format."),
    )
    stores = models.ManyToManyField(
        "stores.Store", blank=True, related_name="+", verbose_name=_("stores"),
        help_text=_("Leave empty for every store of the chosen formats."),
    )
    sku_scope = models.CharField(_("items"), max_length=10, choices=SkuScope.choices, default=SkuScope.ALL)
    categories_included = models.CharField(
        _("only these categories"), max_length=500, blank=True,
        help_text=_("Category codes separated by commas; empty: every category."),
    )
    categories_excluded = models.CharField(
        _("except these categories"), max_length=500, blank=True,
        help_text=_("Category codes separated by commas that never count towards the coupon."),
    )
    valid_from = models.DateTimeField(_("valid from"), null=True, blank=True)
    valid_until = models.DateTimeField(_("valid until"), null=True, blank=True)
    valid_days = models.PositiveSmallIntegerField(
        _("valid days from issue"), null=True, blank=True, validators=[MinValueValidator(1)],
        help_text=_("Instead of fixed dates: each coupon is valid this many days from its issue."),
    )
    per_member_limit = models.PositiveIntegerField(
        _("limit per member"), default=1, validators=[MinValueValidator(1)],
        help_text=_("How many coupons of this template one member may hold."),
    )
    total_quantity = models.PositiveIntegerField(
        _("total quantity"), null=True, blank=True, help_text=_("Most coupons ever issued. Empty: no limit."),
    )
    total_budget = models.DecimalField(
        _("total budget"), max_digits=14, decimal_places=2, null=True, blank=True,
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text=_("The discounts given together never go above this. Empty: no limit."),
    )
    combines_with_tier_discount = models.BooleanField(
        _("combines with the tier discount"), default=True,
        help_text=_("Whether the till may also give the member's tier discount on the same receipt."),
    )
    combines_with_brand_discount = models.BooleanField(
        _("combines with brand-card discounts"), default=False,
        help_text=_("Whether a brand card's discount may come on top (discount on discount)."),
    )
    claim_code = models.CharField(
        _("public claim code"), max_length=32, unique=True, null=True, blank=True,
        help_text=_("A code printed on posters: each member may claim one coupon with it (scan to claim)."),
    )
    code_prefix = models.CharField(
        _("code prefix"), max_length=8, blank=True,
        help_text=_("Issued codes start with this (capital letters and digits)."),
    )
    funded_by = models.ForeignKey(
        "stores.LegalEntity", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("funded by"), help_text=_("The company that bears the cost of the discounts."),
    )
    member_day = models.ForeignKey(
        MemberDay, on_delete=models.SET_NULL, null=True, blank=True, related_name="coupon_templates",
        verbose_name=_("member day"),
    )
    description = models.TextField(_("description"), blank=True)
    # Counters: a cache of the coupons and redemptions, changed only by campaigns/services.py.
    issued_count = models.PositiveIntegerField(pgettext_lazy("coupon", "issued"), default=0, editable=False)
    redeemed_count = models.PositiveIntegerField(pgettext_lazy("coupon", "redeemed"), default=0, editable=False)
    voided_count = models.PositiveIntegerField(pgettext_lazy("coupon", "voided"), default=0, editable=False)
    expired_count = models.PositiveIntegerField(pgettext_lazy("coupon", "expired"), default=0, editable=False)
    discount_spent = models.DecimalField(
        _("discounts given"), max_digits=14, decimal_places=2, default=ZERO, editable=False,
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    history = AuditHistory(excluded_fields=[
        "issued_count", "redeemed_count", "voided_count", "expired_count", "discount_spent", "created_at",
    ])

    class Meta:
        verbose_name = _("coupon template")
        verbose_name_plural = _("coupon templates")
        ordering = ["-created_at", "-pk"]
        permissions = [
            ("export_coupon_codes", _("Can download coupon codes")),
            ("approve_coupon_template", _("Can approve coupon templates")),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(discount_spent__gte=0), name="coupon_spent_not_negative"),
            models.CheckConstraint(
                condition=models.Q(total_budget__isnull=True) | models.Q(discount_spent__lte=models.F("total_budget")),
                name="coupon_spent_within_budget",
            ),
            models.CheckConstraint(
                condition=models.Q(total_quantity__isnull=True)
                | models.Q(issued_count__lte=models.F("total_quantity")),
                name="coupon_issued_within_quantity",
            ),
            models.CheckConstraint(
                condition=models.Q(valid_from__isnull=True) | models.Q(valid_until__isnull=True)
                | models.Q(valid_until__gt=models.F("valid_from")),
                name="coupon_valid_until_after_from",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    COUNTERS = ("issued_count", "redeemed_count", "voided_count", "expired_count", "discount_spent")

    def save(self, *args, **kwargs):
        # A screen that saves a template never writes its counters back: tills change them meanwhile, with
        # conditional updates in campaigns/services.
        if self.pk is not None and not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [
                field.attname for field in self._meta.concrete_fields
                if not field.primary_key and field.attname not in self.COUNTERS
            ]
        super().save(*args, **kwargs)

    @property
    def open_count(self) -> int:
        return self.issued_count - self.redeemed_count - self.voided_count - self.expired_count


class CouponSku(models.Model):
    """One SKU of a template's list (imported from Excel, as brand programmes do)."""

    template = models.ForeignKey(CouponTemplate, on_delete=models.CASCADE, related_name="skus",
                                 verbose_name=_("coupon template"))
    sku = models.CharField(_("SKU"), max_length=64)

    class Meta:
        verbose_name = _("coupon SKU")
        verbose_name_plural = _("coupon SKUs")
        ordering = ["template", "sku"]
        constraints = [models.UniqueConstraint(fields=["template", "sku"], name="coupon_sku_unique")]

    def __str__(self) -> str:
        return self.sku


class CouponBatch(models.Model):
    """One issue of coupons: to a list of members, as bulk codes, by claims, or after payments."""

    class Channel(models.TextChoices):
        MEMBER_LIST = "list", _("member list")
        BULK = "bulk", _("bulk codes")
        CLAIM = "claim", _("claimed with the public code")
        AFTER_PAYMENT = "after_payment", _("after payment")
        SEGMENT = "segment", _("segment")

    template = models.ForeignKey(CouponTemplate, on_delete=models.PROTECT, related_name="batches",
                                 verbose_name=_("coupon template"))
    channel = models.CharField(_("channel"), max_length=14, choices=Channel.choices)
    quantity = models.PositiveIntegerField(_("quantity"), default=0)
    source_name = models.CharField(_("source"), max_length=200, blank=True,
                                   help_text=_("The file or rule the coupons came from."))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=pgettext_lazy("coupon", "issued by"),
    )
    created_at = models.DateTimeField(pgettext_lazy("coupon", "issued at"), default=timezone.now)

    class Meta:
        verbose_name = _("coupon issue")
        verbose_name_plural = _("coupon issues")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.template.code} #{self.pk}"


class Coupon(models.Model):
    """One issued coupon. Its status changes only in campaigns/services.py."""

    class Status(models.TextChoices):
        OPEN = "open", pgettext_lazy("coupon", "open")
        REDEEMED = "redeemed", pgettext_lazy("coupon", "redeemed")
        VOIDED = "voided", pgettext_lazy("coupon", "voided")
        EXPIRED = "expired", pgettext_lazy("coupon", "expired")

    template = models.ForeignKey(CouponTemplate, on_delete=models.PROTECT, related_name="coupons",
                                 verbose_name=_("coupon template"), db_index=False)
    batch = models.ForeignKey(CouponBatch, on_delete=models.PROTECT, null=True, blank=True, related_name="coupons",
                              verbose_name=_("issue"), db_index=False)
    code = models.CharField(_("coupon code"), max_length=40)
    member = models.ForeignKey(
        "membership.Member", on_delete=models.PROTECT, null=True, blank=True, related_name="coupons",
        verbose_name=_("member"), db_index=False, help_text=_("Empty for a bulk code anyone may use."),
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.OPEN)
    valid_from = models.DateTimeField(_("valid from"), null=True, blank=True)
    valid_until = models.DateTimeField(_("valid until"), null=True, blank=True)
    issued_at = models.DateTimeField(pgettext_lazy("coupon", "issued at"), default=timezone.now)
    issued_store = models.ForeignKey(
        "stores.Store", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("issued at store"), db_index=False,
    )
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True,
                                     help_text=_("When it was redeemed, voided or expired."))

    class Meta:
        verbose_name = _("coupon")
        verbose_name_plural = _("coupons")
        ordering = ["-issued_at", "-pk"]
        # A constraint, not unique=True: that would add a second (LIKE) index on PostgreSQL that no query uses.
        constraints = [models.UniqueConstraint(fields=["code"], name="coupon_code_unique")]
        indexes = [
            models.Index(fields=["member", "status"], name="coupon_member_status"),
            models.Index(fields=["template", "status"], name="coupon_template_status"),
            models.Index(fields=["status", "valid_until"], name="coupon_status_until"),
        ]

    def __str__(self) -> str:
        return self.code


class CouponRedemption(models.Model):
    """A coupon used on a receipt at a till, and whether it was given back (return or payment reversed)."""

    class Status(models.TextChoices):
        REDEEMED = "redeemed", pgettext_lazy("coupon", "redeemed")
        RELEASED = "released", pgettext_lazy("coupon", "given back")

    coupon = models.ForeignKey(Coupon, on_delete=models.PROTECT, related_name="redemptions",
                               verbose_name=_("coupon"))
    template = models.ForeignKey(CouponTemplate, on_delete=models.PROTECT, related_name="redemptions",
                                 verbose_name=_("coupon template"), db_index=False)
    member = models.ForeignKey("membership.Member", on_delete=models.PROTECT, null=True, blank=True,
                               related_name="+", verbose_name=_("member"), db_index=False)
    store = models.ForeignKey("stores.Store", on_delete=models.PROTECT, related_name="+",
                              verbose_name=_("store"), db_index=False)
    terminal = models.ForeignKey("stores.Terminal", on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="+", verbose_name=_("terminal"), db_index=False)
    receipt_no = models.CharField(_("receipt number"), max_length=64)
    basket_amount = models.DecimalField(_("basket amount"), max_digits=14, decimal_places=2)
    discount = models.DecimalField(_("discount"), max_digits=14, decimal_places=2)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.REDEEMED)
    created_at = models.DateTimeField(_("redeemed at"), default=timezone.now)
    released_at = models.DateTimeField(_("given back at"), null=True, blank=True)
    release_reason = models.CharField(_("why given back"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("coupon redemption")
        verbose_name_plural = _("coupon redemptions")
        ordering = ["-created_at", "-pk"]
        indexes = [
            # A receipt's redemptions (given back with its purchase; searched in the admin).
            models.Index(fields=["receipt_no", "store"], name="coupon_redemption_receipt"),
            models.Index(fields=["template", "created_at"], name="coupon_redemption_template"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["coupon"], condition=models.Q(status="redeemed"),
                                    name="coupon_redeemed_once"),
            models.CheckConstraint(condition=models.Q(discount__gte=0), name="coupon_discount_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.coupon_id} @ {self.store_id}/{self.receipt_no}"


class CouponRule(models.Model):
    """After-payment coupons: a purchase that qualifies gets a coupon of the template, in the purchase's answer."""

    name = models.CharField(_("name"), max_length=100)
    template = models.ForeignKey(CouponTemplate, on_delete=models.PROTECT, related_name="rules",
                                 verbose_name=_("coupon template"))
    formats = models.ManyToManyField("stores.Format", blank=True, related_name="+", verbose_name=_("formats"),
                                     help_text=_("Leave empty for every format."))
    min_amount = models.DecimalField(_("minimum purchase"), max_digits=14, decimal_places=2, default=ZERO,
                                     validators=[MinValueValidator(ZERO)])
    payment_methods = models.CharField(
        _("payment methods"), max_length=200, blank=True,
        help_text=_("Payment method codes separated by commas (wechat, alipay, prepaid_card ...); empty: any."),
    )
    starts_on = models.DateField(_("first day"))
    ends_on = models.DateField(_("last day"))
    weekdays = models.CharField(_("weekdays"), max_length=20, blank=True,
                                help_text=_("Days of the week (1 = Monday) separated by commas; empty: every day."))
    is_active = models.BooleanField(_("active"), default=True)
    history = AuditHistory()

    class Meta:
        verbose_name = _("after-payment coupon rule")
        verbose_name_plural = _("after-payment coupon rules")
        ordering = ["-starts_on", "pk"]
        constraints = [
            models.CheckConstraint(condition=models.Q(ends_on__gte=models.F("starts_on")),
                                   name="coupon_rule_ends_after_start"),
        ]

    def __str__(self) -> str:
        return self.name


class PointsPromotion(models.Model):
    """A points promotion staff configure (积分活动): a multiplier, or a better points-to-cash rate, on chosen days."""

    class Kind(models.TextChoices):
        MULTIPLIER = "multiplier", _("points multiplier")
        CASH_RATE = "cash_rate", _("points-to-cash day")

    class Stacking(models.TextChoices):
        MULTIPLY = "multiply", _("multiply with the tier's multiplier")
        LARGER = "larger", _("the larger of the two")

    code = models.CharField(_("code"), max_length=30, unique=True, validators=[code_validator])
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices, default=Kind.MULTIPLIER)
    multiplier = models.DecimalField(
        _("multiplier"), max_digits=4, decimal_places=2, default=Decimal("2.00"),
        validators=[MinValueValidator(Decimal("1.00")), MaxValueValidator(Decimal("10.00"))],
        help_text=_("Points multipliers: 2 gives double points."),
    )
    stacking = models.CharField(
        _("with the tier multiplier"), max_length=10, choices=Stacking.choices, default=Stacking.MULTIPLY,
        help_text=_("How it meets a tier's multiplier (Plus 1.5x): multiply both, or take the larger."),
    )
    cash_points = models.PositiveIntegerField(
        _("points per cash unit"), null=True, blank=True, validators=[MinValueValidator(1)],
        help_text=_("Points-to-cash days: this many points are worth the cash value below."),
    )
    cash_value = models.DecimalField(
        _("cash value"), max_digits=8, decimal_places=2, null=True, blank=True,
        validators=[MinValueValidator(Decimal("0.01"))],
    )
    starts_on = models.DateField(_("first day"))
    ends_on = models.DateField(_("last day"))
    weekdays = models.CharField(_("weekdays"), max_length=20, blank=True,
                                help_text=_("Days of the week (1 = Monday) separated by commas; empty: every day."))
    formats = models.ManyToManyField("stores.Format", blank=True, related_name="+", verbose_name=_("formats"),
                                     help_text=_("Leave empty for every format."))
    stores = models.ManyToManyField("stores.Store", blank=True, related_name="+", verbose_name=_("stores"),
                                    help_text=_("Leave empty for every store of the chosen formats."))
    tiers = models.ManyToManyField("membership.Tier", blank=True, related_name="+", verbose_name=_("tiers"),
                                   help_text=_("Members of these tiers (earned or paid); empty: every member."))
    payment_methods = models.CharField(
        _("payment methods"), max_length=200, blank=True,
        help_text=_("Payment method codes separated by commas (wechat, alipay ...); empty: any."),
    )
    member_day = models.ForeignKey(MemberDay, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="promotions", verbose_name=_("member day"))
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    history = AuditHistory(excluded_fields=["created_at"])

    class Meta:
        verbose_name = _("points promotion")
        verbose_name_plural = _("points promotions")
        ordering = ["-starts_on", "pk"]
        constraints = [
            models.CheckConstraint(condition=models.Q(ends_on__gte=models.F("starts_on")),
                                   name="points_promotion_ends_after_start"),
            models.CheckConstraint(
                condition=~models.Q(kind="cash_rate")
                | models.Q(cash_points__isnull=False, cash_value__isnull=False),
                name="points_promotion_cash_rate_given",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class PromotionCredit(models.Model):
    """Extra points a promotion gave on a purchase (for its results); the ledger entry's reason names it too."""

    promotion = models.ForeignKey(PointsPromotion, on_delete=models.PROTECT, related_name="credits",
                                  verbose_name=_("points promotion"), db_index=False)
    purchase = models.ForeignKey("membership.Purchase", on_delete=models.PROTECT, related_name="+",
                                 verbose_name=_("purchase"))
    member = models.ForeignKey("membership.Member", on_delete=models.PROTECT, related_name="+",
                               verbose_name=_("member"), db_index=False)
    extra_points = models.IntegerField(_("extra points"))
    created_at = models.DateTimeField(_("time"), default=timezone.now)

    class Meta:
        verbose_name = _("promotion points")
        verbose_name_plural = _("promotion points")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["promotion", "created_at"], name="promotion_credit_time")]
        constraints = [
            models.UniqueConstraint(fields=["promotion", "purchase"], name="promotion_credit_once"),
        ]

    def __str__(self) -> str:
        return f"{self.promotion_id}: {self.extra_points:+d}"


class PromotionCashOut(models.Model):
    """Points turned into cash at a points-to-cash day's rate (for its results); the ledger entry names it too."""

    promotion = models.ForeignKey(PointsPromotion, on_delete=models.PROTECT, related_name="cash_outs",
                                  verbose_name=_("points promotion"), db_index=False)
    entry = models.OneToOneField("membership.PointsEntry", on_delete=models.PROTECT, related_name="+",
                                 verbose_name=_("points entry"))
    member = models.ForeignKey("membership.Member", on_delete=models.PROTECT, related_name="+",
                               verbose_name=_("member"), db_index=False)
    points = models.PositiveIntegerField(_("points"))
    cash_value = models.DecimalField(_("cash value"), max_digits=14, decimal_places=2)
    created_at = models.DateTimeField(_("time"), default=timezone.now)

    class Meta:
        verbose_name = _("points-to-cash at a promotion's rate")
        verbose_name_plural = _("points-to-cash at a promotion's rate")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["promotion", "created_at"], name="promotion_cash_out_time")]

    def __str__(self) -> str:
        return f"{self.promotion_id}: {self.points}"

