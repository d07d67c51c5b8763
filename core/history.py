"""Audit history of master data (django-simple-history) for every model of the project."""

from datetime import datetime

from django.contrib.auth import get_user_model
from django.utils import timezone
from simple_history.models import HistoricalRecords
from simple_history.template_utils import HistoricalRecordContextHelper


def history_user(instance=None, request=None, **kwargs):
    """The staff user behind a change; a POS terminal acting through the API is not a user."""
    user = getattr(instance, "_history_user", None)
    if user is None and request is not None:
        user = getattr(request, "user", None)
    return user if isinstance(user, get_user_model()) and user.is_authenticated else None


def AuditHistory(**kwargs) -> HistoricalRecords:  # noqa: N802 - used like the field class it builds
    kwargs.setdefault("get_user", history_user)
    return HistoricalRecords(**kwargs)


class ReadableHistoryHelper(HistoricalRecordContextHelper):
    """The changes on a history page as staff read them: a choice by its label ("待审批", not "pending"), an empty
    value as "-", a time in local time, instead of the stored codes and "None"."""

    def prepare_delta_change_value(self, change, value):
        value = super().prepare_delta_change_value(change, value)
        field = self.model._meta.get_field(change.field)
        if value is None or value == "":
            return "-"
        choices = dict(field.flatchoices) if getattr(field, "choices", None) else {}
        if choices and value in choices:
            return choices[value]
        if isinstance(value, datetime):
            return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if timezone.is_aware(value) else value
        return value


class ReadableHistoryMixin:
    """For a SimpleHistoryAdmin: the history page's changes through ReadableHistoryHelper."""

    def get_historical_record_context_helper(self, request, historical_record):
        return ReadableHistoryHelper(self.model, historical_record)
