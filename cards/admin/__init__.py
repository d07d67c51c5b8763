"""Admin screens for cards, one module per area; each registers its own models."""

from cards.admin import brand_reports, brands, cards, liability, production, sales, vouchers  # noqa: F401
