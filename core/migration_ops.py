"""Migration operations shared by the apps."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def append_only(table: str) -> migrations.RunPython:
    """On PostgreSQL, make a ledger table refuse UPDATE and DELETE (DESIGN section 3).

    A mistaken script or a hand-written SQL statement then fails instead of
    silently rewriting history; corrections are reversing entries.
    """
    function = f"{table}_append_only"

    def forwards(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        schema_editor.execute(
            f"""
            CREATE OR REPLACE FUNCTION {function}() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
                    USING ERRCODE = 'integrity_constraint_violation';
            END;
            $$ LANGUAGE plpgsql;
            CREATE TRIGGER {function} BEFORE UPDATE OR DELETE ON {table}
                FOR EACH ROW EXECUTE FUNCTION {function}();
            """,
            params=None,
        )

    def backwards(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {function} ON {table}; DROP FUNCTION IF EXISTS {function}();")

    return migrations.RunPython(forwards, backwards)


def create_app_permissions(apps, *app_labels: str) -> None:
    """Create the permissions of these apps now, inside a migration.

    Django creates permissions only after the whole `migrate`; a data migration
    that grants or names a permission (roles, approval policies) needs them earlier.
    """
    configs = [apps.get_app_config(label) for label in app_labels] if app_labels else apps.get_app_configs()
    for app_config in configs:
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
