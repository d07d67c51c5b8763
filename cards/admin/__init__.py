"""Admin screens for cards, one module per area; each registers its own models."""

from cards.admin import cards, liability, production, sales  # noqa: F401
