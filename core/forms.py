"""What every form of the project shares: a service's refusal shown on the form that called it, and the date box
of a report's period."""

from collections.abc import Mapping

from django import forms

from core.errors import DomainError


class IsoDateInput(forms.DateInput):
    """The browser's date box (<input type="date">). Its value must be ISO (2026-11-30): the browser drops any
    other, and the Chinese locale's first date format is 2026/11/30, so the default period would show empty."""

    input_type = "date"

    def __init__(self, attrs=None):
        super().__init__(attrs=attrs, format="%Y-%m-%d")


def add_service_error(form, error: DomainError, *, field_names: Mapping[str, str] | None = None,
                      only_form_fields: bool = False) -> None:
    """A service's refusal next to the fields it names, or above the form when it names none.

    `field_names` maps a service's field name to the form's where they differ. A name the form lacks is shown
    above the form; with `only_form_fields` it is left out, and the refusal's own message stands above the form
    when none of its names is on the form.
    """
    named = False
    for name, texts in (error.fields or {}).items():
        target = (field_names or {}).get(name, name)
        if target in form.fields:
            form.add_error(target, texts)
            named = True
        elif not only_form_fields:
            form.add_error(None, texts)
            named = True
    if not named:
        form.add_error(None, str(error))
