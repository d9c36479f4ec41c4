from django.db import migrations, models

# An existing row keeps totals None (LTV reads its arrays) until the next refresh rebuilds it.


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0008_hour_month"),
    ]

    operations = [
        migrations.AddField(
            model_name="customerlifetime",
            name="totals",
            field=models.JSONField(blank=True, editable=False, null=True, verbose_name="totals"),
        ),
    ]
