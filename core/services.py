import hashlib
import json
from datetime import timedelta

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.utils import timezone

from core.models import IdempotencyRecord, PersonalDataAccess
from core.sql import execute_prepared, insert_returning_pk


def request_fingerprint(*, method: str, path: str, data) -> str:
    """Fingerprint a request by method, path and its parsed body (key order does not matter)."""
    body = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    return hashlib.sha256(f"{method} {path}\n{body}".encode()).hexdigest()


def idempotency_record_claim(*, terminal, key: str, fingerprint: str) -> tuple[IdempotencyRecord, bool]:
    """Claim a key for this request inside the caller's transaction.

    Return (record, created). One `INSERT ... ON CONFLICT DO NOTHING` claims a new
    key; a concurrent request with the same key waits on the unique index until
    the first one commits, then finds no row inserted and reads the first one's
    record, locked. (For an error's answer; a write that succeeded stores its key
    and answer at once with idempotency_record_store.)
    """
    record = IdempotencyRecord(terminal=terminal, key=key, fingerprint=fingerprint)
    if insert_returning_pk(record, skip_on_conflict=("terminal_id", "key")) is not None:
        return record, True
    return IdempotencyRecord.objects.select_for_update().get(terminal=terminal, key=key), False


def idempotency_record_answer(record: IdempotencyRecord, *, status: int, body: str) -> None:
    """Store the answer given to a claimed key, its JSON text as sent (one UPDATE)."""
    record.response_status, record.response_body = status, body
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_idempotency_table()} SET response_status = %s, response_body = %s "  # noqa: S608
            "WHERE id = %s",
            [status, body, record.pk],
        )


def idempotency_record_store(*, terminal_id: int, key: str, fingerprint: str, status: int, body: str) -> bool:
    """Claim a key and store its answer in one statement, inside the transaction of the write it answers.

    `INSERT ... ON CONFLICT DO NOTHING`: True when the key was new. False when it was answered before, or by a
    concurrent request with the same key (this one waited on the unique index for that one to commit): the
    caller then rolls its own writes back and replays the stored answer (idempotency_record_find).
    """
    return bool(execute_prepared(
        f"INSERT INTO {_idempotency_table()} "  # noqa: S608 (model's table)
        "(terminal_id, key, fingerprint, response_status, response_body, created_at) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (terminal_id, key) DO NOTHING RETURNING id",
        [terminal_id, key, fingerprint, status, body, timezone.now()],
    ))


def idempotency_record_find(*, terminal_id: int, key: str) -> IdempotencyRecord | None:
    """The stored record of a key with its answer, if it has one (a key is visible to others only with its answer:
    claimed and answered in one transaction)."""
    return IdempotencyRecord.objects.filter(
        terminal_id=terminal_id, key=key, response_status__isnull=False
    ).first()


def _idempotency_table() -> str:
    return connection.ops.quote_name(IdempotencyRecord._meta.db_table)


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
