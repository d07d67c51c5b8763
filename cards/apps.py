from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CardsConfig(AppConfig):
    name = "cards"
    verbose_name = _("Cards")

    def ready(self):
        # Imported for what they register: the approval actions, and the card check of check_ledgers.
        from cards import ledgers, services  # noqa: F401
