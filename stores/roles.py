"""The staff roles of DESIGN section 5 and the permissions each one holds.

Groups are created by a data migration; after every `migrate` the permissions
of models added since are granted to the roles as well (grants are only ever
added, so what staff changed in the admin stays).
"""

from fnmatch import fnmatch

from django.apps import apps as global_apps

PROJECT_APPS = ("stores", "approvals", "membership", "cards", "campaigns", "settlement", "reports", "integrations")

# group name -> permissions as "app_label.codename" patterns
ROLES: dict[str, tuple[str, ...]] = {
    "总部管理员": (
        *(f"{app}.*" for app in PROJECT_APPS),
        "auth.view_user", "auth.add_user", "auth.change_user", "auth.view_group",
        "django_celery_beat.*", "django_celery_results.view_*", "axes.view_*", "axes.delete_accessattempt",
    ),
    "卡务运营": ("cards.*", "stores.view_store", "stores.view_format", "approvals.view_approvalrequest"),
    # Finance settles points between legal entities: the ledgers and purchases, not the members' details.
    "财务": (
        "cards.view_*", "reports.*", "stores.view_*", "membership.view_tier", "approvals.view_*",
        # Clearing, periods, statements, the finance files and reconciliation.
        "settlement.*",
        "membership.view_pointsentry", "membership.view_purchase", "membership.view_purchasereturn",
        "membership.view_pointsdebtentry", "membership.view_pointshold", "membership.view_tiersubscription",
        "membership.view_giftredemption", "membership.view_pointspolicy", "membership.view_earnrule",
    ),
    "市场营销": ("campaigns.*", "membership.view_*", "reports.view_*", "stores.view_store",
             "approvals.view_approvalrequest"),
    "会员运营": ("membership.*", "stores.view_store", "approvals.view_approvalrequest"),
    "门店店长": (
        "stores.view_store", "stores.change_store", "stores.view_terminal", "stores.add_terminal",
        "stores.change_terminal", "membership.view_*", "membership.add_member", "membership.change_member",
        # Receiving and counting the store's gift stock (every change is a stock movement).
        "membership.change_giftstock",
        # Missed-receipt claims and benefit uses at the store's desk.
        "membership.add_purchaseclaim", "membership.use_benefit",
        "cards.view_*", "reports.view_*", "approvals.view_approvalrequest",
        # Receiving card stock sent to the store, sending it back, selling and serving cards at the desk.
        "cards.receive_card_stock", "cards.add_cardtransfer", "cards.sell_card", "cards.serve_card",
        # The coupons redeemed at the store's tills.
        "campaigns.view_couponredemption",
        # The store's members on targeted campaigns and the calls its clerks made from the call lists.
        "campaigns.view_campaignmember", "campaigns.view_callattempt",
        # The store's POS files and reconciliation: uploading a day's file, accepting its exceptions.
        "settlement.view_posfile", "settlement.add_posfile", "settlement.view_posline", "settlement.view_reconday",
        "settlement.view_reconexception", "settlement.resolve_reconexception", "settlement.view_posfilelayout",
    ),
    "服务台": ("membership.view_member", "membership.add_member", "membership.change_member",
            "membership.use_service_desk", "membership.redeem_gift", "membership.sell_paid_tier",
            "membership.view_gift", "membership.view_giftstock", "membership.view_tier",
            # Selling and topping up cards, balance enquiries, loss reports and replacements at the desk.
            "cards.sell_card", "cards.serve_card", "cards.view_card", "cards.view_cardproduct",
            # Working off the store's call lists of targeted campaigns.
            "campaigns.add_callattempt",
            # Claiming a receipt the POS sent without a member, and recording a member's use of a benefit.
            "membership.add_purchaseclaim", "membership.use_benefit", "membership.view_benefit"),
    "报表查看": ("reports.view_*",),
}


def roles_sync(apps=global_apps) -> None:
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    permissions = list(Permission.objects.select_related("content_type"))
    for name, patterns in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        wanted = [
            permission
            for permission in permissions
            if any(
                fnmatch(f"{permission.content_type.app_label}.{permission.codename}", pattern)
                for pattern in patterns
            )
        ]
        group.permissions.add(*wanted)


def roles_sync_after_migrate(sender, app_config=None, apps=global_apps, **kwargs):
    # post_migrate is sent once per app that has models, in INSTALLED_APPS order, right
    # after that app's permissions are created: at the last such app every permission exists.
    # (Apps without a models module get no signal, so the very last app may never send one.)
    with_models = [config for config in global_apps.get_app_configs() if config.models_module is not None]
    if app_config is not with_models[-1]:
        return
    roles_sync(apps)
