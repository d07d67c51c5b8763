"""Card and points liability at any day's end: outstanding card balances per issuing company with their age, and
outstanding points valued at the points-to-cash rate, per earning company by the pool share.

A card's age is the days since its last load (a sale or top-up, an opening balance from migration, a balance moved
in from another card) up to the day; a card without any movement in the last SETTLEMENT_DORMANT_DAYS days is
dormant, whatever its age. Both are computed per card inside one GROUP BY per issuer and bucket, in the database: no
card is read into Python.
"""

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.db.models import Case, CharField, DecimalField, F, Max, Q, Sum, Value, When
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from cards.models import Card, CardLedgerEntry
from core.numbers import money_round, money_total
from membership.models import PointsEntry, PointsPolicy
from settlement.queries.clearing import day_bounds, points_allocate, points_pool
from stores.models import LegalEntity

__all__ = [
    "AGEING_BUCKETS", "CardAgeing", "CardAgeingRow", "CompanyPoints", "PointsLiability", "card_ageing",
    "points_liability",
]

ZERO = Decimal("0.00")
LOAD_KINDS = (CardLedgerEntry.Kind.LOAD, CardLedgerEntry.Kind.MIGRATION, CardLedgerEntry.Kind.TRANSFER_IN)
# bucket key -> label; the key is also the CardAgeingRow field holding the bucket's balance
AGEING_BUCKETS = {
    "days_0_90": _("0-90 days"),
    "days_91_180": _("91-180 days"),
    "days_181_365": _("181-365 days"),
    "over_365": _("over a year"),
    "dormant": _("dormant"),
}


@dataclass
class CardAgeingRow:
    """One issuer's outstanding card balances by age (issuer None: cards sold without an issuer)."""

    issuer: LegalEntity | None
    days_0_90: Decimal = ZERO
    days_91_180: Decimal = ZERO
    days_181_365: Decimal = ZERO
    over_365: Decimal = ZERO
    dormant: Decimal = ZERO
    cards: int = 0
    dormant_cards: int = 0

    @property
    def total(self) -> Decimal:
        return sum((getattr(self, bucket) for bucket in AGEING_BUCKETS), ZERO)

    @property
    def label(self) -> str:
        return f"{self.issuer.code} {self.issuer.name}" if self.issuer else gettext("unknown issuer")

    def buckets(self) -> list[tuple[str, Decimal]]:
        """(label, balance) in the order of AGEING_BUCKETS, for a table's cells."""
        return [(str(label), getattr(self, bucket)) for bucket, label in AGEING_BUCKETS.items()]


@dataclass
class CardAgeing:
    at: date
    dormant_days: int
    rows: list[CardAgeingRow]
    totals: CardAgeingRow

    @property
    def total(self) -> Decimal:
        return self.totals.total


def _ageing_groups_postgresql(bounds: dict) -> list[tuple]:
    """(issuer id, bucket, balance, cards) at bounds["end"]: each card's balance is its balance now less the ledger
    written since the end (only the tail is read; balance = sum(ledger) is the ledger invariant check_ledgers
    proves), and its last movement and last load are two index probes per card with a balance (card_ledger_card_time
    and the partial card_ledger_load_time). Grouping the whole ledger per card instead grows with its history."""
    card, entry = Card._meta.db_table, CardLedgerEntry._meta.db_table
    # literals, not parameters: the planner proves the partial index's predicate from them
    loads = ", ".join(f"'{kind.value}'" for kind in LOAD_KINDS)
    # MATERIALIZED: the CASE reads last_move and last_load up to four times and must not run the probes again
    sql = f"""
        WITH per_card AS MATERIALIZED (
            SELECT c.issuer_id, c.balance - COALESCE(t.since, 0) AS balance,
                   (SELECT MAX(e.created_at) FROM {entry} e
                    WHERE e.card_id = c.id AND e.created_at < %(end)s) AS last_move,
                   (SELECT MAX(e.created_at) FROM {entry} e
                    WHERE e.card_id = c.id AND e.kind IN ({loads}) AND e.created_at < %(end)s) AS last_load
            FROM {card} c
            LEFT JOIN (SELECT card_id, SUM(amount) AS since FROM {entry}
                       WHERE created_at >= %(end)s GROUP BY card_id) t ON t.card_id = c.id
            WHERE c.balance - COALESCE(t.since, 0) <> 0)
        SELECT issuer_id,
               CASE WHEN last_move < %(dormant)s THEN 'dormant'
                    WHEN last_load >= %(since90)s THEN 'days_0_90'
                    WHEN last_load >= %(since180)s THEN 'days_91_180'
                    WHEN last_load >= %(since365)s THEN 'days_181_365'
                    ELSE 'over_365' END AS bucket,
               SUM(balance), COUNT(*)
        FROM per_card GROUP BY 1, 2"""  # noqa: S608 - table names and constants only, no user text
    with connection.cursor() as cursor:
        cursor.execute(sql, bounds)
        return cursor.fetchall()


def _ageing_groups_portable(bounds: dict) -> list[tuple]:
    """The same groups from the ledger up to the end grouped per card (balance, last load, last movement, bucket)
    inside a GROUP BY per issuer and bucket: SQLite has no MATERIALIZED hint to keep the per-card probes from
    running again in the CASE, and its small databases do not need them."""
    per_card = (
        CardLedgerEntry.objects.order_by().filter(created_at__lt=bounds["end"])
        .values("card_id", issuer=F("card__issuer_id"))
        .annotate(
            balance=Sum("amount", output_field=DecimalField(max_digits=18, decimal_places=2)),
            last_load=Max("created_at", filter=Q(kind__in=LOAD_KINDS)),
            last_move=Max("created_at"),
        )
        .annotate(bucket=Case(
            When(last_move__lt=bounds["dormant"], then=Value("dormant")),
            When(last_load__gte=bounds["since90"], then=Value("days_0_90")),
            When(last_load__gte=bounds["since180"], then=Value("days_91_180")),
            When(last_load__gte=bounds["since365"], then=Value("days_181_365")),
            default=Value("over_365"), output_field=CharField(),
        ))
        .exclude(balance=0)
        .values("issuer", "balance", "bucket")
    )
    inner, params = per_card.query.sql_with_params()
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT per_card.{quote('issuer')}, per_card.{quote('bucket')}, "  # noqa: S608 - no user text
            f"SUM(per_card.{quote('balance')}), COUNT(*) FROM ({inner}) per_card "
            f"GROUP BY per_card.{quote('issuer')}, per_card.{quote('bucket')}",
            params,
        )
        return cursor.fetchall()


def card_ageing(*, at: date) -> CardAgeing:
    """Outstanding card balances per issuing company at the end of `at`, split by age (see the module docstring).

    One SQL statement grouped per issuer and bucket (see _ageing_groups_postgresql and _ageing_groups_portable).
    """
    dormant_days = settings.SETTLEMENT_DORMANT_DAYS
    _start, end = day_bounds(at)

    def since(days: int):
        # The first instant of the day `days` before `at`: a load on or after it is at most `days` days old.
        return day_bounds(at - timedelta(days=days))[0]

    bounds = {"end": end, "dormant": since(dormant_days - 1), "since90": since(90), "since180": since(180),
              "since365": since(365)}
    if connection.vendor == "postgresql":
        groups = _ageing_groups_postgresql(bounds)
    else:
        groups = _ageing_groups_portable(bounds)
    issuers = LegalEntity.objects.in_bulk({issuer_id for issuer_id, *_rest in groups if issuer_id is not None})
    rows: dict[int | None, CardAgeingRow] = {}
    totals = CardAgeingRow(issuer=None)
    for issuer_id, bucket, balance, cards in groups:
        row = rows.setdefault(issuer_id, CardAgeingRow(issuer=issuers.get(issuer_id)))
        amount = money_total(balance)
        for target in (row, totals):
            setattr(target, bucket, getattr(target, bucket) + amount)
            target.cards += cards
            if bucket == "dormant":
                target.dormant_cards += cards
    ordered = sorted(rows.values(), key=lambda row: (row.issuer is None, row.issuer.code if row.issuer else ""))
    return CardAgeing(at=at, dormant_days=dormant_days, rows=ordered, totals=totals)


@dataclass
class CompanyPoints:
    """The part of the outstanding points attributed to one earning company (None: nothing earned in the pool)."""

    company: LegalEntity | None
    points: int
    value: Decimal


@dataclass
class PointsLiability:
    at: date
    points: int
    value: Decimal
    cash_points: int
    cash_value: Decimal
    companies: list[CompanyPoints] = field(default_factory=list)


def points_liability(*, at: date) -> PointsLiability:
    """Points outstanding at the end of `at` (the points ledger summed up to then), valued at the points policy's
    points-to-cash rate, and split over the earning companies by their share of the points earned in the 365 days
    ending on `at` (the clearing's pool rule)."""
    _start, end = day_bounds(at)
    points = PointsEntry.objects.filter(created_at__lt=end).aggregate(total=Sum("points"))["total"] or 0
    points = int(points)
    policy = PointsPolicy.current()

    def value(count: int) -> Decimal:
        return money_round(Decimal(count) * policy.cash_value / Decimal(policy.cash_points))

    pool = points_pool(day=at)
    parts = points_allocate(points, pool)
    companies = LegalEntity.objects.in_bulk(list(parts))
    rows = [CompanyPoints(company=companies.get(company_id), points=part, value=value(part))
            for company_id, part in parts.items()]
    if points and not parts:
        rows.append(CompanyPoints(company=None, points=points, value=value(points)))
    rows.sort(key=lambda row: (row.company is None, row.company.code if row.company else ""))
    return PointsLiability(at=at, points=points, value=value(points), cash_points=policy.cash_points,
                           cash_value=policy.cash_value, companies=rows)
