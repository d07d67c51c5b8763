"""Missed-receipt claims (补积分) and tier benefits with quotas (权益)."""

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.history import AuditHistory


class PurchaseClaim(models.Model):
    """A purchase the POS sent without a member, claimed for a member afterwards: once only (the purchase is one
    to one), within the claim window (PURCHASE_CLAIM_WINDOW_DAYS)."""

    class Channel(models.TextChoices):
        DESK = "desk", _("service desk")
        POS = "pos", _("POS")

    purchase = models.OneToOneField(
        "membership.Purchase", on_delete=models.PROTECT, related_name="claim", verbose_name=_("purchase"),
    )
    member = models.ForeignKey(
        "membership.Member", on_delete=models.PROTECT, related_name="purchase_claims", verbose_name=_("member"),
        db_index=False,
    )
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices)
    store = models.ForeignKey(
        "stores.Store", on_delete=models.PROTECT, related_name="+", verbose_name=_("claimed at store"),
        db_index=False,
    )
    terminal = models.ForeignKey(
        "stores.Terminal", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("terminal"), db_index=False,
    )
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("clerk"), db_index=False,
    )
    points = models.IntegerField(_("points credited"), default=0, help_text=_("Pending ones included."))
    created_at = models.DateTimeField(_("claimed at"), default=timezone.now)

    class Meta:
        verbose_name = _("missed-receipt claim")
        verbose_name_plural = _("missed-receipt claims")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["member", "created_at"], name="purchase_claim_member")]

    def __str__(self) -> str:
        return f"{self.purchase} → {self.member_id}"


class Benefit(models.Model):
    """A benefit a tier promises (free parking hours, gift wrapping, a home-service visit, lounge entry)."""

    class Unit(models.TextChoices):
        HOUR = "hour", _("hours")
        TIME = "time", _("times")
        VISIT = "visit", _("visits")

    code = models.CharField(
        _("code"), max_length=20, unique=True, help_text=_("Letters, digits, _ and -: what a POS names it by."),
    )
    name = models.CharField(_("name"), max_length=100)
    unit = models.CharField(_("unit"), max_length=10, choices=Unit.choices, default=Unit.TIME)
    description = models.CharField(_("description"), max_length=200, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    history = AuditHistory()

    class Meta:
        verbose_name = _("benefit")
        verbose_name_plural = _("benefits")
        ordering = ["code"]
        permissions = [("use_benefit", _("Can record a member's use of a benefit"))]

    def __str__(self) -> str:
        return self.name


class BenefitQuota(models.Model):
    """How much of a benefit a tier (earned or paid) gives per period. A member holding both an earned and a paid
    tier with the benefit gets the larger quota."""

    class Period(models.TextChoices):
        DAY = "day", _("per day")
        MONTH = "month", _("per month")
        QUARTER = "quarter", _("per quarter")
        YEAR = "year", _("per year")

    benefit = models.ForeignKey(Benefit, on_delete=models.CASCADE, related_name="quotas", verbose_name=_("benefit"))
    tier = models.ForeignKey(
        "membership.Tier", on_delete=models.PROTECT, related_name="benefit_quotas", verbose_name=_("tier"),
    )
    quantity = models.PositiveIntegerField(_("quota"), validators=[MinValueValidator(1)])
    period = models.CharField(_("period"), max_length=10, choices=Period.choices, default=Period.MONTH)
    history = AuditHistory()

    class Meta:
        verbose_name = _("benefit quota")
        verbose_name_plural = _("benefit quotas")
        ordering = ["benefit", "tier__rank"]
        constraints = [
            models.UniqueConstraint(fields=["benefit", "tier"], name="benefit_quota_once_per_tier"),
            models.CheckConstraint(condition=models.Q(quantity__gte=1), name="benefit_quota_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.benefit} {self.tier}"


class BenefitUse(models.Model):
    """The usage ledger: one row per use (positive) or per use given back (negative), append-only."""

    member = models.ForeignKey(
        "membership.Member", on_delete=models.PROTECT, related_name="benefit_uses", verbose_name=_("member"),
        db_index=False,
    )
    benefit = models.ForeignKey(
        Benefit, on_delete=models.PROTECT, related_name="uses", verbose_name=_("benefit"), db_index=False,
    )
    quantity = models.IntegerField(_("quantity"), help_text=_("Positive uses, negative gives back."))
    period_start = models.DateField(_("period from"), help_text=_("The first day of the quota period it counts in."))
    quota = models.PositiveIntegerField(_("quota of the period"), help_text=_("The member's quota when used."))
    store = models.ForeignKey(
        "stores.Store", on_delete=models.PROTECT, related_name="+", verbose_name=_("store"), db_index=False,
    )
    terminal = models.ForeignKey(
        "stores.Terminal", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("terminal"), db_index=False,
    )
    receipt_no = models.CharField(_("receipt number"), max_length=64, blank=True)
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("clerk"), db_index=False,
    )
    note = models.CharField(_("note"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("time"), default=timezone.now)

    class Meta:
        verbose_name = _("benefit use")
        verbose_name_plural = _("benefit uses")
        ordering = ["-created_at", "-pk"]
        constraints = [models.CheckConstraint(condition=~models.Q(quantity=0), name="benefit_use_not_zero")]
        indexes = [
            models.Index(fields=["member", "benefit", "period_start"], name="benefit_use_member_period"),
            models.Index(fields=["store", "created_at"], name="benefit_use_store_time"),
        ]

    def __str__(self) -> str:
        return f"{self.member_id} {self.benefit_id} {self.quantity}"
