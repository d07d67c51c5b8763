"""A partial index of the card loads per card and time, for the last load of each card in the card ageing
(settlement.queries.liability)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("cards", "0012_sale_split_policy")]

    operations = [
        migrations.AddIndex(
            model_name="cardledgerentry",
            index=models.Index(
                condition=models.Q(("kind", "load"), ("kind", "migration"), ("kind", "transfer_in"), _connector="OR"),
                fields=["card", "created_at"], name="card_ledger_load_time",
            ),
        ),
    ]
