"""The approvals of settlement and its nightly run.

Locking a settlement period is decided at headquarters by whoever may approve periods; correcting a card's ledger
for a reconciliation exception at headquarters by whoever may work exceptions off (a store's manager may ask for a
correction and accept exceptions, but money moves on a card only when headquarters decides), never by the person
who asked (the approval engine refuses that). The nightly clearing of yesterday is created in
django-celery-beat, on databases migrated before it existed.
"""

from django.db import migrations

from core.migration_ops import create_app_permissions

POLICIES = (
    # action, approver permission, approved at headquarters only
    ("settlement.period_lock", "approve_settlementperiod", True),
    ("settlement.exception_correct", "resolve_reconexception", True),
)


def forwards(apps, schema_editor):
    create_app_permissions(apps, "settlement")
    Permission = apps.get_model("auth", "Permission")
    ApprovalPolicy = apps.get_model("approvals", "ApprovalPolicy")
    for action, codename, hq_only in POLICIES:
        permission = Permission.objects.get(content_type__app_label="settlement", codename=codename)
        ApprovalPolicy.objects.get_or_create(
            action=action, min_amount=None,
            defaults={"approver_permission": permission, "hq_only": hq_only, "is_active": True},
        )
    from core.schedules import ensure_schedules

    ensure_schedules(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("settlement", "0002_period_lock"),
        ("approvals", "0002_store_close_policy"),
        ("core", "0003_nightly_schedules"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
