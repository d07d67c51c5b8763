from django.db import migrations


def create_schedules(apps, schema_editor):
    from core.schedules import ensure_schedules

    ensure_schedules(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0002_personaldataaccess"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, migrations.RunPython.noop)]
