from django.db import migrations

from core.migration_ops import append_only, create_app_permissions

TIERS = [
    # code, name, kind, rank
    ("NORMAL", "普卡", "earned", 0),
    ("SILVER", "银卡", "earned", 1),
    ("GOLD", "金卡", "earned", 2),
    ("PLATINUM", "铂金卡", "earned", 3),
    ("PLUS", "Plus会员", "paid", 10),
]


def reference_data(apps, schema_editor):
    Tier = apps.get_model("membership", "Tier")
    for code, name, kind, rank in TIERS:
        Tier.objects.get_or_create(code=code, defaults={"name": name, "kind": kind, "rank": rank})

    create_app_permissions(apps, "membership")
    Permission = apps.get_model("auth", "Permission")
    ApprovalPolicy = apps.get_model("approvals", "ApprovalPolicy")
    permission = Permission.objects.get(content_type__app_label="membership", codename="approve_member_merge")
    # Two records with different ID numbers may be two people: a second person decides.
    ApprovalPolicy.objects.get_or_create(
        action="membership.member_merge_conflicting_ids",
        min_amount=None,
        defaults={"approver_permission": permission, "hq_only": True, "is_active": True},
    )


class Migration(migrations.Migration):
    dependencies = [
        ("membership", "0001_initial"),
        ("approvals", "0002_store_close_policy"),
    ]

    operations = [
        append_only("membership_pointsentry"),
        migrations.RunPython(reference_data, migrations.RunPython.noop),
    ]
