"""Card services: sales."""
