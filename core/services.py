import hashlib
import json
from datetime import timedelta

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.models import IdempotencyRecord, PersonalDataAccess


def request_fingerprint(*, method: str, path: str, data) -> str:
    """Fingerprint a request by method, path and its parsed body (key order does not matter)."""
    body = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    return hashlib.sha256(f"{method} {path}\n{body}".encode()).hexdigest()


def idempotency_record_claim(*, terminal, key: str, fingerprint: str) -> tuple[IdempotencyRecord, bool]:
    """Claim a key for this request inside the caller's transaction.

    Return (record, created). A concurrent request with the same key waits on
    the unique index until the first one commits, then sees its record.
    """
    record = IdempotencyRecord.objects.select_for_update().filter(terminal=terminal, key=key).first()
    if record is not None:
        return record, False
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(terminal=terminal, key=key, fingerprint=fingerprint)
    except IntegrityError:
        return IdempotencyRecord.objects.select_for_update().get(terminal=terminal, key=key), False
    return record, True


def idempotency_records_purge(*, now=None) -> int:
    """Delete records older than IDEMPOTENCY_KEY_TTL_DAYS; return how many went."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.IDEMPOTENCY_KEY_TTL_DAYS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted


def personal_data_access_log(*, user, action: str, subject=None, detail: str = "", ip_address: str | None = None):
    """Write one row of the PIPL audit trail: who saw or exported whose personal data."""
    return PersonalDataAccess.objects.create(
        user=user,
        action=action,
        content_type=ContentType.objects.get_for_model(subject) if subject is not None else None,
        object_id=str(subject.pk) if subject is not None else "",
        object_repr=str(subject)[:200] if subject is not None else "",
        detail=detail[:300],
        ip_address=ip_address,
    )
