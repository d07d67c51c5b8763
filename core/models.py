from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils.translation import gettext_lazy as _


class IdempotencyRecord(models.Model):
    """The first answer to a POS write, replayed when the same key comes again."""

    terminal = models.ForeignKey(
        "stores.Terminal", on_delete=models.CASCADE, related_name="+", verbose_name=_("terminal")
    )
    key = models.CharField(_("idempotency key"), max_length=64)
    fingerprint = models.CharField(
        _("request fingerprint"), max_length=64, help_text=_("SHA-256 of method, path and body.")
    )
    response_status = models.PositiveSmallIntegerField(_("response status"), null=True)
    response_body = models.JSONField(_("response body"), null=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("idempotency record")
        verbose_name_plural = _("idempotency records")
        constraints = [
            models.UniqueConstraint(fields=["terminal", "key"], name="idempotency_terminal_key_unique")
        ]

    def __str__(self) -> str:
        return self.key
