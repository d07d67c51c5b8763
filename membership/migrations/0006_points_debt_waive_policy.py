from django.db import migrations


def waive_policy(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    ApprovalPolicy = apps.get_model("approvals", "ApprovalPolicy")
    permission = Permission.objects.get(content_type__app_label="membership", codename="approve_points_adjustment")
    # Forgiving points owed is a manual adjustment of a ledger: a second person decides.
    ApprovalPolicy.objects.get_or_create(
        action="membership.points_debt_waive",
        min_amount=None,
        defaults={"approver_permission": permission, "hq_only": True, "is_active": True},
    )


class Migration(migrations.Migration):
    dependencies = [("membership", "0005_member_fillfactor")]

    operations = [migrations.RunPython(waive_policy, migrations.RunPython.noop)]
