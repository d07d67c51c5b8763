"""A locked settlement period is enforced by the database, not only by the services: nothing that belongs to it
(its clearing runs and lines, its statements and their lines) may be inserted, changed or deleted, and the period
itself cannot be changed back or deleted. PostgreSQL gets the whole guard; SQLite (the zero-set-up database) is
guarded against inserts and updates only, because Django empties an SQLite database between tests with DELETE
(PostgreSQL's TRUNCATE fires no row trigger), and a period with rows is protected from the ORM's deletes anyway."""

from django.db import migrations

# table -> SQL that finds the period of a row (NEW or OLD), with {row} standing for it
GUARDED = {
    "settlement_clearingrun": "{row}.period_id",
    "settlement_clearingline": "{row}.period_id",
    "settlement_statement": "{row}.period_id",
    "settlement_statementline": "(SELECT period_id FROM settlement_statement WHERE id = {row}.statement_id)",
}
LOCKED = "(SELECT status FROM settlement_settlementperiod WHERE id = {period}) = 'locked'"
MESSAGE = "settlement period is locked: % on % refused"


def _postgresql(schema_editor):
    for table, period in GUARDED.items():
        new_locked = LOCKED.format(period=period.format(row="NEW"))
        old_locked = LOCKED.format(period=period.format(row="OLD"))
        schema_editor.execute(f"""
            CREATE OR REPLACE FUNCTION {table}_period_lock() RETURNS trigger AS $$
            BEGIN
                IF (TG_OP IN ('UPDATE', 'DELETE') AND {old_locked})
                   OR (TG_OP IN ('INSERT', 'UPDATE') AND {new_locked}) THEN
                    RAISE EXCEPTION '{MESSAGE}', TG_OP, TG_TABLE_NAME
                        USING ERRCODE = 'integrity_constraint_violation';
                END IF;
                IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
                RETURN NEW;
            END;
            $$ LANGUAGE plpgsql;
            CREATE TRIGGER {table}_period_lock BEFORE INSERT OR UPDATE OR DELETE ON {table}
                FOR EACH ROW EXECUTE FUNCTION {table}_period_lock();
        """, params=None)
    schema_editor.execute(f"""
        CREATE OR REPLACE FUNCTION settlement_settlementperiod_lock() RETURNS trigger AS $$
        BEGIN
            IF OLD.status = 'locked' THEN
                RAISE EXCEPTION '{MESSAGE}', TG_OP, TG_TABLE_NAME USING ERRCODE = 'integrity_constraint_violation';
            END IF;
            IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
            RETURN NEW;
        END;
        $$ LANGUAGE plpgsql;
        CREATE TRIGGER settlement_settlementperiod_lock BEFORE UPDATE OR DELETE ON settlement_settlementperiod
            FOR EACH ROW EXECUTE FUNCTION settlement_settlementperiod_lock();
    """, params=None)


def _sqlite(schema_editor):
    message = "settlement period is locked"
    for table, period in GUARDED.items():
        for operation, rows in (("INSERT", ("NEW",)), ("UPDATE", ("OLD", "NEW"))):
            condition = " OR ".join(LOCKED.format(period=period.format(row=row)) for row in rows)
            schema_editor.execute(
                f"CREATE TRIGGER {table}_period_lock_{operation.lower()} BEFORE {operation} ON {table} "
                f"WHEN {condition} BEGIN SELECT RAISE(ABORT, '{message}'); END;"
            )
    schema_editor.execute(
        "CREATE TRIGGER settlement_settlementperiod_lock_update BEFORE UPDATE ON settlement_settlementperiod "
        f"WHEN OLD.status = 'locked' BEGIN SELECT RAISE(ABORT, '{message}'); END;"
    )


def forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        _postgresql(schema_editor)
    elif vendor == "sqlite":
        _sqlite(schema_editor)


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    tables = [*GUARDED, "settlement_settlementperiod"]
    if vendor == "postgresql":
        for table in tables:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_period_lock ON {table}; "
                                  f"DROP FUNCTION IF EXISTS {table}_period_lock();")
        schema_editor.execute("DROP TRIGGER IF EXISTS settlement_settlementperiod_lock ON settlement_settlementperiod; "
                              "DROP FUNCTION IF EXISTS settlement_settlementperiod_lock();")
    elif vendor == "sqlite":
        for table in tables:
            for operation in ("insert", "update", "delete"):
                schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_period_lock_{operation}")
        for operation in ("update", "delete"):
            schema_editor.execute(f"DROP TRIGGER IF EXISTS settlement_settlementperiod_lock_{operation}")


class Migration(migrations.Migration):
    dependencies = [("settlement", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards)]
