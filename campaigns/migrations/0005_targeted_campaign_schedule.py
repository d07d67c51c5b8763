from django.db import migrations


def create_schedules(apps, schema_editor):
    # The nightly switch of targeted campaigns, on databases migrated before it existed.
    from core.schedules import ensure_schedules

    ensure_schedules(apps)


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0004_segments_targeted_campaigns"), ("core", "0003_nightly_schedules")]

    operations = [migrations.RunPython(create_schedules, migrations.RunPython.noop)]
