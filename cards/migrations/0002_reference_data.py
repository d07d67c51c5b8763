from django.db import migrations

from core.migration_ops import append_only, create_app_permissions

# action -> the permission that approves it (every amount; the services decide when an action asks at all)
POLICIES = {
    "cards.batch_produce": "approve_card_production",
    "cards.sale_approve": "approve_card_sale",
    "cards.card_return": "approve_card_return",
    "cards.card_adjust": "approve_card_adjustment",
    "cards.balance_write_off": "approve_card_adjustment",
}


def reference_data(apps, schema_editor):
    create_app_permissions(apps, "cards")
    apps.get_model("cards", "CardRules").objects.get_or_create(pk=1)
    Permission = apps.get_model("auth", "Permission")
    ApprovalPolicy = apps.get_model("approvals", "ApprovalPolicy")
    for action, codename in POLICIES.items():
        permission = Permission.objects.get(content_type__app_label="cards", codename=codename)
        ApprovalPolicy.objects.get_or_create(
            action=action, min_amount=None,
            defaults={"approver_permission": permission, "hq_only": True, "is_active": True},
        )


class Migration(migrations.Migration):
    dependencies = [("cards", "0001_initial"), ("approvals", "0001_initial")]

    operations = [
        migrations.RunPython(reference_data, migrations.RunPython.noop),
        append_only("cards_cardledgerentry"),
        append_only("cards_cardevent"),
    ]
