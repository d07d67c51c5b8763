import hashlib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _
from stdnum.cn import uscc

from core.history import AuditHistory

code_validator = RegexValidator(
    r"^[A-Z0-9_]{2,20}$", _("Use 2 to 20 capital letters, digits or underscores.")
)
phone_validator = RegexValidator(
    r"^[0-9+\-() ]{5,20}$", _("Enter a phone number of digits, spaces, dashes or brackets.")
)


def validate_uscc(value: str) -> None:
    if not uscc.is_valid(value):
        raise ValidationError(_("This is not a valid unified social credit code."))


class LegalEntity(models.Model):
    """A company of the group that issues receipts, cards and invoices (法人主体)."""

    code = models.CharField(_("code"), max_length=20, unique=True, validators=[code_validator])
    name = models.CharField(_("name"), max_length=100)
    credit_code = models.CharField(
        _("unified social credit code"),
        max_length=18,
        unique=True,
        validators=[validate_uscc],
        help_text=_("The 18-character 统一社会信用代码 of the company."),
    )
    address = models.CharField(_("registered address"), max_length=200, blank=True)
    prepaid_filing_no = models.CharField(
        _("prepaid card filing number"),
        max_length=50,
        blank=True,
        help_text=_("备案编号 issued by the commerce authority; printed on card receipts."),
    )
    history = AuditHistory()

    class Meta:
        verbose_name = _("legal entity")
        verbose_name_plural = _("legal entities")
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class Format(models.Model):
    """A retail format (业态) with its own company, POS and finance system."""

    code = models.CharField(_("code"), max_length=20, unique=True, validators=[code_validator])
    name = models.CharField(_("name"), max_length=50)
    legal_entity = models.ForeignKey(
        LegalEntity, on_delete=models.PROTECT, related_name="formats", verbose_name=_("legal entity")
    )
    finance_system_code = models.CharField(
        _("finance system code"), max_length=30, blank=True,
        help_text=_("How this format's finance system names itself in exports."),
    )
    pos_system_code = models.CharField(
        _("POS system code"), max_length=30, blank=True,
        help_text=_("The vendor system of this format's POS terminals."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    history = AuditHistory()

    class Meta:
        verbose_name = _("format")
        verbose_name_plural = _("formats")
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class Region(models.Model):
    """A province, or a city within one."""

    class Level(models.TextChoices):
        PROVINCE = "province", _("province")
        CITY = "city", _("city")

    code = models.CharField(_("code"), max_length=20, unique=True, validators=[code_validator])
    name = models.CharField(_("name"), max_length=50)
    level = models.CharField(_("level"), max_length=10, choices=Level.choices)
    parent = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True,
        related_name="children", verbose_name=_("parent region"),
    )
    history = AuditHistory()

    class Meta:
        verbose_name = _("region")
        verbose_name_plural = _("regions")
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(level="province", parent__isnull=True)
                | models.Q(level="city", parent__isnull=False),
                name="region_city_has_province",
            )
        ]

    def __str__(self) -> str:
        if self.parent_id:
            return f"{self.parent.name} {self.name}"
        return self.name


class Store(models.Model):
    class Status(models.TextChoices):
        PLANNED = "planned", _("planned")
        OPEN = "open", _("open")
        CLOSED = "closed", _("closed")

    code = models.CharField(_("code"), max_length=20, unique=True, validators=[code_validator])
    name = models.CharField(_("name"), max_length=100)
    format = models.ForeignKey(Format, on_delete=models.PROTECT, related_name="stores", verbose_name=_("format"))
    region = models.ForeignKey(
        Region, on_delete=models.PROTECT, related_name="stores", verbose_name=_("region"),
        limit_choices_to={"level": Region.Level.CITY},
    )
    address = models.CharField(_("address"), max_length=200, blank=True)
    phone = models.CharField(_("phone"), max_length=20, blank=True, validators=[phone_validator])
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.OPEN)
    opened_on = models.DateField(_("opening date"), null=True, blank=True)
    closed_on = models.DateField(_("closing date"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    history = AuditHistory()

    class Meta:
        verbose_name = _("store")
        verbose_name_plural = _("stores")
        ordering = ["code"]
        permissions = [("approve_store_close", _("Can approve closing a store"))]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(closed_on__isnull=True)
                | models.Q(opened_on__isnull=True)
                | models.Q(closed_on__gte=models.F("opened_on")),
                name="store_closes_after_opening",
            )
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def legal_entity(self) -> LegalEntity:
        return self.format.legal_entity


def hash_api_key(key: str) -> str:
    # Keys are 256-bit random tokens, so one round of SHA-256 cannot be brute-forced
    # and keeps the per-request lookup a single index probe.
    return hashlib.sha256(key.encode()).hexdigest()


class Terminal(models.Model):
    """A POS terminal; its API key acts as its store and only that store."""

    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="terminals", verbose_name=_("store"))
    name = models.CharField(_("name"), max_length=50)
    key_prefix = models.CharField(
        _("key prefix"), max_length=8, editable=False,
        help_text=_("The first characters of the key, to tell keys apart."),
    )
    key_hash = models.CharField(_("key hash"), max_length=64, unique=True, editable=False)
    is_active = models.BooleanField(_("active"), default=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    history = AuditHistory(excluded_fields=["last_used_at"])

    class Meta:
        verbose_name = _("POS terminal")
        verbose_name_plural = _("POS terminals")
        ordering = ["store__code", "name"]
        constraints = [models.UniqueConstraint(fields=["store", "name"], name="terminal_name_unique_per_store")]

    def __str__(self) -> str:
        return f"{self.store.code}/{self.name}"


class StaffProfile(models.Model):
    """Where a staff user works: headquarters sees every store, store staff only theirs."""

    class Scope(models.TextChoices):
        HQ = "hq", _("headquarters")
        STORES = "stores", _("stores")

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_profile", verbose_name=_("user")
    )
    scope = models.CharField(_("scope"), max_length=10, choices=Scope.choices, default=Scope.STORES)
    stores = models.ManyToManyField(Store, blank=True, related_name="staff", verbose_name=_("stores"))
    employee_no = models.CharField(_("employee number"), max_length=30, blank=True)
    phone = models.CharField(_("phone"), max_length=20, blank=True, validators=[phone_validator])
    history = AuditHistory(m2m_fields=[stores])

    class Meta:
        verbose_name = _("staff profile")
        verbose_name_plural = _("staff profiles")

    def __str__(self) -> str:
        return str(self.user)
