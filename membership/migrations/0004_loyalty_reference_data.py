from decimal import Decimal

from django.db import migrations

from core.migration_ops import append_only, create_app_permissions

# code -> qualifying spend, points multiplier, discount, grace days, fee, term months
TIER_RULES = {
    "NORMAL": (Decimal("0.00"), Decimal("1.00"), "", 0, Decimal("0.00"), 12),
    "SILVER": (Decimal("5000.00"), Decimal("1.00"), "98折", 90, Decimal("0.00"), 12),
    "GOLD": (Decimal("20000.00"), Decimal("1.20"), "95折", 90, Decimal("0.00"), 12),
    "PLATINUM": (Decimal("50000.00"), Decimal("1.50"), "92折", 90, Decimal("0.00"), 12),
    "PLUS": (Decimal("0.00"), Decimal("1.50"), "", 0, Decimal("199.00"), 12),
}


def reference_data(apps, schema_editor):
    Tier = apps.get_model("membership", "Tier")
    for code, (threshold, multiplier, discount, grace, fee, term) in TIER_RULES.items():
        Tier.objects.filter(code=code).update(
            threshold=threshold, points_multiplier=multiplier, discount_text=discount, grace_days=grace,
            fee=fee, term_months=term,
        )
    apps.get_model("membership", "PointsPolicy").objects.get_or_create(pk=1)

    create_app_permissions(apps, "membership")
    Permission = apps.get_model("auth", "Permission")
    ApprovalPolicy = apps.get_model("approvals", "ApprovalPolicy")
    permission = Permission.objects.get(content_type__app_label="membership", codename="approve_points_adjustment")
    # Manual points adjustments always need a second person (DESIGN section 4).
    ApprovalPolicy.objects.get_or_create(
        action="membership.points_adjust",
        min_amount=None,
        defaults={"approver_permission": permission, "hq_only": True, "is_active": True},
    )


def create_schedules(apps, schema_editor):
    from core.schedules import ensure_schedules

    ensure_schedules(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("membership", "0003_loyalty"),
        ("core", "0003_nightly_schedules"),
        ("approvals", "0002_store_close_policy"),
    ]

    operations = [
        append_only("membership_pointsdebtentry"),
        append_only("membership_giftstockmovement"),
        append_only("membership_tierchange"),
        migrations.RunPython(reference_data, migrations.RunPython.noop),
        migrations.RunPython(create_schedules, migrations.RunPython.noop),
    ]
