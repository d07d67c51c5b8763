from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MembershipConfig(AppConfig):
    name = "membership"
    verbose_name = _("Members")

    def ready(self):
        from membership import services  # noqa: F401 - registers the approval actions
