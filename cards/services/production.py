"""Card services: production."""
