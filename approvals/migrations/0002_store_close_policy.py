from django.contrib.auth.management import create_permissions
from django.db import migrations


def create_policy(apps, schema_editor):
    app_config = apps.get_app_config("stores")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
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
