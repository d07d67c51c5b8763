from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from core.history import AuditHistory

MONEY = {"max_digits": 14, "decimal_places": 2}

# The legal figures of DESIGN section 7. CardRules may be set stricter than these, never looser: each is a field
# validator, a check in CardRules.clean and a CHECK constraint of the database.
# 商务部令2012年第9号 (单用途商业预付卡管理办法(试行)), card limits: a registered card (记名卡) holds at most 5,000
# yuan, a bearer card (不记名卡) at most 1,000.
LEGAL_REGISTERED_CAP = Decimal("5000.00")
LEGAL_BEARER_CAP = Decimal("1000.00")
# Same measures, real-name registration (实名登记): a bearer-card order of 10,000 yuan or more at once records the
# buyer.
LEGAL_BEARER_REAL_NAME_FROM = Decimal("10000.00")
# Same measures, non-cash purchase (非现金购卡): bank transfer only from 5,000 yuan at once for a company and from
# 50,000 for a person.
LEGAL_COMPANY_TRANSFER_FROM = Decimal("5000.00")
LEGAL_PERSON_TRANSFER_FROM = Decimal("50000.00")
# Same measures, validity: registered cards have no expiry; bearer cards are valid at least 3 years.
LEGAL_BEARER_MIN_VALIDITY_MONTHS = 36
# Same measures, escrow of prepaid funds (资金存管): at least 30% (group issuer, 集团发卡企业), 20% (scale issuer,
# 规模发卡企业) or 40% (brand issuer, 品牌发卡企业) of the previous quarter end's outstanding balance.
LEGAL_ESCROW_MIN_GROUP = Decimal("0.30")
LEGAL_ESCROW_MIN_SCALE = Decimal("0.20")
LEGAL_ESCROW_MIN_BRAND = Decimal("0.40")
# Same measures: outstanding prepaid balances stay within 40% of the issuer's main revenue of the previous year; the
# alert may come earlier, never later.
LEGAL_REVENUE_ALERT_SHARE = Decimal("0.40")
# Not figures of the law but the floor of our own rules (DESIGN section 7): a card is frozen after at most 5 wrong
# PINs in a row, and orders of one buyer are summed over at least 7 days to flag orders split below a threshold
# (the law counts an order "at once"; a shorter window would let split orders through unflagged).
MAX_PIN_ATTEMPTS = 5
MIN_SPLIT_WINDOW_DAYS = 7


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

    Each rule is enforced in the services with a message naming it; HQ may tighten them here, never loosen them
    past the legal figures above (validators, clean and the database's CHECK constraints).
    """

    class IssuerType(models.TextChoices):
        GROUP = "group", _("group issuer (集团发卡企业)")
        SCALE = "scale", _("scale issuer (规模发卡企业)")
        BRAND = "brand", _("brand issuer (品牌发卡企业)")

    # The least escrow rate the law allows for each kind of issuer.
    ESCROW_MINIMUM = {
        IssuerType.GROUP: LEGAL_ESCROW_MIN_GROUP,
        IssuerType.SCALE: LEGAL_ESCROW_MIN_SCALE,
        IssuerType.BRAND: LEGAL_ESCROW_MIN_BRAND,
    }

    registered_max_balance = models.DecimalField(
        _("registered card maximum balance"), **MONEY, default=LEGAL_REGISTERED_CAP,
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(LEGAL_REGISTERED_CAP)],
        help_text=_("A registered card (记名卡) never holds more, on any load, top-up or refund onto it. At most "
                    "5,000.00 (prepaid card rules). Cards already above a lowered limit take no further loads."),
    )
    bearer_max_balance = models.DecimalField(
        _("bearer card maximum balance"), **MONEY, default=LEGAL_BEARER_CAP,
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(LEGAL_BEARER_CAP)],
        help_text=_("A bearer card (不记名卡) never holds more. At most 1,000.00 (prepaid card rules)."),
    )
    bearer_real_name_from = models.DecimalField(
        _("bearer orders needing real name from"), **MONEY, default=LEGAL_BEARER_REAL_NAME_FROM,
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(LEGAL_BEARER_REAL_NAME_FROM)],
        help_text=_("A bearer-card order of this amount or more records the buyer's identity (实名登记). At most "
                    "10,000.00."),
    )
    company_transfer_from = models.DecimalField(
        _("company orders paid by bank transfer from"), **MONEY, default=LEGAL_COMPANY_TRANSFER_FROM,
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(LEGAL_COMPANY_TRANSFER_FROM)],
        help_text=_("A company buying this much or more at once pays by bank transfer only (非现金). At most "
                    "5,000.00."),
    )
    person_transfer_from = models.DecimalField(
        _("personal orders paid by bank transfer from"), **MONEY, default=LEGAL_PERSON_TRANSFER_FROM,
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(LEGAL_PERSON_TRANSFER_FROM)],
        help_text=_("A person buying this much or more at once pays by bank transfer only. At most 50,000.00."),
    )
    bearer_min_validity_months = models.PositiveSmallIntegerField(
        _("bearer card minimum validity (months)"), default=LEGAL_BEARER_MIN_VALIDITY_MONTHS,
        validators=[MinValueValidator(LEGAL_BEARER_MIN_VALIDITY_MONTHS)],
        help_text=_("Bearer cards are valid at least this long from activation, printed on the card. At least 36 "
                    "months (3 years)."),
    )
    split_window_days = models.PositiveSmallIntegerField(
        _("split-order window (days)"), default=MIN_SPLIT_WINDOW_DAYS,
        validators=[MinValueValidator(MIN_SPLIT_WINDOW_DAYS)],
        help_text=_("Orders of one buyer within this many days are added up to flag orders split below a limit. "
                    "At least 7 days."),
    )
    group_approval_from = models.DecimalField(
        _("group orders needing approval from"), **MONEY, default=Decimal("50000.00"),
        help_text=_("A corporate order of this amount or more needs a second person's approval; so does any "
                    "discounted order."),
    )
    issuer_type = models.CharField(
        _("issuer type"), max_length=8, choices=IssuerType.choices, default=IssuerType.GROUP,
        help_text=_("How the commerce authority classes the card issuer; it sets the least escrow rate (group "
                    "30%, scale 20%, brand 40%)."),
    )
    escrow_rate = models.DecimalField(
        _("escrow rate"), max_digits=4, decimal_places=2, default=LEGAL_ESCROW_MIN_GROUP,
        validators=[MinValueValidator(LEGAL_ESCROW_MIN_SCALE), MaxValueValidator(Decimal("1.00"))],
        help_text=_("Share of last quarter's outstanding balance held in escrow: at least the issuer type's share "
                    "(group issuer 30%, scale issuer 20%, brand issuer 40%)."),
    )
    escrow_guarantee = models.DecimalField(
        _("guarantee against escrow"), **MONEY, default=Decimal("0.00"),
        validators=[MinValueValidator(Decimal("0.00"))],
        help_text=_("A bank guarantee that reduces the escrow required."),
    )
    revenue_alert_share = models.DecimalField(
        _("alert when outstanding balances pass this share of last year's revenue"), max_digits=4,
        decimal_places=2, default=LEGAL_REVENUE_ALERT_SHARE,
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(LEGAL_REVENUE_ALERT_SHARE)],
        help_text=_("At most 40%."),
    )
    last_year_revenue = models.DecimalField(
        _("last year's revenue"), **MONEY, default=Decimal("0.00"), validators=[MinValueValidator(Decimal("0.00"))],
        help_text=_("The issuer's main business revenue of the previous year. While it is 0 the revenue alert is "
                    "off: the liability page says so, and card sales warn headquarters."),
    )
    pin_attempts = models.PositiveSmallIntegerField(
        _("wrong PINs before a card is frozen"), default=MAX_PIN_ATTEMPTS,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_PIN_ATTEMPTS)], help_text=_("At most 5."),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    history = AuditHistory()

    class Meta:
        verbose_name = _("prepaid card rules")
        verbose_name_plural = _("prepaid card rules")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(registered_max_balance__gt=0, registered_max_balance__lte=LEGAL_REGISTERED_CAP),
                name="card_rules_registered_cap_legal"),
            models.CheckConstraint(
                condition=models.Q(bearer_max_balance__gt=0, bearer_max_balance__lte=LEGAL_BEARER_CAP),
                name="card_rules_bearer_cap_legal"),
            models.CheckConstraint(
                condition=models.Q(bearer_real_name_from__gt=0,
                                   bearer_real_name_from__lte=LEGAL_BEARER_REAL_NAME_FROM),
                name="card_rules_real_name_legal"),
            models.CheckConstraint(
                condition=models.Q(company_transfer_from__gt=0, company_transfer_from__lte=LEGAL_COMPANY_TRANSFER_FROM,
                                   person_transfer_from__gt=0, person_transfer_from__lte=LEGAL_PERSON_TRANSFER_FROM),
                name="card_rules_transfer_legal"),
            models.CheckConstraint(
                condition=models.Q(bearer_min_validity_months__gte=LEGAL_BEARER_MIN_VALIDITY_MONTHS),
                name="card_rules_bearer_validity_legal"),
            models.CheckConstraint(condition=models.Q(split_window_days__gte=MIN_SPLIT_WINDOW_DAYS),
                                   name="card_rules_split_window_min"),
            models.CheckConstraint(condition=models.Q(pin_attempts__gte=1, pin_attempts__lte=MAX_PIN_ATTEMPTS),
                                   name="card_rules_pin_attempts_max"),
            models.CheckConstraint(
                condition=models.Q(escrow_rate__lte=1) & (
                    models.Q(issuer_type="group", escrow_rate__gte=LEGAL_ESCROW_MIN_GROUP)
                    | models.Q(issuer_type="scale", escrow_rate__gte=LEGAL_ESCROW_MIN_SCALE)
                    | models.Q(issuer_type="brand", escrow_rate__gte=LEGAL_ESCROW_MIN_BRAND)),
                name="card_rules_escrow_legal"),
            models.CheckConstraint(
                condition=models.Q(revenue_alert_share__gt=0, revenue_alert_share__lte=LEGAL_REVENUE_ALERT_SHARE,
                                   escrow_guarantee__gte=0, last_year_revenue__gte=0),
                name="card_rules_reporting_legal"),
        ]

    def __str__(self) -> str:
        return str(_("prepaid card rules"))

    @property
    def escrow_minimum(self) -> Decimal:
        return self.ESCROW_MINIMUM.get(self.issuer_type, LEGAL_ESCROW_MIN_BRAND)

    def clean(self):
        # The single-field bounds are the fields' validators; the escrow floor depends on the issuer type.
        if self.escrow_rate is not None and self.escrow_rate < self.escrow_minimum:
            raise ValidationError({"escrow_rate": _(
                "A %(issuer_type)s holds at least %(rate)s%% of the outstanding balance in escrow (prepaid card "
                "rules: escrow)."
            ) % {"issuer_type": self.get_issuer_type_display(), "rate": f"{self.escrow_minimum * 100:.0f}"}})

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
        help_text=_("Months from activation. Registered cards have no expiry: leave it empty. Bearer cards need at "
                    "least the rules' minimum (never under 36 months)."),
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
            # Registered cards have no expiry; bearer cards are valid at least 3 years (prepaid card rules).
            models.CheckConstraint(condition=~models.Q(kind="registered") | models.Q(validity_months__isnull=True),
                                   name="card_product_registered_no_validity"),
            models.CheckConstraint(
                condition=~models.Q(kind="bearer") | models.Q(
                    validity_months__isnull=False, validity_months__gte=LEGAL_BEARER_MIN_VALIDITY_MONTHS),
                name="card_product_bearer_validity_legal"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def is_registered(self) -> bool:
        return self.kind == self.Kind.REGISTERED

    @property
    def legal_cap(self) -> Decimal:
        return LEGAL_REGISTERED_CAP if self.is_registered else LEGAL_BEARER_CAP

    def face_value_list(self) -> list[Decimal]:
        return [Decimal(str(value)) for value in self.face_values or []]

    def clean(self):
        errors = {}
        rules = CardRules.current()
        cap = min(rules.registered_max_balance if self.is_registered else rules.bearer_max_balance, self.legal_cap)
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
        if self.kind == self.Kind.REGISTERED and self.validity_months is not None:
            errors["validity_months"] = _(
                "Registered cards (记名卡) have no expiry (prepaid card rules: validity); leave the validity empty.")
        if self.kind == self.Kind.BEARER:
            months = max(rules.bearer_min_validity_months, LEGAL_BEARER_MIN_VALIDITY_MONTHS)
            if self.validity_months is None or self.validity_months < months:
                errors["validity_months"] = _(
                    "Bearer cards are valid at least %(months)s months (prepaid card rules)."
                ) % {"months": months}
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
