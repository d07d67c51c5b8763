from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Field
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class IdempotencyRecord(models.Model):
    """The first answer to a POS write, replayed when the same key comes again."""

    # Looked up by (terminal, key): the unique constraint's index serves it; no index of its own to write.
    terminal = models.ForeignKey(
        "stores.Terminal", on_delete=models.CASCADE, related_name="+", verbose_name=_("terminal"), db_index=False
    )
    key = models.CharField(_("idempotency key"), max_length=64)
    fingerprint = models.CharField(
        _("request fingerprint"), max_length=64, help_text=_("SHA-256 of method, path and body.")
    )
    response_status = models.PositiveSmallIntegerField(_("response status"), null=True)
    # The answer's bytes as sent (JSON text), so a replay is byte for byte the first answer: a JSON column
    # would hand the keys back in its own order.
    response_body = models.TextField(_("response body"), null=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("idempotency record")
        verbose_name_plural = _("idempotency records")
        constraints = [
            models.UniqueConstraint(fields=["terminal", "key"], name="idempotency_terminal_key_unique")
        ]

    def __str__(self) -> str:
        return self.key


class PersonalDataAccess(models.Model):
    """A person saw a full ID number or exported personal data (PIPL audit trail)."""

    class Action(models.TextChoices):
        REVEAL_ID_NUMBER = "reveal_id_number", _("full ID number shown")
        EXPORT = "export", _("personal data exported")
        CALL_LIST = "call_list", _("phone numbers shown on a call list")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("user")
    )
    action = models.CharField(_("action"), max_length=20, choices=Action.choices)
    content_type = models.ForeignKey(
        ContentType, on_delete=models.PROTECT, null=True, blank=True, verbose_name=_("subject type")
    )
    object_id = models.CharField(_("subject id"), max_length=64, blank=True)
    object_repr = models.CharField(_("subject"), max_length=200, blank=True)
    detail = models.CharField(_("detail"), max_length=300, blank=True)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    created_at = models.DateTimeField(_("time"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("personal data access")
        verbose_name_plural = _("personal data accesses")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["content_type", "object_id"], name="pda_subject")]

    def __str__(self) -> str:
        return f"{self.user} {self.get_action_display()} {self.object_repr}"


class RateCounter(models.Model):
    """A count shared by every web process (core/limits.py), kept in the database when no shared cache is set."""

    key = models.CharField(_("key"), max_length=200, unique=True)
    count = models.PositiveIntegerField(_("count"), default=0)
    expires_at = models.DateTimeField(_("expires at"), db_index=True)

    class Meta:
        verbose_name = _("rate counter")
        verbose_name_plural = _("rate counters")

    def __str__(self) -> str:
        return f"{self.key}: {self.count}"


class LedgerEntry(models.Model):
    """What a row of every append-only ledger records besides its account, kind and amounts (DESIGN section 3):
    where (store, terminal, receipt), for which company, by whom, why (reason, cause) and when.

    The points ledger, the card ledger and the voucher ledger inherit it. The account, the kind and the amounts
    stay in each ledger: points and voucher units are integers, card money is a Decimal, and each names them
    its own way. A ledger overrides a field whose column differs (an index) or whose help text says what the
    company did in that ledger, through `ledger_field`.
    """

    store = models.ForeignKey(
        "stores.Store", on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("store"),
        db_index=False,
    )
    terminal = models.ForeignKey(
        "stores.Terminal", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("terminal"), db_index=False,
    )
    receipt_no = models.CharField(_("receipt number"), max_length=64, blank=True)
    legal_entity = models.ForeignKey(
        "stores.LegalEntity", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("legal entity"), db_index=False,
    )
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("operator"), db_index=False,
    )
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    cause_type = models.ForeignKey(
        ContentType, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("cause type"), db_index=False,
    )
    cause_id = models.CharField(_("cause id"), max_length=64, blank=True)
    cause = GenericForeignKey("cause_type", "cause_id")
    created_at = models.DateTimeField(_("time"), default=timezone.now)

    class Meta:
        abstract = True


# Forms and admin pages list a model's fields in the order the fields were created. Each ledger showed its own
# fields (account, kind, amounts) first and these after them, as it declared them before this base existed: the
# shared fields are numbered after any field a model declares, ten apart, so that a ledger's own field can take
# the place of one of them, or the place right after one (ledger_field).
_SHARED_FIELDS_FROM = 1_000_000_000
for _place, _field in enumerate(LedgerEntry._meta.local_fields + LedgerEntry._meta.private_fields):
    _field.creation_counter = _SHARED_FIELDS_FROM + 10 * _place


def ledger_field(field: Field, *, replaces: str = "", after: str = "") -> Field:
    """Place a ledger's own field among those of LedgerEntry: where the one it `replaces` (an override) stands, or
    right `after` one. Return the field. Raise FieldDoesNotExist for a name LedgerEntry does not have."""
    shared = LedgerEntry._meta.get_field(replaces or after)
    field.creation_counter = shared.creation_counter + (0 if replaces else 1)
    return field
