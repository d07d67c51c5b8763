"""The clearing matrix and the points pool: read-side pieces of clearing, shared by the services, the admin and the
finance files.

The points pool (通存通兑): points earned in any format are spent in any other, so a point spent at one company
was earned at many. A day's spent (and expired) points are attributed to the earning companies by each company's
share of the points earned (earn entries and their reversals) in the 365 days ending on that day; whole points are
handed out by largest remainder, so the parts always add up to what was spent.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.utils import timezone

from core.numbers import money_total
from membership.models import PointsEntry
from settlement.models import ClearingLine, ClearingRun
from stores.models import LegalEntity

__all__ = [
    "POOL_DAYS", "ClearingMatrix", "clearing_matrix", "day_bounds", "points_allocate", "points_pool",
]

ZERO = Decimal("0.00")
POOL_DAYS = 365
# Ranges of days not cleared read from the points ledger at most; more, and the whole window is read from it.
MAX_LEDGER_RANGES = 12
POINTS_EARNED_KINDS = (PointsEntry.Kind.EARN, PointsEntry.Kind.REVERSAL)


def day_bounds(first: date, last: date | None = None) -> tuple[datetime, datetime]:
    """The instants local days `first`..`last` (inclusive) cover: [first 00:00, last + 1 00:00) in TIME_ZONE."""
    last = last or first
    return (timezone.make_aware(datetime.combine(first, time.min)),
            timezone.make_aware(datetime.combine(last + timedelta(days=1), time.min)))


def points_pool(*, day: date, day_earned: dict[int, int] | None = None) -> dict[int, int]:
    """Points earned (earn entries less their reversals) per company id in the POOL_DAYS days ending on `day`.

    A day cleared by a finished run is read from its points-earned lines (a few rows a day); the days not cleared
    from the points ledger through its time index, as few ranges of days as they make (one GROUP BY). `day_earned`
    gives `day`'s own figures when the caller has them (the day's run, which is rewriting that day's lines).
    Companies whose total is not positive, and points without a company, take no share.
    """
    first = day - timedelta(days=POOL_DAYS - 1)
    pool: dict[int, int] = defaultdict(int)
    cleared = set(
        ClearingRun.objects.filter(business_date__gte=first, business_date__lte=day, status=ClearingRun.Status.DONE)
        .values_list("business_date", flat=True)
    )
    if day_earned is not None:
        cleared.discard(day)
        for company_id, points in day_earned.items():
            if company_id is not None:
                pool[company_id] += points
    ranges = _day_ranges(first, day, skip=cleared | ({day} if day_earned is not None else set()))
    if len(ranges) > MAX_LEDGER_RANGES:
        # Cleared days scattered all over the window: one pass over the ledger reads less than many ranges.
        cleared, ranges = set(), [(first, day - timedelta(days=1) if day_earned is not None else day)]
    if cleared:
        lines = (
            ClearingLine.objects.order_by()
            .filter(kind=ClearingLine.Kind.POINTS_EARN, business_date__in=sorted(cleared), issuer__isnull=False,
                    run__isnull=False)
            .values_list("issuer_id").annotate(points=Sum("points"))
        )
        for company_id, points in lines:
            pool[company_id] += int(points or 0)
    if ranges:
        window = Q()
        for range_first, range_last in ranges:
            range_start, range_end = day_bounds(range_first, range_last)
            window |= Q(created_at__gte=range_start, created_at__lt=range_end)
        rows = (
            PointsEntry.objects.order_by()
            .filter(window, kind__in=POINTS_EARNED_KINDS, legal_entity__isnull=False)
            .values_list("legal_entity_id").annotate(points=Sum("points"))
        )
        for company_id, points in rows:
            pool[company_id] += int(points or 0)
    return {company_id: points for company_id, points in pool.items() if points > 0}


def _day_ranges(first: date, last: date, *, skip: set[date]) -> list[tuple[date, date]]:
    """The runs of consecutive days from `first` to `last` that are not in `skip`, as (first, last) pairs."""
    ranges: list[tuple[date, date]] = []
    day, start = first, None
    while day <= last:
        if day in skip:
            if start is not None:
                ranges.append((start, day - timedelta(days=1)))
                start = None
        elif start is None:
            start = day
        day += timedelta(days=1)
    if start is not None:
        ranges.append((start, last))
    return ranges


def points_allocate(points: int, pool: dict) -> dict:
    """Split whole `points` over the pool's keys in proportion to their weights, by largest remainder.

    The parts add up to `points` exactly (negative points are split the same way and keep their sign); ties of
    remainder go to the larger weight, then the lower key. An empty pool returns {}.
    """
    total = sum(pool.values())
    if not points or not total:
        return {}
    sign, amount = (1, points) if points > 0 else (-1, -points)
    parts = {key: amount * weight // total for key, weight in pool.items()}
    left = amount - sum(parts.values())
    by_remainder = sorted(pool, key=lambda key: (-(amount * pool[key] % total), -pool[key], key))
    for key in by_remainder[:left]:
        parts[key] += 1
    return {key: sign * part for key, part in parts.items() if part}


@dataclass
class ClearingMatrix:
    """What each company owes each other over some days.

    `gross[(issuer_id, honourer_id)]` is the gross of every line (the diagonal, a company with itself, included);
    `owed[(issuer_id, honourer_id)]` the sum of `net` between two different companies (what the issuer owes the
    honourer; negative: the honourer owes the issuer); `pair_net[(a_id, b_id)]` what company a (the lower code)
    pays company b, both directions netted; `position[id]` what the others owe a company less what it owes them.
    """

    start: date
    end: date
    entities: list[LegalEntity]
    gross: dict[tuple[int | None, int | None], Decimal] = field(default_factory=dict)
    owed: dict[tuple[int, int], Decimal] = field(default_factory=dict)
    pair_net: dict[tuple[int, int], Decimal] = field(default_factory=dict)
    position: dict[int, Decimal] = field(default_factory=dict)
    lines: int = 0

    @property
    def nets_to_zero(self) -> bool:
        return sum(self.position.values(), ZERO) == ZERO

    @property
    def total_gross(self) -> Decimal:
        return sum(self.gross.values(), ZERO)

    def owed_between(self, issuer_id: int, honourer_id: int) -> Decimal:
        return self.owed.get((issuer_id, honourer_id), ZERO)

    def gross_between(self, issuer_id: int | None, honourer_id: int | None) -> Decimal:
        return self.gross.get((issuer_id, honourer_id), ZERO)


def clearing_matrix(*, start: date, end: date, entity_ids=None) -> ClearingMatrix:
    """The matrix of the clearing lines (run lines and adjustments) of business days `start`..`end`.

    `entity_ids` keeps the lines where one of those companies is issuer or honourer (a company's own view; its
    positions then need not net to zero). One GROUP BY query.
    """
    lines = ClearingLine.objects.order_by().filter(business_date__gte=start, business_date__lte=end)
    if entity_ids is not None:
        ids = list(entity_ids)
        lines = lines.filter(Q(issuer_id__in=ids) | Q(honourer_id__in=ids))
    rows = lines.values_list("issuer_id", "honourer_id").annotate(gross=Sum("gross"), net=Sum("net"),
                                                                   count=Count("id"))
    matrix = ClearingMatrix(start=start, end=end, entities=[])
    position: dict[int, Decimal] = defaultdict(lambda: ZERO)
    pair_net: dict[tuple[int, int], Decimal] = defaultdict(lambda: ZERO)
    seen: set[int] = set()
    for issuer_id, honourer_id, gross, net, count in rows:
        gross, net = money_total(gross), money_total(net)
        matrix.lines += count
        matrix.gross[(issuer_id, honourer_id)] = matrix.gross.get((issuer_id, honourer_id), ZERO) + gross
        seen.update(pk for pk in (issuer_id, honourer_id) if pk is not None)
        if issuer_id is None or honourer_id is None or issuer_id == honourer_id:
            continue
        matrix.owed[(issuer_id, honourer_id)] = matrix.owed.get((issuer_id, honourer_id), ZERO) + net
    matrix.entities = list(LegalEntity.objects.filter(pk__in=seen).order_by("code"))
    codes = {entity.pk: entity.code for entity in matrix.entities}
    for (issuer_id, honourer_id), net in matrix.owed.items():
        position[honourer_id] += net
        position[issuer_id] -= net
        if codes[issuer_id] < codes[honourer_id]:
            pair_net[(issuer_id, honourer_id)] += net
        else:
            pair_net[(honourer_id, issuer_id)] -= net
    matrix.position = {entity.pk: position.get(entity.pk, ZERO) for entity in matrix.entities}
    matrix.pair_net = dict(pair_net)
    return matrix
