"""The export page of django-import-export with the columns named as the user reads them.

django-import-export labels each column's checkbox with its code title-cased ("Member No", "Store Code"). Here a
column is labelled by the resource's `labels` (column name -> translated label), else by the verbose name of the
model field it reads, else by its code. The file's own headers stay the column codes: they are what the import of
the same data reads back (docs and CONTRACT list them).
"""

from django.core.exceptions import FieldDoesNotExist
from django.utils.text import capfirst
from import_export.forms import SelectableFieldsExportForm


def column_label(resource, field_name: str) -> str:
    """The label of a resource's column: `labels`, else the model field's verbose name, else the code."""
    labels = getattr(resource, "labels", None) or {}
    if field_name in labels:
        return capfirst(labels[field_name])
    field = resource.fields.get(field_name)
    attribute = getattr(field, "attribute", None) or field_name
    model = getattr(resource._meta, "model", None)
    if model is not None and "__" not in attribute:
        try:
            return capfirst(model._meta.get_field(attribute).verbose_name)
        except FieldDoesNotExist:
            pass
    return field_name


class LabelledExportForm(SelectableFieldsExportForm):
    def _get_field_label(self, resource, field_name: str) -> str:
        return column_label(resource, field_name)
