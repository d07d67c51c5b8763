"""Card services: operations."""
