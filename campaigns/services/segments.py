"""Segments: saving their rules, counting them, and snapshots of who was in them (materialised in SQL).

A snapshot is asked for in the admin and written by the Celery task `campaigns.segment_snapshot_materialise`
once the request's transaction has committed; a campaign that starts takes one at once. Either way the members
are written with one INSERT ... SELECT of the segment's query, so a million members cost one statement, not a
million rows through Python.
"""

import time
from collections.abc import Iterator

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from campaigns.errors import SegmentInvalid
from campaigns.models import Segment, SegmentMember, SegmentSnapshot
from campaigns.segments import rules_clean, rules_count, rules_queryset
from core.pii import mask_phone
from membership.models import Member

__all__ = [
    "SEGMENT_MEMBER_COLUMNS",
    "segment_count",
    "segment_members_rows",
    "segment_save",
    "segment_snapshot_materialise",
    "segment_snapshot_request",
    "segment_snapshot_take",
]

# The columns of a snapshot's export, in order: key of segment_members_rows' rows and its heading.
SEGMENT_MEMBER_COLUMNS = (
    ("member_no", _("member number")),
    ("name", _("name")),
    ("phone", _("phone")),
    ("tier", _("tier")),
    ("registered_store", _("registering store")),
    ("channel", _("preferred contact")),
)
_NAME_LENGTH = Segment._meta.get_field("name").max_length
_ERROR_LENGTH = 2000


@transaction.atomic
def segment_save(*, segment: Segment | None = None, name: str, description: str = "", purpose: str, rules,
                 operator, scenario: str = "") -> Segment:
    """Create or change a segment after checking its rules (rules_clean). Raise SegmentInvalid naming each field."""
    errors: dict[str, list[str]] = {}
    name = " ".join(str(name or "").split())
    if not name:
        errors["name"] = [gettext("Give the segment a name.")]
    elif len(name) > _NAME_LENGTH:
        errors["name"] = [gettext("The name is at most %(count)d characters.") % {"count": _NAME_LENGTH}]
    if purpose not in Segment.Purpose.values:
        errors["purpose"] = [gettext("Choose marketing or service call.")]
    cleaned = None
    if purpose in Segment.Purpose.values:
        try:
            cleaned = rules_clean(rules, purpose=purpose)
        except SegmentInvalid as error:
            errors.update(error.fields or {"rules": [str(error)]})
    if errors:
        raise SegmentInvalid(fields=errors)
    if segment is None:
        segment = Segment(created_by=operator, scenario=scenario or "")
    elif scenario:
        segment.scenario = scenario
    segment.name = name
    segment.description = str(description or "")
    segment.purpose = purpose
    segment.rules = cleaned
    segment._history_user = operator
    segment.save()
    return segment


def segment_count(*, segment: Segment) -> int:
    """Count the segment's members now and keep the count on the segment."""
    count = rules_count(segment.rules)
    now = timezone.now()
    Segment.objects.filter(pk=segment.pk).update(last_count=count, last_counted_at=now)
    segment.last_count, segment.last_counted_at = count, now
    return count


def _snapshot_create(*, segment: Segment, requested_by) -> SegmentSnapshot:
    # The rules are checked again: a store, format or tag they name may have gone since they were saved.
    rules = rules_clean(segment.rules, purpose=segment.purpose)
    return SegmentSnapshot.objects.create(segment=segment, rules=rules, requested_by=requested_by,
                                          status=SegmentSnapshot.Status.PENDING)


@transaction.atomic
def segment_snapshot_request(*, segment: Segment, requested_by) -> SegmentSnapshot:
    """Ask for a snapshot of the segment: a waiting row, materialised by a Celery task after commit.

    Raise SegmentInvalid when the rules no longer hold.
    """
    from campaigns.tasks import segment_snapshot_materialise as task

    snapshot = _snapshot_create(segment=segment, requested_by=requested_by)
    transaction.on_commit(lambda: task.delay(snapshot.pk))
    return snapshot


def _insert_members(snapshot: SegmentSnapshot) -> int:
    sql, params = rules_queryset(snapshot.rules).values(seg_member=F("pk")).query.sql_with_params()
    table = connection.ops.quote_name(SegmentMember._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (snapshot_id, member_id) SELECT %s, seg.seg_member FROM ({sql}) AS seg",  # noqa: S608 - ORM's SQL
            [snapshot.pk, *params],
        )
        inserted = cursor.rowcount
    if inserted is None or inserted < 0:
        inserted = SegmentMember.objects.filter(snapshot=snapshot).count()
    return inserted


def segment_snapshot_materialise(*, snapshot_id: int) -> SegmentSnapshot:
    """Write a waiting snapshot's members (one INSERT ... SELECT) and mark it done, or failed with the error.

    A snapshot that is not waiting (already done, failed or running) is returned as it is.
    """
    with transaction.atomic():
        snapshot = SegmentSnapshot.objects.select_for_update().get(pk=snapshot_id)
        if snapshot.status != SegmentSnapshot.Status.PENDING:
            return snapshot
        snapshot.status = SegmentSnapshot.Status.RUNNING
        snapshot.save(update_fields=["status"])
    started = time.monotonic()
    try:
        with transaction.atomic():
            count = _insert_members(snapshot)
            SegmentSnapshot.objects.filter(pk=snapshot.pk).update(
                status=SegmentSnapshot.Status.DONE, member_count=count, finished_at=timezone.now(),
                duration_ms=int((time.monotonic() - started) * 1000), error="",
            )
    except Exception as error:  # noqa: BLE001 - the failure is kept on the snapshot for staff to read
        SegmentSnapshot.objects.filter(pk=snapshot.pk).update(
            status=SegmentSnapshot.Status.FAILED, finished_at=timezone.now(),
            duration_ms=int((time.monotonic() - started) * 1000),
            error=(f"{type(error).__name__}: {error}")[:_ERROR_LENGTH],
        )
    snapshot.refresh_from_db()
    return snapshot


@transaction.atomic
def segment_snapshot_take(*, segment: Segment, requested_by) -> SegmentSnapshot:
    """Take a snapshot of the segment now (as a campaign starts). Raise SegmentInvalid when it cannot be taken."""
    snapshot = _snapshot_create(segment=segment, requested_by=requested_by)
    snapshot = segment_snapshot_materialise(snapshot_id=snapshot.pk)
    if snapshot.status != SegmentSnapshot.Status.DONE:
        raise SegmentInvalid(gettext("The segment's members could not be taken: %(error)s") % {
            "error": snapshot.error})
    return snapshot


def segment_members_rows(*, snapshot: SegmentSnapshot, unmasked: bool) -> Iterator[dict]:
    """The snapshot's members for an export, phones masked unless `unmasked` (the caller logs the export)."""
    channels = dict(Member.ContactChannel.choices)
    members = (
        SegmentMember.objects.filter(snapshot=snapshot).order_by("pk")
        .values_list("member__member_no", "member__name", "member__phone", "member__tier__name",
                     "member__registered_store__code", "member__registered_store__name", "member__contact_channel")
    )
    for member_no, name, phone, tier, store_code, store_name, channel in members.iterator(chunk_size=2000):
        yield {
            "member_no": member_no,
            "name": name,
            "phone": phone if unmasked else mask_phone(phone),
            "tier": tier or "",
            "registered_store": f"{store_code} {store_name}" if store_code else "",
            "channel": str(channels.get(channel, channel)),
        }
