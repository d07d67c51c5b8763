"""The approval policy of card orders that pass a non-cash limit only added to their buyer's earlier orders
(cards.rules): approved at headquarters by whoever approves card sales, at every amount."""

from django.db import migrations


def policy(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    ApprovalPolicy = apps.get_model("approvals", "ApprovalPolicy")
    permission = Permission.objects.get(content_type__app_label="cards", codename="approve_card_sale")
    ApprovalPolicy.objects.get_or_create(
        action="cards.sale_split_approve", min_amount=None,
        defaults={"approver_permission": permission, "hq_only": True, "is_active": True},
    )


class Migration(migrations.Migration):
    dependencies = [("cards", "0011_sale_identity_names"), ("approvals", "0001_initial")]

    operations = [migrations.RunPython(policy, migrations.RunPython.noop)]
