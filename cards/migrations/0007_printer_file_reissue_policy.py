from django.db import migrations


def policy(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    ApprovalPolicy = apps.get_model("approvals", "ApprovalPolicy")
    permission = Permission.objects.get(content_type__app_label="cards", codename="approve_card_production")
    ApprovalPolicy.objects.get_or_create(
        action="cards.printer_file_reissue", min_amount=None,
        defaults={"approver_permission": permission, "hq_only": True, "is_active": True},
    )


class Migration(migrations.Migration):
    dependencies = [("cards", "0006_brand_voucher_policies")]

    operations = [migrations.RunPython(policy, migrations.RunPython.noop)]
