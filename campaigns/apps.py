from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = _("Campaigns")

    def ready(self):
        # Imported for what they register: the approval actions, the coupon check of check_ledgers, and the
        # membership and card hooks (points promotions, after-payment coupons, coupons given back).
        from campaigns import hooks, ledgers, services  # noqa: F401
