"""Report definitions (what to run, for whom, when), their runs with the file each one wrote, and the log of every
download. The numbers themselves are never stored here as truth: a run keeps its headline figures only to show them
in the archive; the queries in reports/queries/ compute them again the same way for the same parameters."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from reports.kinds import KIND_CHOICES


class ReportDefinition(models.Model):
    """A report staff want regularly: its kind and period, the stores it covers and who sees it, when beat runs it
    (a django-celery-beat task kept in step by `reports.services.definition_schedule_sync`), and who gets mail."""

    class Period(models.TextChoices):
        YESTERDAY = "yesterday", _("yesterday")
        LAST_7_DAYS = "last_7_days", _("the last 7 days")
        LAST_WEEK = "last_week", _("last week (Monday to Sunday)")
        MONTH_TO_DATE = "month_to_date", _("this month up to yesterday")
        LAST_MONTH = "last_month", _("last month")
        LAST_QUARTER = "last_quarter", _("last quarter")

    class Scope(models.TextChoices):
        HQ = "hq", _("headquarters: every store")
        FORMAT = "format", _("one format's stores")
        STORE = "store", _("one store")

    class Frequency(models.TextChoices):
        NONE = "none", _("not scheduled (run by hand)")
        DAILY = "daily", _("daily")
        WEEKLY = "weekly", _("weekly")
        MONTHLY = "monthly", _("monthly")

    class Weekday(models.IntegerChoices):
        MONDAY = 1, _("Monday")
        TUESDAY = 2, _("Tuesday")
        WEDNESDAY = 3, _("Wednesday")
        THURSDAY = 4, _("Thursday")
        FRIDAY = 5, _("Friday")
        SATURDAY = 6, _("Saturday")
        SUNDAY = 0, _("Sunday")

    name = models.CharField(_("name"), max_length=100, unique=True)
    kind = models.CharField(_("report"), max_length=20, choices=KIND_CHOICES)
    period = models.CharField(_("period"), max_length=20, choices=Period.choices, default=Period.YESTERDAY)
    scope = models.CharField(_("scope"), max_length=10, choices=Scope.choices, default=Scope.HQ)
    format = models.ForeignKey(
        "stores.Format", on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("format"),
        help_text=_("For the scope \"one format's stores\"."),
    )
    store = models.ForeignKey(
        "stores.Store", on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("store"),
        help_text=_("For the scope \"one store\": its managers see the runs in their archive."),
    )
    frequency = models.CharField(_("schedule"), max_length=10, choices=Frequency.choices, default=Frequency.DAILY)
    hour = models.PositiveSmallIntegerField(
        _("hour"), default=6, help_text=_("Local time (Asia/Shanghai), 0-23."),
    )
    minute = models.PositiveSmallIntegerField(_("minute"), default=0)
    weekday = models.PositiveSmallIntegerField(
        _("weekday"), choices=Weekday.choices, default=Weekday.MONDAY, help_text=_("For a weekly schedule."),
    )
    day_of_month = models.PositiveSmallIntegerField(
        _("day of month"), default=1, help_text=_("For a monthly schedule, 1-28."),
    )
    recipients = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="+", verbose_name=_("recipients"),
        help_text=_("Staff who get an e-mail with a link when a scheduled run is ready."),
    )
    active = models.BooleanField(_("active"), default=True)
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", on_delete=models.SET_NULL, null=True, blank=True, editable=False,
        related_name="+", verbose_name=_("beat schedule"),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, editable=False,
        related_name="+", verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    history = HistoricalRecords(excluded_fields=["periodic_task"])

    class Meta:
        verbose_name = _("report definition")
        verbose_name_plural = _("report definitions")
        ordering = ("name",)
        constraints = [
            models.CheckConstraint(
                condition=models.Q(hour__lte=23) & models.Q(minute__lte=59)
                & models.Q(day_of_month__gte=1) & models.Q(day_of_month__lte=28),
                name="reportdefinition_schedule_in_range",
            ),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        if self.scope == self.Scope.FORMAT and not self.format_id:
            errors["format"] = _("Choose the format this report covers.")
        if self.scope == self.Scope.STORE and not self.store_id:
            errors["store"] = _("Choose the store this report covers.")
        if self.hour is not None and self.hour > 23:
            errors["hour"] = _("An hour is 0 to 23.")
        if self.minute is not None and self.minute > 59:
            errors["minute"] = _("A minute is 0 to 59.")
        if self.day_of_month is not None and not 1 <= self.day_of_month <= 28:
            errors["day_of_month"] = _("Choose a day from 1 to 28, so that every month has it.")
        if errors:
            raise ValidationError(errors)


class ReportRun(models.Model):
    """One run of a report: what it was asked, how it went and the workbook it wrote (kept until pruned)."""

    class Status(models.TextChoices):
        RUNNING = "running", _("running")
        DONE = "done", _("done")
        FAILED = "failed", _("failed")

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", _("schedule")
        MANUAL = "manual", _("by hand")
        RETRY = "retry", _("retry")

    definition = models.ForeignKey(
        ReportDefinition, on_delete=models.SET_NULL, null=True, blank=True, related_name="runs",
        verbose_name=_("report definition"),
    )
    kind = models.CharField(_("report"), max_length=20, choices=KIND_CHOICES)
    title = models.CharField(_("title"), max_length=200)
    params = models.JSONField(_("parameters"), default=dict)
    period_start = models.DateField(_("from"))
    period_end = models.DateField(_("to"))
    store = models.ForeignKey(
        "stores.Store", on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("store"),
        help_text=_("A store's run: its managers see it. Empty: a headquarters run."),
    )
    format = models.ForeignKey(
        "stores.Format", on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("format"),
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.RUNNING)
    trigger = models.CharField(_("started by"), max_length=10, choices=Trigger.choices, default=Trigger.MANUAL)
    retry_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="retries",
        verbose_name=_("retry of"),
    )
    rows = models.PositiveIntegerField(_("detail rows"), default=0)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), default=0)
    figures = models.JSONField(
        _("headline figures"), default=list, blank=True,
        help_text=_("The report's headline figures as written in its workbook."),
    )
    error = models.TextField(_("error"), blank=True)
    file = models.FileField(_("file"), upload_to="reports/%Y/%m/", blank=True, max_length=200)
    file_size = models.PositiveBigIntegerField(_("file size"), default=0)
    pruned_at = models.DateTimeField(
        _("file removed at"), null=True, blank=True, help_text=_("The retention policy removed the file."),
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("requested by"),
    )
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("report run")
        verbose_name_plural = _("report runs")
        ordering = ("-started_at", "-pk")
        indexes = [
            models.Index(fields=["store", "-started_at"], name="reportrun_store_started"),
            models.Index(fields=["-started_at"], name="reportrun_started"),
        ]

    def __str__(self):
        return f"{self.title} {self.period_start:%Y-%m-%d}~{self.period_end:%Y-%m-%d}"

    @property
    def downloadable(self) -> bool:
        return self.status == self.Status.DONE and bool(self.file) and self.pruned_at is None


class ReportDownload(models.Model):
    """Who downloaded which run's file, and when (append-only)."""

    run = models.ForeignKey(ReportRun, on_delete=models.CASCADE, related_name="downloads", verbose_name=_("run"))
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("user"),
    )
    at = models.DateTimeField(_("downloaded at"), default=timezone.now)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)

    class Meta:
        verbose_name = _("report download")
        verbose_name_plural = _("report downloads")
        ordering = ("-at", "-pk")

    def __str__(self):
        return f"{self.user_id} {self.run_id} {self.at:%Y-%m-%d %H:%M}"
