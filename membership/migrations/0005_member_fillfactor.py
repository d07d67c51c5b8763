from django.db import migrations


def fillfactor(value: int):
    def set_fillfactor(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        schema_editor.execute(f"ALTER TABLE membership_member SET (fillfactor = {value})")

    return set_fillfactor


class Migration(migrations.Migration):
    """Leave room in each page of the members table for the points and tier updates of the day.

    Points change with every purchase, redemption and nightly expiry. With free space in
    the page PostgreSQL rewrites the row in place (a HOT update) without touching any of
    the member indexes; a full page moves the row and updates every index.
    """

    dependencies = [("membership", "0004_loyalty_reference_data")]

    operations = [migrations.RunPython(fillfactor(80), fillfactor(100))]
