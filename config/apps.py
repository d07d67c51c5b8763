from django.apps import AppConfig


class ProjectConfig(AppConfig):
    """The project itself as an app, last in INSTALLED_APPS: what wires every app together (the demo data of all
    of them, the demo administrator) lives here, above the apps, so no app has to import another to do it."""

    name = "config"
    label = "config"

    def ready(self):
        from django.apps import apps
        from django.utils.translation import gettext_lazy as _

        # django-axes names its section "Axes" and has no Chinese: the admin shows what it is for.
        if apps.is_installed("axes"):
            apps.get_app_config("axes").verbose_name = _("Login protection")
            _axes_names_translated(apps)
        # django-celery-results leaves its chord counter unnamed (the class name, in English).
        if apps.is_installed("django_celery_results"):
            chord_counter = apps.get_model("django_celery_results", "ChordCounter")._meta
            chord_counter.verbose_name = _("chord counter")
            chord_counter.verbose_name_plural = _("chord counters")
        # django-simple-history names each history table "historical <the model's name>", fixed in the language
        # active when the models were loaded: named in the user's language instead. Only the names shown change
        # (_meta.original_attrs, which migrations read, stay as they are).
        for model in apps.get_models():
            base = getattr(model, "instance_type", None)
            if base is not None and hasattr(model, "history_object"):
                model._meta.verbose_name = _history_name(base._meta, plural=False)
                model._meta.verbose_name_plural = _history_name(base._meta, plural=True)


def _axes_names_translated(apps) -> None:
    """axes names its rows in English f-strings ("Access Log for admin @ ..."): the admin's titles and breadcrumbs
    name them in the user's language."""
    from django.utils import timezone
    from django.utils.translation import gettext

    def when(moment) -> str:
        return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"

    def failure(self) -> str:
        return gettext("Failed login of %(username)s at %(time)s from %(ip)s") % {
            "username": self.username, "time": when(self.attempt_time), "ip": self.ip_address}

    def attempt(self) -> str:
        return gettext("Login attempt at %(time)s") % {"time": when(self.attempt_time)}

    def log(self) -> str:
        return gettext("Login of %(username)s at %(time)s") % {
            "username": self.username, "time": when(self.attempt_time)}

    for model_name, name in (("AccessFailureLog", failure), ("AccessAttempt", attempt), ("AccessLog", log)):
        try:
            apps.get_model("axes", model_name).__str__ = name
        except LookupError:
            continue


def _history_name(base_meta, *, plural: bool):
    from django.utils.functional import lazy
    from django.utils.translation import gettext

    def name() -> str:
        return gettext("history of %(name)s") % {
            "name": base_meta.verbose_name_plural if plural else base_meta.verbose_name}

    return lazy(name, str)()
