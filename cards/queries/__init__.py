"""Read-side queries on cards shared by the admin, the desk and reports: stock and transfers here; the prepaid
liability and escrow in cards.queries.liability, the brands' statements and programme results in
cards.queries.brand_reports."""

from dataclasses import dataclass

from django.db.models import Count, F, Q, QuerySet
from django.utils.translation import gettext

from cards.models import Card, CardProduct, CardRules, CardTransfer, CardTransferItem
from stores.models import Store
from stores.queries import user_store_ids

__all__ = [
    "STOCK_STATUSES", "StockRow", "card_ranges", "cards_above_cap",
    "stock_cards_visible_to", "stock_overview", "transfer_card_numbers",
    "transfers_visible_to",
]

# What counts as stock: cards made and not yet sold or voided.
STOCK_STATUSES = (Card.Stock.PRODUCED, Card.Stock.IN_STOCK, Card.Stock.IN_TRANSIT)


@dataclass(frozen=True)
class StockRow:
    location: Store | None  # None is headquarters' stock
    product: CardProduct
    stock_status: str
    status: str
    count: int

    @property
    def location_label(self) -> str:
        return f"{self.location.code} {self.location.name}" if self.location else gettext("headquarters")

    @property
    def stock_status_label(self) -> str:
        return str(Card.Stock(self.stock_status).label)

    @property
    def status_label(self) -> str:
        return str(Card.Status(self.status).label)


def cards_above_cap(cards: QuerySet | None = None, *, rules: CardRules | None = None) -> QuerySet:
    """Cards holding more than their cap today (card_cap: the product's limit, never above the rules' for its kind).

    They were loaded before a cap was lowered: the ledger refuses them any further load, top-up or refund until
    they are spent below it, and headquarters follows them up from this list.
    """
    rules = rules or CardRules.current()
    cards = Card.objects.all() if cards is None else cards
    return cards.filter(
        Q(balance__gt=F("product__max_balance"))
        | Q(product__kind=CardProduct.Kind.REGISTERED, balance__gt=rules.registered_max_balance)
        | Q(product__kind=CardProduct.Kind.BEARER, balance__gt=rules.bearer_max_balance)
    )


def stock_cards_visible_to(user) -> QuerySet:
    """Cards whose stock a user may see: every card for headquarters, the cards held at their stores otherwise."""
    store_ids = user_store_ids(user)
    cards = Card.objects.all()
    return cards if store_ids is None else cards.filter(location__in=store_ids)


def stock_overview(*, user, include_sold: bool = False, location: Store | None = None, hq_only: bool = False,
                   product: CardProduct | None = None, batch=None) -> list[StockRow]:
    """Card counts per location, product, stock status and card status, as the user may see them.

    Headquarters first, then stores by code. Sold and void cards only with include_sold. One grouped scan of the
    cards (the card_stock index leads with location, stock status and product).
    """
    cards = stock_cards_visible_to(user)
    if not include_sold:
        cards = cards.filter(stock_status__in=STOCK_STATUSES)
    if hq_only:
        cards = cards.filter(location__isnull=True)
    elif location is not None:
        cards = cards.filter(location=location)
    if product is not None:
        cards = cards.filter(product=product)
    if batch is not None:
        cards = cards.filter(batch=batch)
    groups = list(cards.values("location_id", "product_id", "stock_status", "status").annotate(count=Count("pk"))
                  .order_by())
    stores = Store.objects.in_bulk({row["location_id"] for row in groups if row["location_id"]})
    products = CardProduct.objects.in_bulk({row["product_id"] for row in groups})
    rows = [StockRow(location=stores.get(row["location_id"]), product=products[row["product_id"]],
                     stock_status=row["stock_status"], status=row["status"], count=row["count"]) for row in groups]
    stock_order = {value: index for index, value in enumerate(Card.Stock.values)}
    status_order = {value: index for index, value in enumerate(Card.Status.values)}
    rows.sort(key=lambda row: (row.location is not None, row.location.code if row.location else "",
                               row.product.code, stock_order.get(row.stock_status, 99),
                               status_order.get(row.status, 99)))
    return rows


def transfers_visible_to(user, transfers: QuerySet | None = None) -> QuerySet:
    """Transfers a user may see: all for headquarters; those from or to their stores otherwise."""
    transfers = transfers if transfers is not None else CardTransfer.objects.all()
    store_ids = user_store_ids(user)
    if store_ids is None:
        return transfers
    return transfers.filter(Q(from_store__in=store_ids) | Q(to_store__in=store_ids))


def _consecutive(previous: str, card_no: str) -> bool:
    """Whether card_no follows previous in a generated series (same length, serial one higher)."""
    return (len(previous) == len(card_no) and previous[:-1].isdigit() and card_no[:-1].isdigit()
            and int(card_no[:-1]) == int(previous[:-1]) + 1)


def card_ranges(card_numbers, *, limit: int = 50) -> tuple[list[tuple[str, str, int]], bool]:
    """Sorted card numbers folded into (first, last, count) runs of consecutive serials; at most `limit` runs.

    Return the runs and whether more were left out.
    """
    runs: list[list] = []
    for card_no in card_numbers:
        if runs and _consecutive(runs[-1][1], card_no):
            runs[-1][1] = card_no
            runs[-1][2] += 1
            continue
        if len(runs) == limit:
            return [tuple(run) for run in runs], True
        runs.append([card_no, card_no, 1])
    return [tuple(run) for run in runs], False


def transfer_card_numbers(transfer: CardTransfer):
    """The card numbers of a transfer, sorted, read in chunks."""
    return (CardTransferItem.objects.filter(transfer=transfer).order_by("card__card_no")
            .values_list("card__card_no", flat=True).iterator(chunk_size=5000))
