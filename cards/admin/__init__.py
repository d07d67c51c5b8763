"""Admin screens for cards, one module per area; each registers its own models."""

from cards.admin import cards, production, sales  # noqa: F401
