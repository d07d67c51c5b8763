from django.db import migrations

from core.migration_ops import append_only, create_app_permissions

# action -> the permission that approves it (every amount)
POLICIES = {
    "cards.programme_start": "approve_brand_programme",
    "cards.voucher_batch_issue": "approve_voucher_batch",
}


def reference_data(apps, schema_editor):
    create_app_permissions(apps, "cards")
    Permission = apps.get_model("auth", "Permission")
    ApprovalPolicy = apps.get_model("approvals", "ApprovalPolicy")
    for action, codename in POLICIES.items():
        permission = Permission.objects.get(content_type__app_label="cards", codename=codename)
        ApprovalPolicy.objects.get_or_create(
            action=action, min_amount=None,
            defaults={"approver_permission": permission, "hq_only": True, "is_active": True},
        )


class Migration(migrations.Migration):
    dependencies = [("cards", "0005_brand_cards_vouchers"), ("approvals", "0001_initial")]

    operations = [
        migrations.RunPython(reference_data, migrations.RunPython.noop),
        append_only("cards_voucherledgerentry"),
        append_only("cards_branddiscount"),
    ]
