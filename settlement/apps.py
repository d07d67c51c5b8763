from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SettlementConfig(AppConfig):
    name = "settlement"
    verbose_name = _("Settlement")

    def ready(self):
        # Imported for what they register: the approval actions (closing a period, correcting a reconciliation
        # exception) and the Celery tasks.
        from settlement import services, tasks  # noqa: F401
