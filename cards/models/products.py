from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from core.history import AuditHistory

MONEY = {"max_digits": 14, "decimal_places": 2}


class Brand(models.Model):
    """A brand partner that co-issues cards (品牌联名卡) and funds part of their discount, billed per period."""

    code = models.CharField(_("code"), max_length=20, unique=True)
    name = models.CharField(_("name"), max_length=100)
    is_active = models.BooleanField(_("active"), default=True)
    contact_name = models.CharField(_("contact person"), max_length=100, blank=True)
    contact_phone = models.CharField(_("contact phone"), max_length=20, blank=True)
    contact_email = models.EmailField(_("contact e-mail"), blank=True)
    contract_starts_on = models.DateField(_("contract starts on"), null=True, blank=True)
    contract_ends_on = models.DateField(_("contract ends on"), null=True, blank=True)
    billing_name = models.CharField(
        _("billed company"), max_length=100, blank=True,
        help_text=_("The company name the brand's statements and invoices are made out to."),
    )
    billing_tax_no = models.CharField(_("taxpayer number"), max_length=20, blank=True)
    billing_address = models.CharField(_("billing address"), max_length=200, blank=True)
    billing_bank = models.CharField(_("bank"), max_length=100, blank=True)
    billing_account_no = models.CharField(_("bank account number"), max_length=40, blank=True)
    history = AuditHistory()

    class Meta:
        verbose_name = _("brand partner")
        verbose_name_plural = _("brand partners")
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(contract_ends_on__isnull=True) | models.Q(contract_starts_on__isnull=True)
                | models.Q(contract_ends_on__gte=models.F("contract_starts_on")),
                name="brand_contract_period_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    def clean(self):
        if self.contract_starts_on and self.contract_ends_on and self.contract_ends_on < self.contract_starts_on:
            raise ValidationError({"contract_ends_on": _("The contract cannot end before it starts.")})


class CardRules(models.Model):
    """The prepaid-card rules of DESIGN section 7 (商务部令2012年第9号, 税务总局公告2016年第53号), one row.

    Each rule is enforced in the services with a message naming it; HQ may tighten them here.
    """

    registered_max_balance = models.DecimalField(
        _("registered card maximum balance"), **MONEY, default=Decimal("5000.00"),
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text=_("A registered card (记名卡) never holds more, on any load, top-up or refund onto it."),
    )
    bearer_max_balance = models.DecimalField(
        _("bearer card maximum balance"), **MONEY, default=Decimal("1000.00"),
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text=_("A bearer card (不记名卡) never holds more."),
    )
    bearer_real_name_from = models.DecimalField(
        _("bearer orders needing real name from"), **MONEY, default=Decimal("10000.00"),
        help_text=_("A bearer-card order of this amount or more records the buyer's identity (实名登记)."),
    )
    company_transfer_from = models.DecimalField(
        _("company orders paid by bank transfer from"), **MONEY, default=Decimal("5000.00"),
        help_text=_("A company buying this much or more at once pays by bank transfer only (非现金)."),
    )
    person_transfer_from = models.DecimalField(
        _("personal orders paid by bank transfer from"), **MONEY, default=Decimal("50000.00"),
        help_text=_("A person buying this much or more at once pays by bank transfer only."),
    )
    bearer_min_validity_months = models.PositiveSmallIntegerField(
        _("bearer card minimum validity (months)"), default=36,
        help_text=_("Bearer cards are valid at least this long from activation, printed on the card."),
    )
    split_window_days = models.PositiveSmallIntegerField(
        _("split-order window (days)"), default=7,
        help_text=_("Orders of one buyer within this many days are added up to flag orders split below a limit."),
    )
    group_approval_from = models.DecimalField(
        _("group orders needing approval from"), **MONEY, default=Decimal("50000.00"),
        help_text=_("A corporate order of this amount or more needs a second person's approval; so does any "
                    "discounted order."),
    )
    escrow_rate = models.DecimalField(
        _("escrow rate"), max_digits=4, decimal_places=2, default=Decimal("0.30"),
        validators=[MinValueValidator(Decimal("0.00"))],
        help_text=_("Share of last quarter's outstanding balance held in escrow (group issuer 30%, scale issuer "
                    "20%, brand issuer 40%)."),
    )
    escrow_guarantee = models.DecimalField(
        _("guarantee against escrow"), **MONEY, default=Decimal("0.00"),
        help_text=_("A bank guarantee that reduces the escrow required."),
    )
    revenue_alert_share = models.DecimalField(
        _("alert when outstanding balances pass this share of last year's revenue"), max_digits=4,
        decimal_places=2, default=Decimal("0.40"),
    )
    last_year_revenue = models.DecimalField(_("last year's revenue"), **MONEY, default=Decimal("0.00"))
    pin_attempts = models.PositiveSmallIntegerField(
        _("wrong PINs before a card is frozen"), default=5, validators=[MinValueValidator(1)],
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    history = AuditHistory()

    class Meta:
        verbose_name = _("prepaid card rules")
        verbose_name_plural = _("prepaid card rules")

    def __str__(self) -> str:
        return str(_("prepaid card rules"))

    @classmethod
    def current(cls) -> "CardRules":
        rules = cls.objects.order_by("pk").first()
        return rules if rules is not None else cls.objects.create()


class CardProduct(models.Model):
    """What a card is: registered or bearer, reloadable, its limit, validity and PIN (STORED, BEARER)."""

    class Kind(models.TextChoices):
        REGISTERED = "registered", _("registered (记名)")
        BEARER = "bearer", _("bearer (不记名)")

    class Medium(models.TextChoices):
        PHYSICAL = "physical", _("physical card")
        ELECTRONIC = "electronic", _("e-card")

    code = models.CharField(_("code"), max_length=20, unique=True)
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    medium = models.CharField(_("medium"), max_length=12, choices=Medium.choices, default=Medium.PHYSICAL)
    reloadable = models.BooleanField(_("reloadable"), default=False)
    max_balance = models.DecimalField(
        _("maximum balance"), **MONEY, validators=[MinValueValidator(Decimal("0.01"))],
        help_text=_("At most the rules' limit for registered or bearer cards."),
    )
    face_values = models.JSONField(
        _("face values"), default=list, blank=True,
        help_text=_("The amounts printed cards of this product are made with, e.g. [\"100.00\", \"500.00\"]."),
    )
    validity_months = models.PositiveSmallIntegerField(
        _("validity (months)"), null=True, blank=True,
        help_text=_("Months from activation; empty means no expiry (registered cards). Bearer cards need at least "
                    "the rules' minimum."),
    )
    pin_required = models.BooleanField(_("PIN required"), default=False)
    brand = models.ForeignKey(
        Brand, on_delete=models.PROTECT, null=True, blank=True, related_name="products", verbose_name=_("brand"),
    )
    is_active = models.BooleanField(_("active"), default=True)
    history = AuditHistory()

    class Meta:
        verbose_name = _("card product")
        verbose_name_plural = _("card products")
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=models.Q(max_balance__gt=0), name="card_product_max_balance_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def is_registered(self) -> bool:
        return self.kind == self.Kind.REGISTERED

    def face_value_list(self) -> list[Decimal]:
        return [Decimal(str(value)) for value in self.face_values or []]

    def clean(self):
        errors = {}
        rules = CardRules.current()
        cap = rules.registered_max_balance if self.is_registered else rules.bearer_max_balance
        if self.max_balance is not None and self.max_balance > cap:
            errors["max_balance"] = _("A %(kind)s card holds at most %(cap)s (prepaid card rules).") % {
                "kind": self.get_kind_display(), "cap": cap}
        values = []
        try:
            values = [Decimal(str(value)) for value in self.face_values or []]
        except (ArithmeticError, ValueError, TypeError):
            errors["face_values"] = _("Write face values as amounts, e.g. [\"100.00\", \"500.00\"].")
        for value in values:
            if value <= 0 or value != value.quantize(Decimal("0.01")):
                errors["face_values"] = _("Face values are positive amounts with at most two decimals.")
            elif self.max_balance is not None and value > self.max_balance:
                errors["face_values"] = _("Face value %(value)s is above the maximum balance.") % {"value": value}
        if self.kind == self.Kind.BEARER:
            if self.validity_months is None or self.validity_months < rules.bearer_min_validity_months:
                errors["validity_months"] = _(
                    "Bearer cards are valid at least %(months)s months (prepaid card rules)."
                ) % {"months": rules.bearer_min_validity_months}
        if errors:
            raise ValidationError(errors)


class CardNumberCounter(models.Model):
    """The next serial of card numbers with one prefix; a batch reserves its range under a row lock."""

    prefix = models.CharField(_("prefix"), max_length=6, unique=True)
    next_serial = models.BigIntegerField(_("next serial"), default=1)

    class Meta:
        verbose_name = _("card number counter")
        verbose_name_plural = _("card number counters")

    def __str__(self) -> str:
        return f"{self.prefix}: {self.next_serial}"
