"""Permissions as staff read them, in their language.

Django stores a permission's name in English when the migration creates it ("Can add store", "Can approve closing a
store"), and `str(permission)` shows that name. Here a model's default permissions are named from the action and
the model's verbose name, and the project's own (Meta.permissions, marked for translation) are looked up in the
catalog.
"""

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

DEFAULT_ACTIONS = {
    "add": _("Can add %(model)s"),
    "change": _("Can change %(model)s"),
    "delete": _("Can delete %(model)s"),
    "view": _("Can view %(model)s"),
}


def permission_name(permission) -> str:
    """The permission's name in the active language."""
    action, _sep, model_name = permission.codename.partition("_")
    model = permission.content_type.model_class()
    if action in DEFAULT_ACTIONS and model is not None and model_name == model._meta.model_name:
        return DEFAULT_ACTIONS[action] % {"model": model._meta.verbose_name}
    return gettext(permission.name)


def permission_label(permission) -> str:
    """What a list or a choice shows: app | model | name, each in the active language."""
    model = permission.content_type.model_class()
    if model is None:
        return f"{permission.content_type} | {permission_name(permission)}"
    app = model._meta.app_config.verbose_name
    return f"{app} | {model._meta.verbose_name} | {permission_name(permission)}"
