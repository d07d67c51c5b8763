"""Celery tasks of settlement: thin wrappers around the services."""
