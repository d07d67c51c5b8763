"""Webhook subscriptions, the event outbox and its deliveries (DESIGN section 8, CONTRACT section 5).

An event row is written in the transaction of the change it reports, with one delivery row per subscription
that wants its type; both commit or roll back with the change. Deliveries are sent after commit by a Celery
task (integrations/services.py), retried with backoff, and every try is kept as an attempt.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from core.history import AuditHistory


class EventType(models.TextChoices):
    CARD_LOADED = "card.loaded", _("card loaded")
    CARD_DEBITED = "card.debited", _("card debited")
    CARD_REFUNDED = "card.refunded", _("card refunded")
    CARD_REVERSED = "card.reversed", _("card payment reversed")
    CARD_FROZEN = "card.frozen", _("card frozen")
    CARD_LOST = "card.lost", _("card reported lost")
    CARD_REPLACED = "card.replaced", _("card replaced")
    CARD_EXPIRED = "card.expired", _("card expired")
    POINTS_EARNED = "points.earned", _("points earned")
    POINTS_REDEEMED = "points.redeemed", _("points redeemed")
    POINTS_EXPIRED = "points.expired", _("points expired")
    POINTS_ADJUSTED = "points.adjusted", _("points adjusted")
    MEMBER_CREATED = "member.created", _("member created")
    MEMBER_MERGED = "member.merged", _("members merged")
    MEMBER_TIER_CHANGED = "member.tier_changed", _("member's tier changed")
    COUPON_ISSUED = "coupon.issued", _("coupon issued")
    COUPON_REDEEMED = "coupon.redeemed", _("coupon redeemed")
    VOUCHER_REDEEMED = "voucher.redeemed", _("pickup voucher redeemed")


class Subscription(models.Model):
    """A receiver of events: where to POST them, the secret they are signed with, which types it wants."""

    name = models.CharField(_("name"), max_length=100, help_text=_("Who receives the events, e.g. 集团APP."))
    url = models.URLField(
        _("URL"), max_length=500, help_text=_("The web address each event is sent to."),
    )
    secret_sealed = models.TextField(_("secret (encrypted)"), editable=False)
    event_types = models.JSONField(_("event types"), default=list, help_text=_("The event types it receives."))
    is_active = models.BooleanField(
        _("active"), default=True, help_text=_("An inactive subscription gets no new events and sends nothing."),
    )
    # A sender holds the subscription until this time, so one sender at a time keeps the order of its events.
    sending_until = models.DateTimeField(_("being sent until"), null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("created by"), editable=False,
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    history = AuditHistory(excluded_fields=["secret_sealed", "sending_until", "updated_at"])

    class Meta:
        verbose_name = _("webhook subscription")
        verbose_name_plural = _("webhook subscriptions")
        ordering = ["name", "pk"]
        permissions = [("resend_webhook", _("Can resend webhook events"))]

    def __str__(self) -> str:
        return self.name


class Event(models.Model):
    """One change to report (the outbox): written in the transaction of the change."""

    id = models.BigAutoField(primary_key=True)
    public_id = models.CharField(_("event id"), max_length=40, unique=True, editable=False)
    type = models.CharField(_("type"), max_length=40, choices=EventType.choices)
    subject = models.CharField(
        _("subject"), max_length=100, help_text=_("The card, member, coupon or voucher it is about; its events "
                                                  "are sent in the order they were written."),
    )
    data = models.JSONField(_("data"), default=dict)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        ordering = ["-id"]
        indexes = [models.Index(fields=["subject", "id"], name="webhook_event_subject")]

    def __str__(self) -> str:
        return f"{self.get_type_display()} {self.public_id}"


class Delivery(models.Model):
    """One event for one subscription: pending until a 2xx answer, or failed after about a day of tries."""

    class Status(models.TextChoices):
        PENDING = "pending", pgettext_lazy("webhook delivery", "pending")
        DELIVERED = "delivered", _("delivered")
        FAILED = "failed", _("failed")

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("event"))
    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("subscription"),
        db_index=False,
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(_("tries"), default=0)
    next_attempt_at = models.DateTimeField(_("next try at"), default=timezone.now)
    # When the current round of tries began (its creation, or a resend): it fails a day after.
    window_start = models.DateTimeField(_("tries since"), default=timezone.now)
    last_attempt_at = models.DateTimeField(_("last try at"), null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(_("last answer status"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=300, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ["-event_id", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["subscription", "event"], name="webhook_delivery_once"),
        ]
        indexes = [
            models.Index(
                fields=["subscription", "event"], name="webhook_delivery_pending",
                condition=models.Q(status="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.subscription}"


class Attempt(models.Model):
    """One POST of a delivery and what came back."""

    delivery = models.ForeignKey(
        Delivery, on_delete=models.CASCADE, related_name="attempt_log", verbose_name=_("delivery"),
    )
    number = models.PositiveIntegerField(_("try"))
    tried_at = models.DateTimeField(_("tried at"), default=timezone.now)
    status_code = models.PositiveSmallIntegerField(_("answer status"), null=True, blank=True)
    response_body = models.TextField(_("answer"), blank=True, help_text=_("The first 2,000 characters."))
    error = models.CharField(_("error"), max_length=300, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), default=0)

    class Meta:
        verbose_name = _("webhook try")
        verbose_name_plural = _("webhook tries")
        ordering = ["delivery", "number"]

    def __str__(self) -> str:
        return f"{self.delivery_id} #{self.number}"
