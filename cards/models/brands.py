"""Brand-card programmes (品牌联名卡): the discount a brand funds on its listed SKUs, and what it is billed."""

from decimal import Decimal

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from cards.models.cards import CardTransaction
from cards.models.products import MONEY, Brand, CardProduct
from core.history import AuditHistory

RATE = {"max_digits": 5, "decimal_places": 4}


class BrandProgramme(models.Model):
    """A discount on a brand's SKUs paid with the cards of one product, funded (partly) by the brand.

    Started only through approval; the SKUs it covers are versioned lists (BrandSkuList) dated from when
    they apply, so a statement of any past day is computed with the list of that day.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", _("draft")
        PENDING = "pending", _("waiting for approval")
        ACTIVE = "active", _("active")
        REJECTED = "rejected", _("rejected")
        ENDED = "ended", _("ended")

    code = models.CharField(_("code"), max_length=20, unique=True)
    name = models.CharField(_("name"), max_length=100)
    brand = models.ForeignKey(Brand, on_delete=models.PROTECT, related_name="programmes", verbose_name=_("brand"))
    product = models.ForeignKey(
        CardProduct, on_delete=models.PROTECT, related_name="programmes", verbose_name=_("card product"),
        help_text=_("Paying with a card of this product gives the discount."),
    )
    discount_rate = models.DecimalField(
        _("discount rate"), **RATE,
        validators=[MinValueValidator(Decimal("0.0001")), MaxValueValidator(Decimal("0.9999"))],
        help_text=_("Share of an eligible line's amount given as discount, e.g. 0.05 for 5%."),
    )
    brand_share = models.DecimalField(
        _("share funded by the brand"), **RATE, default=Decimal("1.0000"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1"))],
        help_text=_("Share of the discount the brand pays, billed on its statement; 1 means all of it."),
    )
    cap_per_receipt = models.DecimalField(
        _("discount cap per receipt"), **MONEY, null=True, blank=True,
        help_text=_("At most this much discount on one payment; empty means no cap."),
    )
    cap_per_card = models.DecimalField(
        _("discount cap per card"), **MONEY, null=True, blank=True,
        help_text=_("At most this much discount on one card over the whole programme; empty means no cap."),
    )
    starts_on = models.DateField(_("starts on"))
    ends_on = models.DateField(_("ends on"), null=True, blank=True, help_text=_("Empty means until ended."))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.DRAFT)
    note = models.CharField(_("note"), max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("created by")
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    approved_at = models.DateTimeField(_("approved at"), null=True, blank=True)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    history = AuditHistory()

    class Meta:
        verbose_name = _("brand card programme")
        verbose_name_plural = _("brand card programmes")
        ordering = ["-starts_on", "code"]
        indexes = [models.Index(fields=["product", "status"], name="brand_prog_product_status")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(discount_rate__gt=0) & models.Q(discount_rate__lt=1), name="brand_prog_rate_range"
            ),
            models.CheckConstraint(
                condition=models.Q(brand_share__gte=0) & models.Q(brand_share__lte=1), name="brand_prog_share_range"
            ),
            models.CheckConstraint(
                condition=models.Q(ends_on__isnull=True) | models.Q(ends_on__gte=models.F("starts_on")),
                name="brand_prog_dates_ordered",
            ),
            models.CheckConstraint(
                condition=models.Q(cap_per_receipt__isnull=True) | models.Q(cap_per_receipt__gt=0),
                name="brand_prog_receipt_cap_positive",
            ),
            models.CheckConstraint(
                condition=models.Q(cap_per_card__isnull=True) | models.Q(cap_per_card__gt=0),
                name="brand_prog_card_cap_positive",
            ),
        ]
        permissions = [("approve_brand_programme", _("Can approve the start of brand card programmes"))]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class BrandSkuList(models.Model):
    """One version of a programme's eligible SKUs, applying from `valid_from` until a later version applies.

    An uploaded list is staged (previewed) first and applies only once confirmed.
    """

    programme = models.ForeignKey(
        BrandProgramme, on_delete=models.PROTECT, related_name="sku_lists", verbose_name=_("programme")
    )
    valid_from = models.DateField(_("applies from"))
    file_name = models.CharField(_("file"), max_length=200, blank=True)
    sku_count = models.PositiveIntegerField(_("SKUs"), default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("uploaded by")
    )
    created_at = models.DateTimeField(_("uploaded at"), default=timezone.now)
    confirmed_at = models.DateTimeField(_("confirmed at"), null=True, blank=True)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("confirmed by"),
    )

    class Meta:
        verbose_name = _("eligible SKU list")
        verbose_name_plural = _("eligible SKU lists")
        ordering = ["-valid_from", "-pk"]
        indexes = [models.Index(fields=["programme", "valid_from"], name="brand_sku_list_from")]

    def __str__(self) -> str:
        return f"{self.programme_id} {self.valid_from.isoformat()}"


class BrandSku(models.Model):
    sku_list = models.ForeignKey(BrandSkuList, on_delete=models.CASCADE, related_name="skus", verbose_name=_("list"))
    sku = models.CharField(_("SKU"), max_length=64)
    name = models.CharField(_("product name"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("eligible SKU")
        verbose_name_plural = _("eligible SKUs")
        constraints = [models.UniqueConstraint(fields=["sku_list", "sku"], name="brand_sku_unique")]

    def __str__(self) -> str:
        return self.sku


class BrandDiscount(models.Model):
    """The brand-card discount of one POS card transaction; append-only, the source of brand statements.

    A payment's row has positive amounts; a refund or reversal gives back its share with negative amounts,
    so the sum over any period is what the customers were given and what the brand owes.
    """

    transaction = models.OneToOneField(
        "cards.CardTransaction", on_delete=models.PROTECT, related_name="brand_discount",
        verbose_name=_("card transaction"),
    )
    kind = models.CharField(_("kind"), max_length=8, choices=CardTransaction.Kind.choices)
    programme = models.ForeignKey(
        BrandProgramme, on_delete=models.PROTECT, related_name="discounts", verbose_name=_("programme"),
        db_index=False,
    )
    brand = models.ForeignKey(Brand, on_delete=models.PROTECT, related_name="+", verbose_name=_("brand"),
                              db_index=False)
    card = models.ForeignKey("cards.Card", on_delete=models.PROTECT, related_name="+", verbose_name=_("card"))
    store = models.ForeignKey("stores.Store", on_delete=models.PROTECT, related_name="+", verbose_name=_("store"),
                              db_index=False)
    business_date = models.DateField(_("business date"))
    eligible_amount = models.DecimalField(
        _("eligible sales"), **MONEY, help_text=_("The amount of the brand's SKUs paid (negative when given back)."),
    )
    discount = models.DecimalField(_("discount"), **MONEY)
    brand_amount = models.DecimalField(_("funded by the brand"), **MONEY)
    lines = models.JSONField(_("eligible lines"), default=list, blank=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(_("time"), default=timezone.now)

    class Meta:
        verbose_name = _("brand card discount")
        verbose_name_plural = _("brand card discounts")
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["brand", "business_date"], name="brand_disc_brand_day"),
            models.Index(fields=["programme", "card"], name="brand_disc_prog_card"),
        ]

    def __str__(self) -> str:
        return f"{self.transaction_id} {self.discount}"
