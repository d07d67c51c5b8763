"""Segments and targeted campaigns (DESIGN section 1, "Campaigns"; 千人千面).

A segment (人群) is a set of rules over members, their purchases, cards and points (campaigns/segments.py
turns them into one SQL query). A snapshot records who was in it at a moment. A targeted campaign (精准营销)
takes a snapshot of its segment when it starts, holds out a stable random share of it as the control
group, gives the rest its actions (a coupon, points, a tag) and reaches each member by the channel they
prefer: a message file for the SMS or WeChat platform, a paper-mail list, or a store's call list worked off
at the desk. Results compare what the targeted members bought with what the control group bought.
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


class Segment(models.Model):
    """Who to reach: rules over members (all of / any of, nested one level), counted and snapshotted in SQL."""

    class Purpose(models.TextChoices):
        MARKETING = "marketing", _("marketing")
        SERVICE = "service", _("service call")

    name = models.CharField(_("name"), max_length=100)
    description = models.TextField(_("description"), blank=True)
    purpose = models.CharField(
        _("purpose"), max_length=10, choices=Purpose.choices, default=Purpose.MARKETING,
        help_text=_("Marketing needs the members' marketing consent; a service call by staff does not."),
    )
    rules = models.JSONField(_("rules"), default=dict, blank=True)
    scenario = models.CharField(_("scenario"), max_length=40, blank=True, editable=False)
    last_count = models.PositiveIntegerField(_("last count"), null=True, blank=True, editable=False)
    last_counted_at = models.DateTimeField(_("counted at"), null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("created by"), editable=False,
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    history = AuditHistory(excluded_fields=["last_count", "last_counted_at", "updated_at"])

    class Meta:
        verbose_name = _("segment")
        verbose_name_plural = _("segments")
        ordering = ["-created_at", "-pk"]
        permissions = [("export_segment_members", _("Can export segment members with full contact details"))]

    def __str__(self) -> str:
        return self.name


class SegmentSnapshot(models.Model):
    """Who was in a segment at a moment, materialised by a Celery task."""

    class Status(models.TextChoices):
        PENDING = "pending", _("waiting")
        RUNNING = "running", _("running")
        DONE = "done", _("done")
        FAILED = "failed", _("failed")

    segment = models.ForeignKey(Segment, on_delete=models.PROTECT, related_name="snapshots",
                                verbose_name=_("segment"))
    rules = models.JSONField(_("rules"), default=dict, editable=False)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    member_count = models.PositiveIntegerField(_("members"), default=0)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("requested by"),
    )
    requested_at = models.DateTimeField(_("requested at"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        verbose_name = _("segment snapshot")
        verbose_name_plural = _("segment snapshots")
        ordering = ["-requested_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.segment} @ {timezone.localtime(self.requested_at):%Y-%m-%d %H:%M}"


class SegmentMember(models.Model):
    """One member in a snapshot."""

    id = models.BigAutoField(primary_key=True)
    snapshot = models.ForeignKey(SegmentSnapshot, on_delete=models.CASCADE, related_name="members",
                                 verbose_name=_("snapshot"))
    member = models.ForeignKey("membership.Member", on_delete=models.PROTECT, related_name="+",
                               verbose_name=_("member"))

    class Meta:
        verbose_name = _("segment member")
        verbose_name_plural = _("segment members")
        constraints = [models.UniqueConstraint(fields=["snapshot", "member"], name="segment_member_unique")]

    def __str__(self) -> str:
        return f"{self.snapshot_id}: {self.member_id}"


class TargetedCampaign(models.Model):
    """A campaign to one segment with a hold-out control group (精准营销)."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("draft")
        PENDING = "pending", _("waiting for approval")
        SCHEDULED = "scheduled", _("scheduled")
        RUNNING = "running", _("running")
        ENDED = "ended", _("ended")
        CANCELLED = "cancelled", pgettext_lazy("campaign", "cancelled")

    code = models.CharField(_("code"), max_length=30, unique=True, validators=[code_validator])
    name = models.CharField(_("name"), max_length=100)
    description = models.TextField(_("description"), blank=True)
    scenario = models.CharField(_("scenario"), max_length=40, blank=True, editable=False)
    segment = models.ForeignKey(Segment, on_delete=models.PROTECT, related_name="campaigns",
                                verbose_name=_("segment"))
    snapshot = models.ForeignKey(
        SegmentSnapshot, on_delete=models.PROTECT, null=True, blank=True, related_name="+", editable=False,
        verbose_name=_("members taken"), help_text=_("The segment's members when the campaign started."),
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.DRAFT,
                              editable=False)
    control_percent = models.PositiveSmallIntegerField(
        _("control group (%)"), default=10, validators=[MaxValueValidator(50)],
        help_text=_("The share of the segment that gets nothing, to measure what the campaign brought."),
    )
    starts_on = models.DateField(_("first day"))
    ends_on = models.DateField(_("last day"))
    budget = models.DecimalField(_("budget"), max_digits=14, decimal_places=2, default=ZERO,
                                 validators=[MinValueValidator(ZERO)])
    legal_entity = models.ForeignKey(
        "stores.LegalEntity", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("paid by"), help_text=_("The company that bears the campaign's cost."),
    )
    coupon_template = models.ForeignKey(
        "campaigns.CouponTemplate", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("coupon to issue"),
    )
    points = models.PositiveIntegerField(_("points to give"), default=0,
                                         validators=[MaxValueValidator(1_000_000)])
    tag = models.ForeignKey("membership.Tag", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                            verbose_name=_("tag to add"))
    message_text = models.TextField(
        _("message"), blank=True,
        help_text=_("The SMS or WeChat text handed to the sending platform; {name} becomes the member's name."),
    )
    call_list = models.BooleanField(_("call list for stores"), default=False,
                                    help_text=_("Members who prefer a phone call go on their store's call list."))
    call_script = models.TextField(_("call script"), blank=True)
    result_days = models.PositiveSmallIntegerField(
        _("results window (days)"), default=30, validators=[MinValueValidator(1), MaxValueValidator(365)],
        help_text=_("Purchases within this many days from the first day count as the campaign's result."),
    )
    target_count = models.PositiveIntegerField(_("targeted"), default=0, editable=False)
    control_count = models.PositiveIntegerField(_("control group"), default=0, editable=False)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True, editable=False)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("created by"), editable=False,
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    history = AuditHistory(excluded_fields=["target_count", "control_count"])

    class Meta:
        verbose_name = _("targeted campaign")
        verbose_name_plural = _("targeted campaigns")
        ordering = ["-starts_on", "-pk"]
        indexes = [models.Index(fields=["status", "starts_on"], name="targeted_status_start")]
        constraints = [
            models.CheckConstraint(condition=models.Q(ends_on__gte=models.F("starts_on")),
                                   name="targeted_campaign_dates"),
            models.CheckConstraint(condition=models.Q(control_percent__lte=50), name="targeted_control_share"),
        ]
        permissions = [
            ("approve_targeted_campaign", _("Can approve targeted campaigns")),
            ("export_campaign_contacts", _("Can export a campaign's message, mail and call lists")),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class CampaignMember(models.Model):
    """One member of a started campaign: the group (stable random split), the reach channel and what was given."""

    class Group(models.TextChoices):
        TARGET = "target", _("targeted")
        CONTROL = "control", _("control group")

    class Channel(models.TextChoices):
        SMS = "sms", _("SMS")
        WECHAT = "wechat", _("WeChat")
        MAIL = "mail", _("paper mail")
        CALL = "call", _("staff call")
        NONE = "none", _("not reached")

    class CallOutcome(models.TextChoices):
        REACHED = "reached", _("reached")
        NO_ANSWER = "no_answer", _("no answer")
        DECLINED = "declined", _("declined")
        WRONG_NUMBER = "wrong_number", _("wrong number")

    id = models.BigAutoField(primary_key=True)
    campaign = models.ForeignKey(TargetedCampaign, on_delete=models.PROTECT, related_name="members",
                                 verbose_name=_("campaign"))
    member = models.ForeignKey("membership.Member", on_delete=models.PROTECT, related_name="+",
                               verbose_name=_("member"))
    group = models.CharField(_("group"), max_length=8, choices=Group.choices)
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices, default=Channel.NONE)
    store = models.ForeignKey("stores.Store", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                              verbose_name=_("store"), help_text=_("The member's registering store."))
    coupon = models.ForeignKey("campaigns.Coupon", on_delete=models.PROTECT, null=True, blank=True,
                               related_name="+", verbose_name=_("coupon"))
    points_given = models.PositiveIntegerField(_("points given"), default=0)
    reached_at = models.DateTimeField(_("reached at"), null=True, blank=True)
    call_outcome = models.CharField(_("call outcome"), max_length=12, choices=CallOutcome.choices, blank=True)

    class Meta:
        verbose_name = _("campaign member")
        verbose_name_plural = _("campaign members")
        constraints = [models.UniqueConstraint(fields=["campaign", "member"], name="campaign_member_unique")]
        indexes = [
            models.Index(fields=["campaign", "group"], name="campaign_member_group"),
            models.Index(fields=["campaign", "store", "channel"], name="campaign_member_store"),
            models.Index(fields=["member"], name="campaign_member_member"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}: {self.member_id} ({self.get_group_display()})"


class CallAttempt(models.Model):
    """One call a store clerk made from a campaign's call list, and how it went."""

    campaign_member = models.ForeignKey(CampaignMember, on_delete=models.PROTECT, related_name="calls",
                                        verbose_name=_("campaign member"))
    outcome = models.CharField(_("outcome"), max_length=12, choices=CampaignMember.CallOutcome.choices)
    note = models.CharField(_("note"), max_length=200, blank=True)
    store = models.ForeignKey("stores.Store", on_delete=models.PROTECT, related_name="+", verbose_name=_("store"))
    called_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
                                  verbose_name=_("called by"))
    called_at = models.DateTimeField(_("called at"), default=timezone.now)

    class Meta:
        verbose_name = _("call")
        verbose_name_plural = _("calls")
        ordering = ["-called_at", "-pk"]
        indexes = [models.Index(fields=["store", "called_at"], name="call_store_time")]

    def __str__(self) -> str:
        return f"{self.campaign_member_id} {self.get_outcome_display()}"
