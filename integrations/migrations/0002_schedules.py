from django.db import migrations


def schedules_create(apps, schema_editor):
    from core.schedules import ensure_schedules

    ensure_schedules(apps)


class Migration(migrations.Migration):

    dependencies = [
        ("integrations", "0001_initial"),
        ("core", "0003_nightly_schedules"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedules_create, migrations.RunPython.noop)]
