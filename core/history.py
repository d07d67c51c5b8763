"""Audit history of master data (django-simple-history) for every model of the project."""

from django.contrib.auth import get_user_model
from simple_history.models import HistoricalRecords


def history_user(instance=None, request=None, **kwargs):
    """The staff user behind a change; a POS terminal acting through the API is not a user."""
    user = getattr(instance, "_history_user", None)
    if user is None and request is not None:
        user = getattr(request, "user", None)
    return user if isinstance(user, get_user_model()) and user.is_authenticated else None


def AuditHistory(**kwargs) -> HistoricalRecords:  # noqa: N802 - used like the field class it builds
    kwargs.setdefault("get_user", history_user)
    return HistoricalRecords(**kwargs)
