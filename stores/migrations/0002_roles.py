from django.db import migrations

from core.migration_ops import create_app_permissions


def create_roles(apps, schema_editor):
    from stores.roles import roles_sync

    create_app_permissions(apps)
    roles_sync(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("stores", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
