"""Card services: payments."""
