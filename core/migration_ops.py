"""Migration operations shared by the apps."""

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
