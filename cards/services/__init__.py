"""Every write on cards: the ledger, production and stock, sales, service operations and POS payments.

Callers import from the module that holds a function (cards.services.ledger, ...); importing this package
registers the approval actions of all of them.
"""

from cards.services import (  # noqa: F401
    brand_discounts,
    brands,
    ledger,
    operations,
    payments,
    production,
    sales,
    vouchers,
)
