from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MembershipConfig(AppConfig):
    name = "membership"
    verbose_name = _("Members")

    def ready(self):
        # Imported for what they register: the approval actions, and the points check of check_ledgers.
        from membership import ledgers, services  # noqa: F401
