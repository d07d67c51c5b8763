"""Read side of brand billing: statements per brand and period, programme results.

Both read BrandDiscount, the append-only record of every brand-card discount: a payment's row with positive
amounts, and its refunds' and reversals' give-backs with negative ones. Rows are taken by business date
(Asia/Shanghai), so the sum over a period is what the customers were given in it and what the brand owes for
it, whichever day the original payment was made. Headquarters only: the brands' terms are the group's.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.db.models import Count, DecimalField, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from cards.models import Brand, BrandDiscount, BrandProgramme, Card, CardTransaction
from cards.queries.liability import day_end
from stores.queries import user_is_hq

__all__ = [
    "PERMISSION_VIEW", "ProgrammeResult", "ProgrammeResults", "StatementLine", "StatementRow", "StatementTotals",
    "card_no_mask", "previous_month", "programme_results", "statement_line_items", "statement_query",
    "statement_rows", "statement_totals", "user_may_view_brand_billing",
]

PERMISSION_VIEW = "cards.view_branddiscount"
CENT = Decimal("0.01")
ZERO = Decimal("0.00")
_MONEY = DecimalField(max_digits=18, decimal_places=2)

# The columns of a statement row, read as tuples: a statement of a busy brand runs to millions of rows.
_ROW_FIELDS = (
    "pk", "business_date", "created_at", "store__code", "store__name", "card__card_no", "transaction__receipt_no",
    "transaction__transaction_id", "kind", "programme__code", "eligible_amount", "discount", "brand_amount",
)


def user_may_view_brand_billing(user) -> bool:
    """Brand statements and programme results are headquarters' figures: HQ staff who may view brand discounts."""
    return user_is_hq(user) and user.has_perm(PERMISSION_VIEW)


def previous_month(today: date | None = None) -> tuple[date, date]:
    """The first and last day of the month before `today`'s (brands are billed per calendar month)."""
    today = today or timezone.localdate()
    last = today.replace(day=1) - timedelta(days=1)
    return last.replace(day=1), last


def day_start(day: date) -> datetime:
    """The instant a day starts in the project's time zone."""
    return day_end(day - timedelta(days=1))


def card_no_mask(card_no: str) -> str:
    """A card number as a brand may see it on its statement (the same mask as Card.card_no_masked)."""
    return Card(card_no=card_no).card_no_masked


def _sum(name: str, **extra):
    return Coalesce(Sum(name, output_field=_MONEY, **extra), ZERO, output_field=_MONEY)


def _cents(value) -> Decimal:
    # SQLite adds decimals up as floating point (3.60000000000000): money is shown and compared in cents.
    return Decimal(value or 0).quantize(CENT, rounding=ROUND_HALF_UP)


def _in_period(starts_on: date, ends_on: date) -> Q:
    return Q(business_date__gte=starts_on, business_date__lte=ends_on)


# --- statements -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatementRow:
    """One BrandDiscount as it appears on a brand's statement."""

    pk: int
    business_date: date
    created_at: datetime
    store_code: str
    store_name: str
    card_no: str
    receipt_no: str
    transaction_id: str
    kind: str
    programme_code: str
    eligible_amount: Decimal
    discount: Decimal
    brand_amount: Decimal

    @property
    def time(self) -> str:
        return timezone.localtime(self.created_at).strftime("%H:%M:%S")

    @property
    def store(self) -> str:
        return f"{self.store_code} {self.store_name}"

    @property
    def card_no_masked(self) -> str:
        return card_no_mask(self.card_no)

    @property
    def kind_label(self) -> str:
        return CardTransaction.Kind(self.kind).label if self.kind in CardTransaction.Kind.values else self.kind


@dataclass(frozen=True)
class StatementLine:
    """One SKU line of a discounted payment (BrandDiscount.lines), for the statement's second sheet.

    Amounts are Decimals when the stored value reads as one, else the stored text as it is.
    """

    row: StatementRow
    sku: str
    quantity: Decimal | str
    amount: Decimal | str
    discount: Decimal | str
    brand_amount: Decimal | str


@dataclass
class StatementTotals:
    """What a statement adds up to; `by_programme` maps a programme code to its own totals."""

    count: int = 0
    eligible_amount: Decimal = ZERO
    discount: Decimal = ZERO
    brand_amount: Decimal = ZERO
    by_programme: dict[str, "StatementTotals"] = field(default_factory=dict)

    def add(self, row: StatementRow, *, per_programme: bool = True) -> None:
        self.count += 1
        self.eligible_amount += row.eligible_amount
        self.discount += row.discount
        self.brand_amount += row.brand_amount
        if per_programme:
            self.by_programme.setdefault(row.programme_code, StatementTotals()).add(row, per_programme=False)

    @property
    def group_cost(self) -> Decimal:
        return self.discount - self.brand_amount


def statement_query(*, brand: Brand, starts_on: date, ends_on: date) -> QuerySet:
    """The brand's discount rows with business dates from `starts_on` to `ends_on` (inclusive), oldest first."""
    return (BrandDiscount.objects.filter(_in_period(starts_on, ends_on), brand=brand)
            .order_by("business_date", "created_at", "pk"))


def _row(values: tuple) -> StatementRow:
    return StatementRow(*values)


def statement_rows(queryset: QuerySet, *, chunk_size: int | None = 2000) -> Iterator[StatementRow]:
    """The rows of `queryset` (a statement_query, maybe sliced) as StatementRow, streamed when chunk_size is set."""
    values = queryset.values_list(*_ROW_FIELDS)
    rows = values.iterator(chunk_size=chunk_size) if chunk_size else values
    return (_row(values) for values in rows)


def statement_line_items(queryset: QuerySet, *, chunk_size: int = 2000) -> Iterator[tuple[StatementRow, list]]:
    """Each row of `queryset` with its stored eligible lines, streamed."""
    for values in queryset.values_list(*_ROW_FIELDS, "lines").iterator(chunk_size=chunk_size):
        row = _row(values[:-1])
        yield row, _lines(row, values[-1])


def _lines(row: StatementRow, stored) -> list[StatementLine]:
    if not isinstance(stored, list):
        return []
    return [
        StatementLine(row=row, sku=str(line.get("sku", "")), quantity=_number(line.get("quantity")),
                      amount=_number(line.get("amount")), discount=_number(line.get("discount")),
                      brand_amount=_number(line.get("brand_amount")))
        for line in stored if isinstance(line, dict)
    ]


def _number(value) -> Decimal | str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    return number if number.is_finite() else str(value)


def statement_totals(*, brand: Brand, starts_on: date, ends_on: date) -> StatementTotals:
    """The statement's totals, overall and per programme, in one aggregate query."""
    per_programme = (
        statement_query(brand=brand, starts_on=starts_on, ends_on=ends_on).order_by()
        .values("programme__code")
        .annotate(count=Count("pk"), eligible=_sum("eligible_amount"), discount_sum=_sum("discount"),
                  brand_sum=_sum("brand_amount"))
        .order_by("programme__code")
    )
    totals = StatementTotals()
    for group in per_programme:
        part = StatementTotals(count=group["count"], eligible_amount=_cents(group["eligible"]),
                               discount=_cents(group["discount_sum"]), brand_amount=_cents(group["brand_sum"]))
        totals.by_programme[group["programme__code"]] = part
        totals.count += part.count
        totals.eligible_amount += part.eligible_amount
        totals.discount += part.discount
        totals.brand_amount += part.brand_amount
    return totals


# --- programme results ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProgrammeResult:
    """What a programme did in a period; `programme` is None on the totals row."""

    programme: BrandProgramme | None
    cards_sold: int = 0
    paying_cards: int = 0
    payments: int = 0
    eligible_amount: Decimal = ZERO
    discount: Decimal = ZERO
    brand_amount: Decimal = ZERO

    @property
    def group_cost(self) -> Decimal:
        """The part of the discount the group pays itself."""
        return self.discount - self.brand_amount

    @property
    def sales_per_yuan(self) -> Decimal | None:
        """Eligible sales per yuan of discount; None when there was no discount to divide by."""
        if self.discount <= 0:
            return None
        return (self.eligible_amount / self.discount).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class ProgrammeResults:
    starts_on: date
    ends_on: date
    rows: tuple[ProgrammeResult, ...]
    total: ProgrammeResult


def _programmes_in(*, starts_on: date, ends_on: date, brand: Brand | None, with_rows: set[int]) -> list:
    """Programmes that ran during the period (active or ended, dates overlapping it) or have rows in it."""
    ran = (
        Q(status__in=[BrandProgramme.Status.ACTIVE, BrandProgramme.Status.ENDED], starts_on__lte=ends_on)
        & (Q(ends_on__isnull=True) | Q(ends_on__gte=starts_on))
        & (Q(ended_at__isnull=True) | Q(ended_at__gte=day_start(starts_on)))
    )
    programmes = BrandProgramme.objects.filter(ran | Q(pk__in=with_rows)).select_related("brand", "product")
    if brand is not None:
        programmes = programmes.filter(brand=brand)
    return sorted(programmes, key=lambda programme: (programme.brand.code, programme.starts_on, programme.code))


def programme_results(*, starts_on: date, ends_on: date, brand: Brand | None = None) -> ProgrammeResults:
    """Per programme for the period: cards sold, paying cards, payments, eligible sales, discount, brand's part.

    Cards sold are cards of the programme's product activated by a sale order in the period. Paying cards and
    payments count discounted payments (not voided by a reversal); the amounts are net of give-backs.
    """
    payment = Q(kind=CardTransaction.Kind.DEBIT, transaction__reversed_at__isnull=True)
    discounts = BrandDiscount.objects.filter(_in_period(starts_on, ends_on)).order_by()
    if brand is not None:
        discounts = discounts.filter(brand=brand)
    sums = {
        group["programme_id"]: group
        for group in discounts.values("programme_id").annotate(
            payments=Count("pk", filter=payment), paying_cards=Count("card_id", filter=payment, distinct=True),
            eligible=_sum("eligible_amount"), discount_sum=_sum("discount"), brand_sum=_sum("brand_amount"),
        )
    }
    programmes = _programmes_in(starts_on=starts_on, ends_on=ends_on, brand=brand, with_rows=set(sums))
    sold = dict(
        Card.objects.order_by()
        .filter(product_id__in={programme.product_id for programme in programmes}, sale_order__isnull=False,
                activated_at__gte=day_start(starts_on), activated_at__lt=day_end(ends_on))
        .values("product_id").annotate(count=Count("pk")).values_list("product_id", "count")
    )
    rows = []
    for programme in programmes:
        group = sums.get(programme.pk, {})
        rows.append(ProgrammeResult(
            programme=programme, cards_sold=sold.get(programme.product_id, 0),
            paying_cards=group.get("paying_cards", 0), payments=group.get("payments", 0),
            eligible_amount=_cents(group.get("eligible")), discount=_cents(group.get("discount_sum")),
            brand_amount=_cents(group.get("brand_sum")),
        ))
    # Programmes of one product share its cards: each card sold is counted once in the total.
    total = ProgrammeResult(
        programme=None, cards_sold=sum(sold.values()),
        paying_cards=discounts.filter(payment).values("card_id").distinct().count() if sums else 0,
        payments=sum(row.payments for row in rows),
        eligible_amount=sum((row.eligible_amount for row in rows), ZERO),
        discount=sum((row.discount for row in rows), ZERO),
        brand_amount=sum((row.brand_amount for row in rows), ZERO),
    )
    return ProgrammeResults(starts_on=starts_on, ends_on=ends_on, rows=tuple(rows), total=total)
