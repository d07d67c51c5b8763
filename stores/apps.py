from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate, post_save
from django.utils.translation import gettext_lazy as _


class StoresConfig(AppConfig):
    name = "stores"
    verbose_name = _("Stores and staff")

    def ready(self):
        from stores import roles
        from stores.models import Format, Store, Terminal
        from stores.services import terminal_keys_forget

        # New models of later migrations get their permissions into the roles too.
        post_migrate.connect(roles.roles_sync_after_migrate, dispatch_uid="stores.roles_sync")
        # A terminal a POS key finds is kept for seconds per process; a change saved here takes effect at once.
        for model in (Terminal, Store, Format):
            post_save.connect(terminal_keys_forget, sender=model,
                              dispatch_uid=f"stores.terminal_keys.{model.__name__}.save")
            post_delete.connect(terminal_keys_forget, sender=model,
                                dispatch_uid=f"stores.terminal_keys.{model.__name__}.delete")
