from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from cards.models.products import MONEY, CardProduct
from core.history import AuditHistory


class ProductionBatch(models.Model):
    """A production run of cards (制卡): approved, numbered, printed, then received into headquarters' stock."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("draft")
        PENDING = "pending", _("waiting for approval")
        APPROVED = "approved", _("approved, numbers generated")
        RECEIVED = "received", _("received into stock")
        REJECTED = "rejected", _("rejected")
        CANCELLED = "cancelled", _("cancelled")

    batch_no = models.CharField(_("batch number"), max_length=20, unique=True)
    product = models.ForeignKey(
        CardProduct, on_delete=models.PROTECT, related_name="batches", verbose_name=_("product")
    )
    quantity = models.PositiveIntegerField(
        _("quantity"), validators=[MinValueValidator(1), MaxValueValidator(1_000_000)]
    )
    face_value = models.DecimalField(_("face value"), **MONEY, null=True, blank=True)
    vendor = models.CharField(_("card maker"), max_length=100)
    note = models.CharField(_("note"), max_length=200, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.DRAFT)
    first_card_no = models.CharField(_("first card number"), max_length=32, blank=True)
    last_card_no = models.CharField(_("last card number"), max_length=32, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("requested by")
    )
    generated_at = models.DateTimeField(_("numbers generated at"), null=True, blank=True)
    printer_file_at = models.DateTimeField(_("printer file handed out at"), null=True, blank=True)
    printer_file_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("printer file handed out to"),
    )
    received_at = models.DateTimeField(_("received at"), null=True, blank=True)
    received_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("received by"),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    history = AuditHistory()

    class Meta:
        verbose_name = _("production batch")
        verbose_name_plural = _("production batches")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.batch_no


class CardTransfer(models.Model):
    """Cards sent from headquarters (or a store) to a store, and received there."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("draft")
        SENT = "sent", _("sent")
        RECEIVED = "received", _("received")
        CANCELLED = "cancelled", _("cancelled")

    transfer_no = models.CharField(_("transfer number"), max_length=20, unique=True)
    from_store = models.ForeignKey(
        "stores.Store", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("from"), help_text=_("Empty is headquarters' stock."),
    )
    to_store = models.ForeignKey(
        "stores.Store", on_delete=models.PROTECT, related_name="+", verbose_name=_("to"),
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.DRAFT)
    card_count = models.PositiveIntegerField(_("cards"), default=0)
    note = models.CharField(_("note"), max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("created by")
    )
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("sent by"),
    )
    received_at = models.DateTimeField(_("received at"), null=True, blank=True)
    received_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("received by"),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    history = AuditHistory()

    class Meta:
        verbose_name = _("card transfer")
        verbose_name_plural = _("card transfers")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(from_store__isnull=True) | ~models.Q(from_store=models.F("to_store")),
                name="card_transfer_to_another_store",
            ),
        ]

    def __str__(self) -> str:
        return self.transfer_no


class CardTransferItem(models.Model):
    transfer = models.ForeignKey(
        CardTransfer, on_delete=models.CASCADE, related_name="items", verbose_name=_("transfer")
    )
    card = models.ForeignKey("cards.Card", on_delete=models.PROTECT, related_name="+", verbose_name=_("card"))

    class Meta:
        verbose_name = _("card in a transfer")
        verbose_name_plural = _("cards in a transfer")
        constraints = [
            models.UniqueConstraint(fields=["transfer", "card"], name="card_transfer_item_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.transfer_id}: {self.card_id}"
