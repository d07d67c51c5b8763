"""Settlement between the group's companies, POS reconciliation and the finance systems' files.

Clearing reads the ledgers (cards, points, vouchers) and the coupon redemptions of a day and writes what each
company owes each other as clearing lines; a settlement period (a month) gathers them into statements per pair
of companies, is approved by a second person and is then locked: the database refuses any change to what
belongs to it. Reconciliation matches each POS's daily file with the card payments and purchases recorded here.
"""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from core.history import AuditHistory

MONEY = {"max_digits": 14, "decimal_places": 2}
ZERO = Decimal("0.00")


class ClearingRule(models.Model):
    """How one company settles with another: a card honoured elsewhere is paid at face value less the fee rate;
    points at the points-to-cash rate (or this rule's own rate). A rule without a honourer applies to every
    company the issuer has no rule of its own for."""

    issuer = models.ForeignKey("stores.LegalEntity", on_delete=models.PROTECT, related_name="+",
                               verbose_name=_("issuing company"))
    honourer = models.ForeignKey(
        "stores.LegalEntity", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("honouring company"), help_text=_("Leave empty for every other company."),
    )
    card_fee_rate = models.DecimalField(
        _("card service fee rate"), max_digits=5, decimal_places=4, default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("0.1"))],
        help_text=_("Kept by the issuer from card spending it pays on, e.g. 0.0060 for 0.6%."),
    )
    points_yuan_per_point = models.DecimalField(
        _("yuan per point"), max_digits=10, decimal_places=6, null=True, blank=True,
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_("Leave empty to use the points-to-cash rate of the points policy."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    note = models.CharField(_("note"), max_length=200, blank=True)
    history = AuditHistory()

    class Meta:
        verbose_name = _("clearing rule")
        verbose_name_plural = _("clearing rules")
        ordering = ["issuer__code", "honourer__code"]
        constraints = [
            models.UniqueConstraint(fields=["issuer", "honourer"], name="clearing_rule_pair_unique"),
            models.UniqueConstraint(fields=["issuer"], condition=models.Q(honourer__isnull=True),
                                    name="clearing_rule_default_unique"),
            models.CheckConstraint(condition=models.Q(card_fee_rate__gte=0, card_fee_rate__lte=Decimal("0.1")),
                                   name="clearing_rule_fee_rate_range"),
        ]

    def __str__(self) -> str:
        return f"{self.issuer} → {self.honourer or _('every other company')}"


class SettlementPeriod(models.Model):
    """A month (by default) whose statements are approved by a second person and then locked."""

    class Status(models.TextChoices):
        OPEN = "open", _("open")
        CLOSING = "closing", _("waiting for approval")
        LOCKED = "locked", _("locked")

    code = models.CharField(_("period"), max_length=10, unique=True, help_text=_("e.g. 2026-11"))
    starts_on = models.DateField(_("first day"))
    ends_on = models.DateField(_("last day"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.OPEN)
    close_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("close requested by"),
    )
    locked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("approved and locked by"),
    )
    locked_at = models.DateTimeField(_("locked at"), null=True, blank=True)
    # The figures of the close, kept as they were on the day the period was locked.
    card_outstanding = models.DecimalField(_("card balances outstanding"), **MONEY, null=True, blank=True)
    points_outstanding = models.BigIntegerField(_("points outstanding"), null=True, blank=True)
    points_value = models.DecimalField(_("points outstanding, in yuan"), **MONEY, null=True, blank=True)
    escrow_base = models.DecimalField(_("escrow base (previous quarter end)"), **MONEY, null=True, blank=True)
    escrow_required = models.DecimalField(_("escrow required"), **MONEY, null=True, blank=True)
    note = models.CharField(_("note"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("settlement period")
        verbose_name_plural = _("settlement periods")
        ordering = ["-starts_on"]
        permissions = [
            ("close_settlementperiod", _("Can ask to close a settlement period")),
            ("approve_settlementperiod", _("Can approve and lock a settlement period")),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(ends_on__gte=models.F("starts_on")),
                                   name="settlement_period_ends_after_start"),
            models.CheckConstraint(
                condition=~models.Q(status="locked") | models.Q(locked_at__isnull=False),
                name="settlement_period_locked_has_time",
            ),
        ]

    def __str__(self) -> str:
        return self.code

    @property
    def is_locked(self) -> bool:
        return self.status == self.Status.LOCKED


class ClearingRun(models.Model):
    """One day's clearing: what was read and written, how long it took, or why it failed."""

    class Status(models.TextChoices):
        RUNNING = "running", _("running")
        DONE = "done", _("done")
        FAILED = "failed", _("failed")

    business_date = models.DateField(_("business date"), unique=True)
    period = models.ForeignKey(SettlementPeriod, on_delete=models.PROTECT, related_name="runs",
                               verbose_name=_("settlement period"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.RUNNING)
    rows_read = models.BigIntegerField(_("ledger rows read"), default=0)
    lines = models.PositiveIntegerField(_("clearing lines"), default=0)
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)
    run_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                               related_name="+", verbose_name=_("run by"))

    class Meta:
        verbose_name = _("clearing run")
        verbose_name_plural = _("clearing runs")
        ordering = ["-business_date"]

    def __str__(self) -> str:
        return str(self.business_date)

    @property
    def duration(self):
        return self.finished_at - self.started_at if self.finished_at else None


class ClearingLine(models.Model):
    """What one company owes another for one kind of movement on one day.

    `net` is what the issuer owes the honourer (negative: the honourer owes the issuer). A line with issuer and
    honourer the same company is kept for the finance files and the matrix's diagonal; it moves nothing between
    companies. An adjusting line corrects an earlier one (`corrects`, and `corrects_text` says what) and lands
    in the open period of the day it was made.
    """

    class Kind(models.TextChoices):
        CARD_LOAD = "card_load", _("card sales and top-ups")
        CARD_DEBIT = "card_debit", _("card spending")
        CARD_REFUND = "card_refund", _("refunds onto cards")
        CARD_REVERSE = "card_reverse", _("voided card payments")
        CARD_ADJUST = "card_adjust", _("card balance adjustments")
        POINTS_EARN = "points_earn", _("points earned")
        POINTS_REDEEM = "points_redeem", _("points redeemed")
        POINTS_CASH_OUT = "points_cash_out", _("points turned into cash")
        POINTS_EXPIRE = "points_expire", _("points expired")
        COUPON = "coupon", _("coupon discounts")
        VOUCHER = "voucher", _("pickup vouchers redeemed")
        ADJUSTMENT = "adjustment", _("adjusting line")

    period = models.ForeignKey(SettlementPeriod, on_delete=models.PROTECT, related_name="lines",
                               verbose_name=_("settlement period"))
    business_date = models.DateField(_("business date"))
    run = models.ForeignKey(ClearingRun, on_delete=models.PROTECT, null=True, blank=True, related_name="clearing_lines",
                            verbose_name=_("clearing run"))
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    issuer = models.ForeignKey("stores.LegalEntity", on_delete=models.PROTECT, null=True, blank=True,
                               related_name="+", verbose_name=_("issuing company"))
    honourer = models.ForeignKey("stores.LegalEntity", on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="+", verbose_name=_("honouring company"))
    count = models.PositiveIntegerField(_("movements"), default=0)
    points = models.BigIntegerField(_("points"), default=0)
    gross = models.DecimalField(_("gross amount"), **MONEY, default=ZERO)
    fee = models.DecimalField(_("service fee"), **MONEY, default=ZERO)
    net = models.DecimalField(_("owed by the issuer"), **MONEY, default=ZERO,
                              help_text=_("Negative: the honouring company owes the issuer."))
    corrects = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="corrections",
                                 verbose_name=_("corrects"))
    corrects_text = models.CharField(_("what it corrects"), max_length=200, blank=True)
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+", verbose_name=_("created by"))
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("clearing line")
        verbose_name_plural = _("clearing lines")
        ordering = ["-business_date", "kind", "issuer_id", "honourer_id"]
        indexes = [
            models.Index(fields=["period", "issuer", "honourer"], name="clearing_line_period_pair"),
            models.Index(fields=["business_date", "kind"], name="clearing_line_day_kind"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind="adjustment", run__isnull=True)
                | (~models.Q(kind="adjustment") & models.Q(run__isnull=False)),
                name="clearing_line_adjustment_has_no_run",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.business_date} {self.get_kind_display()} {self.net}"


class Statement(models.Model):
    """What two companies owe each other in a period: the gross each way and the net, with its lines.

    `company_a` is the one with the lower code; `net` is what company_a pays company_b (negative: b pays a).
    """

    period = models.ForeignKey(SettlementPeriod, on_delete=models.PROTECT, related_name="statements",
                               verbose_name=_("settlement period"))
    company_a = models.ForeignKey("stores.LegalEntity", on_delete=models.PROTECT, related_name="+",
                                  verbose_name=_("company A"))
    company_b = models.ForeignKey("stores.LegalEntity", on_delete=models.PROTECT, related_name="+",
                                  verbose_name=_("company B"))
    a_owes_b = models.DecimalField(_("A owes B"), **MONEY, default=ZERO)
    b_owes_a = models.DecimalField(_("B owes A"), **MONEY, default=ZERO)
    net = models.DecimalField(_("net, A pays B"), **MONEY, default=ZERO,
                              help_text=_("Negative: company B pays company A."))
    built_at = models.DateTimeField(_("built at"), default=timezone.now)

    class Meta:
        verbose_name = _("settlement statement")
        verbose_name_plural = _("settlement statements")
        ordering = ["-period__starts_on", "company_a__code", "company_b__code"]
        constraints = [
            models.UniqueConstraint(fields=["period", "company_a", "company_b"], name="statement_pair_unique"),
            models.CheckConstraint(condition=~models.Q(company_a=models.F("company_b")),
                                   name="statement_two_companies"),
        ]

    def __str__(self) -> str:
        return f"{self.period} {self.company_a} ⇄ {self.company_b}"


class StatementLine(models.Model):
    """One kind of movement between the statement's two companies, one direction, over the period."""

    statement = models.ForeignKey(Statement, on_delete=models.PROTECT, related_name="lines",
                                  verbose_name=_("statement"))
    kind = models.CharField(_("kind"), max_length=16, choices=ClearingLine.Kind.choices)
    issuer = models.ForeignKey("stores.LegalEntity", on_delete=models.PROTECT, related_name="+",
                               verbose_name=_("issuing company"))
    honourer = models.ForeignKey("stores.LegalEntity", on_delete=models.PROTECT, related_name="+",
                                 verbose_name=_("honouring company"))
    count = models.PositiveIntegerField(_("movements"), default=0)
    points = models.BigIntegerField(_("points"), default=0)
    gross = models.DecimalField(_("gross amount"), **MONEY, default=ZERO)
    fee = models.DecimalField(_("service fee"), **MONEY, default=ZERO)
    net = models.DecimalField(_("owed by the issuer"), **MONEY, default=ZERO)
    corrects_text = models.CharField(_("what it corrects"), max_length=500, blank=True)

    class Meta:
        verbose_name = _("statement line")
        verbose_name_plural = _("statement lines")
        ordering = ["statement", "kind", "issuer_id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.net}"


class FinanceExportLayout(models.Model):
    """The columns of one file a format's finance system takes, editable by staff."""

    class Dataset(models.TextChoices):
        CARD_SALES = "card_sales", _("card sales and top-ups (invoice item 601)")
        CARD_SPENDING = "card_spending", _("card spending per store")
        REFUNDS = "refunds", _("refunds onto cards")
        POINTS = "points", _("points liability movements")
        COUPONS = "coupons", _("coupon discounts")
        CLEARING = "clearing", _("clearing lines")

    class FileType(models.TextChoices):
        CSV = "csv", "CSV"
        XLSX = "xlsx", "Excel"

    class Encoding(models.TextChoices):
        UTF8 = "utf-8", "UTF-8"
        UTF8_BOM = "utf-8-sig", _("UTF-8 with BOM")
        GBK = "gbk", "GBK"

    class AmountFormat(models.TextChoices):
        PLAIN = "plain", _("1234.50")
        GROUPED = "grouped", _("1,234.50")
        CENTS = "cents", _("123450 (fen)")

    finance_system_code = models.CharField(
        _("finance system code"), max_length=30,
        help_text=_("The finance system code of the formats that take this file."),
    )
    dataset = models.CharField(_("data"), max_length=16, choices=Dataset.choices)
    name = models.CharField(_("name"), max_length=100)
    columns = models.JSONField(
        _("columns"), default=list,
        help_text=_("The file's columns in order, each a field of the data and the header written for it; the fields "
                    "each data offers are listed beside this box."),
    )
    file_type = models.CharField(_("file type"), max_length=4, choices=FileType.choices, default=FileType.XLSX)
    encoding = models.CharField(_("encoding"), max_length=10, choices=Encoding.choices, default=Encoding.UTF8_BOM,
                                help_text=_("For CSV files."))
    delimiter = models.CharField(_("CSV delimiter"), max_length=1, default=",")
    date_format = models.CharField(_("date format"), max_length=30, default="%Y-%m-%d",
                                   help_text=_("e.g. %Y-%m-%d or %Y%m%d"))
    amount_format = models.CharField(_("amount format"), max_length=10, choices=AmountFormat.choices,
                                     default=AmountFormat.PLAIN)
    is_active = models.BooleanField(_("active"), default=True)
    history = AuditHistory()

    class Meta:
        verbose_name = _("finance export layout")
        verbose_name_plural = _("finance export layouts")
        ordering = ["finance_system_code", "dataset"]
        constraints = [
            models.UniqueConstraint(fields=["finance_system_code", "dataset"], condition=models.Q(is_active=True),
                                    name="finance_layout_one_active_per_dataset"),
        ]

    def __str__(self) -> str:
        return f"{self.finance_system_code} {self.name}"


def _export_path(instance, filename: str) -> str:
    return f"settlement/exports/{instance.period.code}/{filename}"


class FinanceExportFile(models.Model):
    """A file made for one company and period in its finance system's layout; kept in the period's history."""

    period = models.ForeignKey(SettlementPeriod, on_delete=models.PROTECT, related_name="export_files",
                               verbose_name=_("settlement period"))
    legal_entity = models.ForeignKey("stores.LegalEntity", on_delete=models.PROTECT, related_name="+",
                                     verbose_name=_("legal entity"))
    layout = models.ForeignKey(FinanceExportLayout, on_delete=models.PROTECT, related_name="files",
                               verbose_name=_("layout"))
    file = models.FileField(_("file"), upload_to=_export_path, max_length=300)
    rows = models.PositiveIntegerField(_("rows"), default=0)
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+", verbose_name=_("made by"))
    created_at = models.DateTimeField(_("made at"), default=timezone.now)

    class Meta:
        verbose_name = _("finance export file")
        verbose_name_plural = _("finance export files")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.period} {self.legal_entity} {self.layout.name}"


class PosFileLayout(models.Model):
    """How one POS system writes its daily file: the columns, the date format, the encoding."""

    class FileType(models.TextChoices):
        CSV = "csv", "CSV"
        XLSX = "xlsx", "Excel"

    class Encoding(models.TextChoices):
        AUTO = "auto", _("recognise (UTF-8 or GBK)")
        UTF8 = "utf-8", "UTF-8"
        GBK = "gbk", "GBK"

    # The fields a POS line has; `columns` maps each to the file's header.
    FIELDS = ("store_code", "occurred_at", "receipt_no", "card_no", "member_no", "amount")
    REQUIRED_FIELDS = ("store_code", "occurred_at", "receipt_no", "amount")

    code = models.CharField(_("code"), max_length=20, unique=True)
    name = models.CharField(_("name"), max_length=100)
    pos_system_code = models.CharField(_("POS system code"), max_length=30,
                                       help_text=_("The POS system code of the formats whose files use this layout."))
    file_type = models.CharField(_("file type"), max_length=4, choices=FileType.choices, default=FileType.CSV)
    encoding = models.CharField(_("encoding"), max_length=10, choices=Encoding.choices, default=Encoding.AUTO)
    delimiter = models.CharField(_("CSV delimiter"), max_length=1, default=",")
    columns = models.JSONField(
        _("columns"), default=dict,
        help_text=_("The file's header for each field: store, time, receipt number, card number, member number and "
                    "amount (store, time, receipt number and amount are required)."),
    )
    datetime_format = models.CharField(_("time format"), max_length=30, default="%Y-%m-%d %H:%M:%S")
    time_window_minutes = models.PositiveSmallIntegerField(
        _("time window (minutes)"), default=30, validators=[MaxValueValidator(24 * 60)],
        help_text=_("How far the POS time and the time recorded here may be apart for a line to match."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    history = AuditHistory()

    class Meta:
        verbose_name = _("POS file layout")
        verbose_name_plural = _("POS file layouts")
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


def _pos_file_path(instance, filename: str) -> str:
    return f"settlement/pos/{instance.business_date:%Y/%m}/{instance.sha256[:16]}-{filename}"


class PosFile(models.Model):
    """A POS daily file as uploaded: one store's or one format's day."""

    class Status(models.TextChoices):
        IMPORTED = "imported", _("imported")
        MATCHED = "matched", _("matched")

    layout = models.ForeignKey(PosFileLayout, on_delete=models.PROTECT, related_name="files",
                               verbose_name=_("layout"))
    store = models.ForeignKey("stores.Store", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                              verbose_name=_("store"), help_text=_("Empty for a format's file of many stores."))
    format = models.ForeignKey("stores.Format", on_delete=models.PROTECT, related_name="+", verbose_name=_("format"))
    business_date = models.DateField(_("business date"))
    file = models.FileField(_("file"), upload_to=_pos_file_path, max_length=300)
    original_name = models.CharField(_("file name"), max_length=200)
    sha256 = models.CharField(_("SHA-256"), max_length=64, unique=True)
    lines = models.PositiveIntegerField(_("lines"), default=0)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.IMPORTED)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                    related_name="+", verbose_name=_("uploaded by"))
    uploaded_at = models.DateTimeField(_("uploaded at"), default=timezone.now)

    class Meta:
        verbose_name = _("POS file")
        verbose_name_plural = _("POS files")
        ordering = ["-business_date", "-uploaded_at"]

    def __str__(self) -> str:
        return f"{self.business_date} {self.store or self.format} {self.original_name}"


class PosLine(models.Model):
    """One line of a POS file: a card payment (a card number) or a sale to a member (a member number)."""

    pos_file = models.ForeignKey(PosFile, on_delete=models.PROTECT, related_name="pos_lines",
                                 verbose_name=_("POS file"))
    line_no = models.PositiveIntegerField(_("line"))
    store = models.ForeignKey("stores.Store", on_delete=models.PROTECT, related_name="+", verbose_name=_("store"),
                              db_index=False)
    business_date = models.DateField(_("business date"))
    occurred_at = models.DateTimeField(_("time at the POS"))
    receipt_no = models.CharField(_("receipt number"), max_length=64)
    card_no = models.CharField(_("card number"), max_length=32, blank=True)
    member_no = models.CharField(_("member number"), max_length=32, blank=True)
    amount = models.DecimalField(_("amount"), **MONEY, help_text=_("Negative for a refund."))

    class Meta:
        verbose_name = _("POS line")
        verbose_name_plural = _("POS lines")
        ordering = ["pos_file", "line_no"]
        indexes = [models.Index(fields=["store", "business_date", "receipt_no"], name="pos_line_store_day_receipt")]
        constraints = [models.UniqueConstraint(fields=["pos_file", "line_no"], name="pos_line_unique_in_file")]

    def __str__(self) -> str:
        return f"{self.receipt_no} {self.amount}"


class ReconDay(models.Model):
    """One store's day: how its POS lines matched the ledger, and whether its exceptions are worked off."""

    class Status(models.TextChoices):
        OPEN = "open", _("exceptions open")
        RECONCILED = "reconciled", _("reconciled")
        ACCEPTED = "accepted", _("exceptions worked off")

    store = models.ForeignKey("stores.Store", on_delete=models.PROTECT, related_name="+", verbose_name=_("store"))
    business_date = models.DateField(_("business date"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.OPEN)
    pos_lines = models.PositiveIntegerField(_("POS lines"), default=0)
    ledger_rows = models.PositiveIntegerField(_("rows recorded here"), default=0)
    matched = models.PositiveIntegerField(_("matched"), default=0)
    exceptions = models.PositiveIntegerField(_("exceptions"), default=0)
    exceptions_open = models.PositiveIntegerField(_("exceptions open"), default=0)
    pos_total = models.DecimalField(_("POS total"), **MONEY, default=ZERO)
    ledger_total = models.DecimalField(_("total recorded here"), **MONEY, default=ZERO)
    matched_at = models.DateTimeField(_("matched at"), null=True, blank=True)

    class Meta:
        verbose_name = _("reconciliation day")
        verbose_name_plural = _("reconciliation days")
        ordering = ["-business_date", "store__code"]
        constraints = [models.UniqueConstraint(fields=["store", "business_date"], name="recon_day_unique")]

    def __str__(self) -> str:
        return f"{self.business_date} {self.store}"


class ReconException(models.Model):
    """A difference between a POS file and the ledger, worked off by accepting it with a reason or by correcting
    the ledger through approval."""

    class Kind(models.TextChoices):
        MISSING_IN_LEDGER = "missing_in_ledger", _("missing in the ledger")
        MISSING_IN_POS = "missing_in_pos", _("missing in the POS file")
        AMOUNT_DIFFERS = "amount_differs", _("amount differs")
        DUPLICATE = "duplicate", _("duplicate")

    class Status(models.TextChoices):
        OPEN = "open", pgettext_lazy("exception", "open")
        ACCEPTED = "accepted", _("accepted")
        CORRECTING = "correcting", _("correction waiting for approval")
        CORRECTED = "corrected", _("corrected")

    day = models.ForeignKey(ReconDay, on_delete=models.PROTECT, related_name="exception_rows",
                            verbose_name=_("reconciliation day"))
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.OPEN)
    pos_line = models.ForeignKey(PosLine, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                 verbose_name=_("POS line"))
    card_transaction = models.ForeignKey("cards.CardTransaction", on_delete=models.PROTECT, null=True, blank=True,
                                         related_name="+", verbose_name=_("card payment"))
    purchase = models.ForeignKey("membership.Purchase", on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="+", verbose_name=_("purchase"))
    receipt_no = models.CharField(_("receipt number"), max_length=64, blank=True)
    card_no = models.CharField(_("card number"), max_length=32, blank=True)
    member_no = models.CharField(_("member number"), max_length=32, blank=True)
    pos_amount = models.DecimalField(_("POS amount"), **MONEY, null=True, blank=True)
    ledger_amount = models.DecimalField(_("amount recorded here"), **MONEY, null=True, blank=True)
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                    related_name="+", verbose_name=_("worked off by"))
    resolved_at = models.DateTimeField(_("worked off at"), null=True, blank=True)
    created_at = models.DateTimeField(_("found at"), default=timezone.now)

    class Meta:
        verbose_name = _("reconciliation exception")
        verbose_name_plural = _("reconciliation exceptions")
        ordering = ["-day__business_date", "pk"]
        permissions = [("resolve_reconexception", _("Can work off reconciliation exceptions"))]
        indexes = [models.Index(fields=["day", "status"], name="recon_exception_day_status")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.receipt_no}"

    @property
    def difference(self):
        if self.pos_amount is None or self.ledger_amount is None:
            return None
        return self.pos_amount - self.ledger_amount
