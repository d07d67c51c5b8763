from django.db import migrations

from core.migration_ops import create_app_permissions


def create_policy(apps, schema_editor):
    create_app_permissions(apps, "stores")
    Permission = apps.get_model("auth", "Permission")
    ApprovalPolicy = apps.get_model("approvals", "ApprovalPolicy")
    permission = Permission.objects.get(content_type__app_label="stores", codename="approve_store_close")
    ApprovalPolicy.objects.get_or_create(
        action="stores.store_close",
        min_amount=None,
        defaults={"approver_permission": permission, "hq_only": True, "is_active": True},
    )


class Migration(migrations.Migration):
    dependencies = [
        ("approvals", "0001_initial"),
        ("stores", "0002_roles"),
    ]

    operations = [migrations.RunPython(create_policy, migrations.RunPython.noop)]
