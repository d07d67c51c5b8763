"""What every form of the project shares: a service's refusal shown on the form that called it."""

from collections.abc import Mapping

from core.errors import DomainError


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
