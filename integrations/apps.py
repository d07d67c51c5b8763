from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = _("Integrations")

    def ready(self):
        # Imported for what they register: the Celery tasks, and the signal that forgets the cached subscriptions.
        from integrations import events, tasks  # noqa: F401
