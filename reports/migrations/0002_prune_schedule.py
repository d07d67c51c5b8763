from django.db import migrations


def schedules_create(apps, schema_editor):
    from core.schedules import ensure_schedules

    ensure_schedules(apps)


class Migration(migrations.Migration):

    dependencies = [
        ("reports", "0001_initial"),
        ("core", "0003_nightly_schedules"),
    ]

    operations = [migrations.RunPython(schedules_create, migrations.RunPython.noop)]
