"""An ID on a sale order is recorded with the name it was checked against (real name follows the person).

Orders written before kept no such name: each takes the name it holds now, the only one known, so that open
orders can still be paid; from here on another name or ID type asks for the ID again.
"""

from django.db import migrations, models
from django.db.models import F


def names_backfill(apps, schema_editor):
    SaleOrder = apps.get_model("cards", "SaleOrder")
    SaleOrder.objects.exclude(buyer_id_digest="").update(buyer_id_name=F("buyer_name"))
    SaleOrder.objects.exclude(agent_id_digest="").update(agent_id_name=F("agent_name"))


class Migration(migrations.Migration):

    dependencies = [
        ('cards', '0010_card_rules_legal_bounds'),
    ]

    operations = [
        migrations.AddField(
            model_name='historicalsaleorder',
            name='agent_id_name',
            field=models.CharField(blank=True, editable=False, help_text="The agent's name the ID was recorded with: another name or ID type asks for the ID again.", max_length=100, verbose_name='name on the agent ID'),
        ),
        migrations.AddField(
            model_name='historicalsaleorder',
            name='buyer_id_name',
            field=models.CharField(blank=True, editable=False, help_text="The buyer's name the ID was recorded with: another name or ID type asks for the ID again.", max_length=100, verbose_name='name on the buyer ID'),
        ),
        migrations.AddField(
            model_name='saleorder',
            name='agent_id_name',
            field=models.CharField(blank=True, editable=False, help_text="The agent's name the ID was recorded with: another name or ID type asks for the ID again.", max_length=100, verbose_name='name on the agent ID'),
        ),
        migrations.AddField(
            model_name='saleorder',
            name='buyer_id_name',
            field=models.CharField(blank=True, editable=False, help_text="The buyer's name the ID was recorded with: another name or ID type asks for the ID again.", max_length=100, verbose_name='name on the buyer ID'),
        ),
        migrations.AlterField(
            model_name='historicalsaleorder',
            name='invoice_tax_no',
            field=models.CharField(blank=True, db_index=True, help_text='A buyer invoiced to a company counts as a company for the non-cash rule; orders with the same taxpayer number are added up for the limits.', max_length=20, verbose_name='invoice taxpayer number'),
        ),
        migrations.AlterField(
            model_name='historicalsaleorder',
            name='split_suspected',
            field=models.BooleanField(default=False, help_text="This order stays under a limit that it passes added to its buyer's earlier orders in the rules' window.", verbose_name='looks split'),
        ),
        migrations.AlterField(
            model_name='saleorder',
            name='invoice_tax_no',
            field=models.CharField(blank=True, db_index=True, help_text='A buyer invoiced to a company counts as a company for the non-cash rule; orders with the same taxpayer number are added up for the limits.', max_length=20, verbose_name='invoice taxpayer number'),
        ),
        migrations.AlterField(
            model_name='saleorder',
            name='split_suspected',
            field=models.BooleanField(default=False, help_text="This order stays under a limit that it passes added to its buyer's earlier orders in the rules' window.", verbose_name='looks split'),
        ),
        migrations.RunPython(names_backfill, migrations.RunPython.noop),
    ]
