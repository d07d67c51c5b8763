from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class StoresConfig(AppConfig):
    name = "stores"
    verbose_name = _("Stores and staff")

    def ready(self):
        from stores import roles

        # New models of later migrations get their permissions into the roles too.
        post_migrate.connect(roles.roles_sync_after_migrate, dispatch_uid="stores.roles_sync")
