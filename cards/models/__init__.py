"""Prepaid cards: products, the cards with their ledger, stock, sales and service operations, brand cards and
pickup vouchers."""

from cards.models.brands import BrandDiscount, BrandProgramme, BrandSku, BrandSkuList
from cards.models.cards import Card, CardEvent, CardLedgerEntry, CardTransaction
from cards.models.products import Brand, CardNumberCounter, CardProduct, CardRules
from cards.models.sales import CardReturn, SaleLine, SaleOrder, SalePayment
from cards.models.stock import CardTransfer, CardTransferItem, ProductionBatch
from cards.models.vouchers import (
    SaleVoucherLine,
    Supplier,
    Voucher,
    VoucherBatch,
    VoucherLedgerEntry,
    VoucherProduct,
)

__all__ = [
    "Brand", "BrandDiscount", "BrandProgramme", "BrandSku", "BrandSkuList", "Card", "CardEvent", "CardLedgerEntry",
    "CardNumberCounter", "CardProduct", "CardReturn", "CardRules", "CardTransaction", "CardTransfer",
    "CardTransferItem", "ProductionBatch", "SaleLine", "SaleOrder", "SalePayment", "SaleVoucherLine", "Supplier",
    "Voucher", "VoucherBatch", "VoucherLedgerEntry", "VoucherProduct",
]
