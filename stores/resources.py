from datetime import datetime

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from import_export import fields, resources, widgets

from core.admin import SafeExportMixin
from stores.models import Format, Region, Store


class CodeWidget(widgets.ForeignKeyWidget):
    """A related row named by its code; an unknown code is a field error naming the value."""

    def __init__(self, model, **kwargs):
        super().__init__(model, field="code", **kwargs)

    def clean(self, value, row=None, **kwargs):
        value = (str(value).strip() if value is not None else "")
        if not value:
            raise ValueError(_("This column is required."))
        try:
            return super().clean(value, row, **kwargs)
        except self.model.DoesNotExist:
            raise ValueError(
                _("No %(model)s with code %(code)s.") % {"model": self.model._meta.verbose_name, "code": value}
            ) from None


class StoreStatusWidget(widgets.Widget):
    """Accepts the status value or its name in either language; closing goes through approval only."""

    allowed = (Store.Status.PLANNED, Store.Status.OPEN)

    def clean(self, value, row=None, **kwargs):
        text = str(value).strip() if value is not None else ""
        if not text:
            return Store.Status.OPEN
        for status in self.allowed:
            if text.lower() in (status.value, str(status.label).lower(), _(str(status.label)).lower()):
                return status.value
        if text.lower() in (Store.Status.CLOSED.value, str(Store.Status.CLOSED.label), _("closed")):
            raise ValueError(_("A store is closed through an approval request, not by import."))
        raise ValueError(_("Unknown status %(value)s; use planned or open.") % {"value": text})

    def render(self, value, obj=None, **kwargs):
        return value or ""


class CalendarDateWidget(widgets.DateWidget):
    """A calendar day; Excel hands date cells over as datetimes, which would never equal the stored date."""

    def clean(self, value, row=None, **kwargs):
        if isinstance(value, datetime):
            return value.date()
        return super().clean(value, row, **kwargs)


class StoreResource(SafeExportMixin, resources.ModelResource):
    code = fields.Field(attribute="code", column_name="code")
    name = fields.Field(attribute="name", column_name="name")
    format = fields.Field(attribute="format", column_name="format", widget=CodeWidget(Format))
    region = fields.Field(attribute="region", column_name="region", widget=CodeWidget(Region))
    address = fields.Field(attribute="address", column_name="address")
    phone = fields.Field(attribute="phone", column_name="phone")
    status = fields.Field(attribute="status", column_name="status", widget=StoreStatusWidget())
    opened_on = fields.Field(attribute="opened_on", column_name="opened_on", widget=CalendarDateWidget())

    class Meta:
        model = Store
        import_id_fields = ("code",)
        fields = ("code", "name", "format", "region", "address", "phone", "status", "opened_on")
        export_order = fields
        clean_model_instances = True
        skip_unchanged = True
        report_skipped = True
        use_transactions = True

    def before_import_row(self, row, **kwargs):
        for key, value in list(row.items()):
            if isinstance(value, str):
                row[key] = value.strip()
            elif value is None and key in ("address", "phone"):
                row[key] = ""

    def import_instance(self, instance, row, **kwargs):
        if instance.pk and instance.status == Store.Status.CLOSED:
            raise ValidationError(
                _("Store %(code)s is closed and cannot be changed by import.") % {"code": instance.code}
            )
        super().import_instance(instance, row, **kwargs)
