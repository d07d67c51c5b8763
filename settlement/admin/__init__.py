"""Admin screens for settlement (结算) and reconciliation (对账), one module per area; each registers its own
models and pages."""

from settlement.admin import clearing, periods, reconciliation  # noqa: F401
