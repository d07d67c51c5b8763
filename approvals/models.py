from django.conf import settings
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils.translation import gettext_lazy as _

from approvals import registry
from core.history import AuditHistory


class ApprovalPolicy(models.Model):
    """Which action needs approval, from which amount, by whom (one row per level)."""

    action = models.CharField(_("action"), max_length=60, db_index=True)
    min_amount = models.DecimalField(
        _("from amount"), max_digits=14, decimal_places=2, null=True, blank=True,
        help_text=_("This level applies to requests of this amount or more; empty means every amount."),
    )
    approver_permission = models.ForeignKey(
        Permission, on_delete=models.PROTECT, related_name="+", verbose_name=_("approver permission"),
        help_text=_("Only users holding this permission may approve at this level."),
    )
    hq_only = models.BooleanField(
        _("headquarters only"), default=True,
        help_text=_("Only headquarters staff may approve; otherwise staff of the request's store may too."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    history = AuditHistory()

    class Meta:
        verbose_name = _("approval policy")
        verbose_name_plural = _("approval policies")
        ordering = ["action", "min_amount"]
        constraints = [
            models.UniqueConstraint(fields=["action", "min_amount"], name="approval_policy_level_unique"),
            models.CheckConstraint(
                condition=models.Q(min_amount__isnull=True) | models.Q(min_amount__gte=0),
                name="approval_policy_amount_not_negative",
            ),
        ]

    def __str__(self) -> str:
        if self.min_amount is None:
            return str(self.action_label)
        return f"{self.action_label} ≥ {self.min_amount}"

    @property
    def action_label(self) -> str:
        return registry.label(self.action)


class ApprovalRequest(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        APPROVED = "approved", _("approved")
        REJECTED = "rejected", _("rejected")
        CANCELLED = "cancelled", _("cancelled")

    action = models.CharField(_("action"), max_length=60)
    content_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, verbose_name=_("subject type"))
    object_id = models.CharField(_("subject id"), max_length=64)
    subject = GenericForeignKey("content_type", "object_id")
    subject_repr = models.CharField(_("subject"), max_length=200)
    store = models.ForeignKey(
        "stores.Store", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("store"), help_text=_("The store the request concerns, if any."),
    )
    amount = models.DecimalField(_("amount"), max_digits=14, decimal_places=2, null=True, blank=True)
    payload = models.JSONField(_("details"), default=dict, blank=True, encoder=DjangoJSONEncoder)
    reason = models.TextField(_("reason"))
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("requested by")
    )
    policy = models.ForeignKey(
        ApprovalPolicy, on_delete=models.PROTECT, null=True, blank=True, related_name="requests",
        verbose_name=_("policy"),
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("decided by"),
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    decision_comment = models.TextField(_("decision comment"), blank=True)
    created_at = models.DateTimeField(_("requested at"), auto_now_add=True)

    class Meta:
        verbose_name = _("approval request")
        verbose_name_plural = _("approval requests")
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["status", "created_at"], name="approval_status_created"),
            models.Index(fields=["content_type", "object_id"], name="approval_subject"),
        ]
        constraints = [
            # The four-eyes rule, kept by the database as well as by the service.
            models.CheckConstraint(
                condition=~models.Q(decided_by=models.F("requested_by")) | models.Q(status="cancelled"),
                name="approval_not_decided_by_requester",
            ),
            models.UniqueConstraint(
                fields=["action", "content_type", "object_id"],
                condition=models.Q(status="pending"),
                name="approval_one_pending_per_subject_action",
            ),
            models.CheckConstraint(
                condition=models.Q(amount__isnull=True) | models.Q(amount__gte=0),
                name="approval_amount_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action_label}: {self.subject_repr}"

    @property
    def action_label(self) -> str:
        return registry.label(self.action)
