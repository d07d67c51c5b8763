"""Earned tiers by rolling spend, paid tiers by term, and the history of every tier change.

Earned tiers (普卡/银卡/金卡/铂金卡) follow the spend across all formats over the
qualifying window of the points policy; a member who falls below their tier keeps
it for the tier's grace period. The nightly evaluation decides for every member
at once with a handful of set-based statements: no loop over members, so a run
over millions costs about what one aggregate over the purchases costs.

Paid tiers (Plus) are bought or renewed at the desk or in the admin for a fee and
a term; their benefits apply until the last day of the term and the nightly run
ends them afterwards.

Every TierChange row written here has its webhook event (member.tier_changed) in the
same transaction; the nightly run reads its decisions for them only when someone
subscribes.
"""

from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import F, Sum
from django.utils import timezone
from django.utils.translation import gettext

from core.dates import months_add
from core.errors import ValidationFailed
from integrations.events import event_emit, events_emit_many, subscriptions_for
from integrations.models import EventType
from membership.errors import PaidTierConflict, PaidTierNotForSale
from membership.models import Member, PointsPolicy, Purchase, Tier, TierChange, TierSubscription
from membership.services.ledger import _lock_members
from membership.services.members import LIVE_STATUSES, _ensure_live, merge_mover

__all__ = [
    "TierEvaluation",
    "member_qualifying_spend",
    "paid_tier_active",
    "paid_tier_buy",
    "tier_for_spend",
    "tier_window",
    "tiers_evaluate",
]

# Two evaluations at once (a beat tick and a manual run) would decide on the same rows: the second one waits.
_EVALUATION_LOCK = 0x7469657273  # "tiers"
_DECISIONS = "membership_tier_decision"
_EARNED_REASONS = (
    TierChange.Reason.UPGRADE.value, TierChange.Reason.GRACE.value,
    TierChange.Reason.KEPT.value, TierChange.Reason.DOWNGRADE.value,
)


def _local_midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def tier_window(today: date | None = None, *, months: int | None = None) -> tuple[datetime, datetime]:
    """The qualifying window ending with `today`: [start, end) in local time.

    It covers the last `months` months day for day: on 15 June, from 16 June of the year
    before through the end of 15 June. A purchase on the day `months` months ago has left it.
    """
    today = today or timezone.localdate()
    if months is None:
        months = PointsPolicy.current().tier_window_months
    return _local_midnight(months_add(today, -months) + timedelta(days=1)), _local_midnight(today + timedelta(days=1))


def member_qualifying_spend(member: Member, *, today: date | None = None) -> Decimal:
    """What the member spent across all formats in the qualifying window, net of returns."""
    start, end = tier_window(today)
    total = (
        Purchase.objects.filter(member=member, occurred_at__gte=start, occurred_at__lt=end)
        .aggregate(total=Sum(F("amount") - F("returned_amount")))["total"]
    )
    return (total or Decimal("0")).quantize(Decimal("0.01"))


def _earned_tiers() -> list[Tier]:
    return list(Tier.objects.filter(kind=Tier.Kind.EARNED).order_by("-rank", "pk"))


def tier_for_spend(spend: Decimal) -> Tier:
    """The active earned tier of highest rank whose threshold the spend reaches (the lowest tier otherwise)."""
    for tier in _earned_tiers():
        if tier.is_active and tier.threshold <= spend:
            return tier
    return Tier.default()


# --- the nightly evaluation ------------------------------------------------------------------


@dataclass(frozen=True)
class TierEvaluation:
    """How many members each rule of one evaluation touched."""

    upgraded: int = 0
    grace_started: int = 0
    kept: int = 0
    downgraded: int = 0
    paid_expired: int = 0

    @property
    def changed(self) -> int:
        return self.upgraded + self.grace_started + self.kept + self.downgraded + self.paid_expired

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _case(column: str, pairs: list[tuple[object, object]], default: str = "NULL") -> tuple[str, list]:
    """CASE column WHEN a THEN b ... END, with every value a parameter."""
    sql = " ".join("WHEN %s THEN %s" for _pair in pairs)
    return f"CASE {column} {sql} ELSE {default} END", [value for pair in pairs for value in pair]


@transaction.atomic
def tiers_evaluate(*, today: date | None = None) -> TierEvaluation:
    """Re-evaluate the earned tier of every live member and end paid tiers past their term.

    Spend is summed once per member into a small table of decisions (only the members
    something happens to); the member rows and the tier-change history are then written
    from it with one UPDATE per kind of decision and one INSERT ... SELECT. A second run
    on the same day finds nothing to decide and writes nothing.

    Rules, comparing the target tier (by spend) with the member's tier by rank:
    above -> upgrade at once; below, no grace running -> the grace period starts (or,
    for a tier without grace, the downgrade happens at once); below with the grace
    period over -> downgrade to the target; back at the tier while a grace period
    runs -> kept, the grace period ends. Merged and closed members are left alone.

    Member rows are updated in bulk, so their change history (django-simple-history)
    does not show these changes: TierChange is the record of them, with the spend.
    """
    today = today or timezone.localdate()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_EVALUATION_LOCK])
        cursor.execute(f"DROP TABLE IF EXISTS {_DECISIONS}")
        # old_until/new_until: the downgrade day before and after an earned decision; the paid tier's last day
        # for a paid expiry. A decision is applied only to a member row still in the state it was made on.
        cursor.execute(
            f"""CREATE TEMPORARY TABLE {_DECISIONS} (
                member_id bigint NOT NULL, reason varchar(12) NOT NULL, from_tier_id bigint, to_tier_id bigint,
                spend numeric(14, 2), old_until date, new_until date, note varchar(200) NOT NULL
            )"""
        )
        _decide_earned(cursor, today=today)
        _decide_paid_expiry(cursor, today=today)
        now = timezone.now()
        counts = _apply(cursor, now=now)
        if subscriptions_for(EventType.MEMBER_TIER_CHANGED):
            _decisions_emit(cursor, now=now)
        cursor.execute(f"DROP TABLE {_DECISIONS}")
    upgrade, grace, kept, downgrade = _EARNED_REASONS
    return TierEvaluation(
        upgraded=counts.get(upgrade, 0), grace_started=counts.get(grace, 0), kept=counts.get(kept, 0),
        downgraded=counts.get(downgrade, 0), paid_expired=counts.get(TierChange.Reason.PAID_EXPIRY.value, 0),
    )


def _placeholders(values) -> str:
    return ", ".join(["%s"] * len(values))


def _decide_earned(cursor, *, today: date) -> None:
    """Note what happens to each live member's earned tier: one pass over the window's purchases."""
    earned = _earned_tiers()
    targets = [tier for tier in earned if tier.is_active]  # highest rank first: the first one reached wins
    default = Tier.default()
    if not targets or default is None:
        return
    ops = connection.ops
    adapt_date = ops.adapt_datefield_value
    start, end = tier_window(today)
    live = [status.value for status in LIVE_STATUSES]
    upgrade, grace, kept, downgrade = _EARNED_REASONS

    current_rank, current_rank_params = _case("m.tier_id", [(tier.pk, tier.rank) for tier in earned])
    grace_days, grace_days_params = _case("m.tier_id", [(tier.pk, tier.grace_days) for tier in earned], default="0")
    due_on, due_on_params = _case(
        "tier_id", [(tier.pk, adapt_date(today + timedelta(days=tier.grace_days))) for tier in earned]
    )
    due_note, due_note_params = _case(
        "tier_id",
        [(tier.pk, gettext("Downgrade due on %(date)s unless spend recovers.")
          % {"date": (today + timedelta(days=tier.grace_days)).isoformat()}) for tier in earned],
        default="''",
    )
    # Thresholds are compared as NUMERIC: SQLite would otherwise compare a number with the text of a Decimal.
    target_when = " ".join("WHEN spend >= CAST(%s AS NUMERIC) THEN %s" for _tier in targets)
    target_id_params = [value for tier in targets for value in (tier.threshold, tier.pk)] + [default.pk]
    target_rank_params = [value for tier in targets for value in (tier.threshold, tier.rank)] + [default.rank]
    cursor.execute(
        f"""
        INSERT INTO {_DECISIONS} (member_id, reason, from_tier_id, to_tier_id, spend, old_until, new_until, note)
        WITH spend AS (
            -- Capped at the largest amount a money column holds, so no member's spend can overflow it.
            SELECT p.member_id, CASE WHEN SUM(p.amount - p.returned_amount) > 999999999999.99 THEN 999999999999.99
                                     ELSE ROUND(SUM(p.amount - p.returned_amount), 2) END AS spend
            FROM {_table(Purchase)} p
            WHERE p.occurred_at >= %s AND p.occurred_at < %s AND p.member_id IS NOT NULL
            GROUP BY p.member_id
        ),
        evaluated AS (
            SELECT m.id AS member_id, m.tier_id, m.tier_downgrade_on, COALESCE(s.spend, 0) AS spend,
                   {current_rank} AS current_rank, {grace_days} AS grace_days
            FROM {_table(Member)} m LEFT JOIN spend s ON s.member_id = m.id
            WHERE m.status IN ({_placeholders(live)}) AND m.tier_id IN ({_placeholders(earned)})
        ),
        targeted AS (
            SELECT evaluated.*, CASE {target_when} ELSE %s END AS target_id,
                   CASE {target_when} ELSE %s END AS target_rank
            FROM evaluated
        ),
        decided AS (
            SELECT targeted.*,
                CASE
                    WHEN target_rank > current_rank THEN %s
                    WHEN target_rank = current_rank THEN %s
                    WHEN tier_downgrade_on IS NULL AND grace_days > 0 THEN %s
                    ELSE %s
                END AS reason
            FROM targeted
            WHERE target_rank > current_rank
               OR (target_rank = current_rank AND tier_downgrade_on IS NOT NULL)
               OR (target_rank < current_rank AND (tier_downgrade_on IS NULL OR tier_downgrade_on <= %s))
        )
        SELECT member_id, reason, tier_id,
               CASE WHEN reason IN (%s, %s) THEN target_id ELSE tier_id END,
               spend, tier_downgrade_on,
               CASE WHEN reason = %s THEN {due_on} END,
               CASE WHEN reason = %s THEN {due_note} ELSE '' END
        FROM decided
        """,  # noqa: S608 (table names from _meta and CASE skeletons; every value is a parameter)
        [
            ops.adapt_datetimefield_value(start), ops.adapt_datetimefield_value(end),
            *current_rank_params, *grace_days_params, *live, *[tier.pk for tier in earned],
            *target_id_params, *target_rank_params,
            upgrade, kept, grace, downgrade, adapt_date(today),
            upgrade, downgrade, grace, *due_on_params, grace, *due_note_params,
        ],
    )


def _decide_paid_expiry(cursor, *, today: date) -> None:
    """Note the live members whose paid term ended before today (the partial index on paid_tier_until finds them)."""
    live = [status.value for status in LIVE_STATUSES]
    cursor.execute(
        f"""
        INSERT INTO {_DECISIONS} (member_id, reason, from_tier_id, to_tier_id, spend, old_until, new_until, note)
        SELECT id, %s, paid_tier_id, NULL, NULL, paid_tier_until, NULL, ''
        FROM {_table(Member)}
        WHERE paid_tier_id IS NOT NULL AND paid_tier_until < %s AND status IN ({_placeholders(live)})
        """,  # noqa: S608 (table names from _meta)
        [TierChange.Reason.PAID_EXPIRY.value, connection.ops.adapt_datefield_value(today), *live],
    )


def _apply(cursor, *, now: datetime) -> dict[str, int]:
    """Write the decisions to the members and the tier-change history; return how many of each reason."""
    member_table = _table(Member)
    updated_at = connection.ops.adapt_datetimefield_value(now)
    paid_expiry = TierChange.Reason.PAID_EXPIRY.value
    if connection.vendor == "postgresql":
        cursor.execute(f"ANALYZE {_DECISIONS}")
    # Each UPDATE repeats the state the decision was made on: a member the desk or a merge changed meanwhile
    # (they lock the row first) is left to the next run rather than overwritten.
    cursor.execute(
        f"""
        UPDATE {member_table} SET tier_id = d.to_tier_id, tier_downgrade_on = d.new_until, updated_at = %s
        FROM {_DECISIONS} d
        WHERE {member_table}.id = d.member_id AND d.reason <> %s
          AND {member_table}.tier_id = d.from_tier_id
          AND {member_table}.tier_downgrade_on IS NOT DISTINCT FROM d.old_until
        """,  # noqa: S608 (table names from _meta)
        [updated_at, paid_expiry],
    )
    applied = cursor.rowcount
    cursor.execute(
        f"""
        UPDATE {member_table} SET paid_tier_id = NULL, paid_tier_until = NULL, updated_at = %s
        FROM {_DECISIONS} d
        WHERE {member_table}.id = d.member_id AND d.reason = %s
          AND {member_table}.paid_tier_id = d.from_tier_id AND {member_table}.paid_tier_until = d.old_until
        """,  # noqa: S608 (table names from _meta)
        [updated_at, paid_expiry],
    )
    applied += cursor.rowcount
    cursor.execute(f"SELECT reason, COUNT(*) FROM {_DECISIONS} GROUP BY reason")  # noqa: S608 (constant)
    counts = dict(cursor.fetchall())
    if applied != sum(counts.values()):
        cursor.execute(
            f"""
            DELETE FROM {_DECISIONS} WHERE NOT EXISTS (
                SELECT 1 FROM {member_table} m WHERE m.id = {_DECISIONS}.member_id AND (
                    ({_DECISIONS}.reason <> %s AND m.tier_id = {_DECISIONS}.to_tier_id
                     AND m.tier_downgrade_on IS NOT DISTINCT FROM {_DECISIONS}.new_until)
                    OR ({_DECISIONS}.reason = %s AND m.paid_tier_id IS NULL)
                )
            )
            """,  # noqa: S608 (table names from _meta)
            [paid_expiry, paid_expiry],
        )
        cursor.execute(f"SELECT reason, COUNT(*) FROM {_DECISIONS} GROUP BY reason")  # noqa: S608 (constant)
        counts = dict(cursor.fetchall())
    cursor.execute(
        f"""
        INSERT INTO {_table(TierChange)}
            (member_id, from_tier_id, to_tier_id, reason, spend, note, actor_id, created_at)
        SELECT member_id, from_tier_id, to_tier_id, reason, spend, note, NULL, %s FROM {_DECISIONS}
        """,  # noqa: S608 (table names from _meta)
        [updated_at],
    )
    return counts


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _tier_changed_data(*, member_no: str, from_tier: str | None, to_tier: str | None, reason: str, at) -> dict:
    return {"member_no": member_no, "from_tier": from_tier, "to_tier": to_tier, "reason": reason,
            "created_at": timezone.localtime(at).isoformat()}


def _decisions_emit(cursor, *, now: datetime, chunk: int = 5000) -> None:
    """One member.tier_changed event per decision applied (the rows _apply wrote to TierChange), by member."""
    codes = dict(Tier.objects.values_list("pk", "code"))
    cursor.execute(
        f"""
        SELECT m.member_no, d.from_tier_id, d.to_tier_id, d.reason
        FROM {_DECISIONS} d JOIN {_table(Member)} m ON m.id = d.member_id
        ORDER BY d.member_id, d.reason
        """  # noqa: S608 (table names from _meta)
    )
    while rows := cursor.fetchmany(chunk):
        events_emit_many(EventType.MEMBER_TIER_CHANGED, (
            (f"member:{member_no}", _tier_changed_data(
                member_no=member_no, from_tier=codes.get(from_tier_id), to_tier=codes.get(to_tier_id),
                reason=reason, at=now))
            for member_no, from_tier_id, to_tier_id, reason in rows
        ), at=now)


def _tier_changes_emit(changes: list[TierChange], *, member_no: str) -> None:
    """The events of TierChange rows just written for one member (tiers loaded with them)."""
    if not subscriptions_for(EventType.MEMBER_TIER_CHANGED):
        return
    for change in changes:
        event_emit(EventType.MEMBER_TIER_CHANGED, subject=f"member:{member_no}", at=change.created_at,
                   data=_tier_changed_data(
                       member_no=member_no, reason=change.reason, at=change.created_at,
                       from_tier=change.from_tier.code if change.from_tier is not None else None,
                       to_tier=change.to_tier.code if change.to_tier is not None else None,
                   ))


# --- paid tiers --------------------------------------------------------------------------------


def paid_tier_active(member: Member, *, on: date | None = None) -> Tier | None:
    """The paid tier whose benefits apply to the member on that day (today by default), if any.

    The term's last day still counts; the nightly run clears the tier the day after,
    but the benefits end with the term whether it has run or not.
    """
    on = on or timezone.localdate()
    if member.paid_tier_id is None or member.paid_tier_until is None or member.paid_tier_until < on:
        return None
    return member.paid_tier


@transaction.atomic
def paid_tier_buy(
    *,
    member: Member,
    tier: Tier,
    store=None,
    operator=None,
    payment_method: str = "",
    today: date | None = None,
) -> TierSubscription:
    """Sell a term of a paid tier, or renew the one the member holds (the new term follows on).

    The fee is the tier's fee, taken at the desk and recorded on the term. Raise
    PaidTierNotForSale, PaidTierConflict, MemberNotActive, ValidationFailed.
    """
    today = today or timezone.localdate()
    payment_method = (payment_method or "").strip()
    if len(payment_method) > TierSubscription._meta.get_field("payment_method").max_length:
        raise ValidationFailed(fields={"payment_method": [gettext("A payment method has at most 20 characters.")]})
    tier = Tier.objects.filter(pk=tier.pk).first() or tier
    if tier.kind != Tier.Kind.PAID or not tier.is_active:
        raise PaidTierNotForSale(tier=tier.name)
    member = _lock_members(member.pk)[0]
    _ensure_live(member)
    current = paid_tier_active(member, on=today)
    if current is not None and current.pk != tier.pk:
        raise PaidTierConflict(member_no=member.member_no, tier=current.name,
                               until=member.paid_tier_until.isoformat())
    if current is not None:
        kind, reason = TierSubscription.Kind.RENEWAL, TierChange.Reason.RENEWAL
        starts_on = member.paid_tier_until + timedelta(days=1)
    else:
        kind, reason = TierSubscription.Kind.PURCHASE, TierChange.Reason.PAID
        starts_on = today
    ends_on = months_add(starts_on, tier.term_months) - timedelta(days=1)
    subscription = TierSubscription.objects.create(
        member=member, tier=tier, kind=kind, starts_on=starts_on, ends_on=ends_on, fee=tier.fee,
        payment_method=payment_method, store=store, operator=operator,
    )
    member.paid_tier = tier
    member.paid_tier_until = ends_on
    member._history_user = operator
    member._change_reason = gettext("%(reason)s: %(tier)s until %(until)s") % {
        "reason": reason.label, "tier": tier.code, "until": ends_on.isoformat()}
    member.save(update_fields=["paid_tier", "paid_tier_until", "updated_at"])
    change = TierChange.objects.create(
        member=member, from_tier=current, to_tier=tier, reason=reason, actor=operator,
        note=gettext("Fee %(fee)s, %(starts)s to %(ends)s.") % {
            "fee": tier.fee, "starts": starts_on.isoformat(), "ends": ends_on.isoformat()},
    )
    _tier_changes_emit([change], member_no=member.member_no)
    return subscription


# --- merge ---------------------------------------------------------------------------------------


@merge_mover
def tiers_merge(*, merged: Member, survivor: Member, request) -> None:
    """Give the survivor the better earned tier and the later-ending paid tier of the two; move the paid terms.

    Runs inside the merge, with both members locked. Taking the earned tier here
    (with the merged record's grace period, if one runs) lets the change be recorded
    with its reason; the merge itself then finds the survivor's tier already as high.
    """
    actor = getattr(request, "decided_by", None) or getattr(request, "requested_by", None)
    today = timezone.localdate()
    TierSubscription.objects.filter(member=merged).update(member=survivor)
    note = gettext("From member %(member_no)s.") % {"member_no": merged.member_no}
    fields = []
    changes = []
    if merged.tier.kind == survivor.tier.kind and merged.tier.rank > survivor.tier.rank:
        changes.append(TierChange(member=survivor, from_tier=survivor.tier, to_tier=merged.tier,
                                  reason=TierChange.Reason.MERGE, note=note, actor=actor))
        survivor.tier = merged.tier
        survivor.tier_downgrade_on = merged.tier_downgrade_on
        fields += ["tier", "tier_downgrade_on"]
    merged_paid = paid_tier_active(merged, on=today)
    survivor_paid = paid_tier_active(survivor, on=today)
    if merged_paid is not None and (survivor_paid is None or merged.paid_tier_until > survivor.paid_tier_until):
        changes.append(TierChange(member=survivor, from_tier=survivor_paid, to_tier=merged_paid,
                                  reason=TierChange.Reason.MERGE, actor=actor,
                                  note=gettext("From member %(member_no)s, until %(until)s.") % {
                                      "member_no": merged.member_no, "until": merged.paid_tier_until.isoformat()}))
        survivor.paid_tier = merged_paid
        survivor.paid_tier_until = merged.paid_tier_until
        fields += ["paid_tier", "paid_tier_until"]
    if fields:
        survivor._history_user = actor
        survivor._change_reason = gettext("tiers from member %(member_no)s") % {"member_no": merged.member_no}
        survivor.save(update_fields=[*fields, "updated_at"])
        TierChange.objects.bulk_create(changes)
        _tier_changes_emit(changes, member_no=survivor.member_no)
