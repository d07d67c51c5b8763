"""Prepaid cards: products, the cards with their ledger, stock, sales and service operations."""

from cards.models.cards import Card, CardEvent, CardLedgerEntry, CardTransaction
from cards.models.products import Brand, CardNumberCounter, CardProduct, CardRules
from cards.models.sales import CardReturn, SaleLine, SaleOrder, SalePayment
from cards.models.stock import CardTransfer, CardTransferItem, ProductionBatch

__all__ = [
    "Brand", "Card", "CardEvent", "CardLedgerEntry", "CardNumberCounter", "CardProduct", "CardReturn", "CardRules",
    "CardTransaction", "CardTransfer", "CardTransferItem", "ProductionBatch", "SaleLine", "SaleOrder", "SalePayment",
]
