"""Revenue by customer prefecture is no longer kept in breakdown cells (it follows the
customers' prefectures now: analytics.breakdowns); the rollups' per-customer arrays are
compressed with LZ4 instead of PostgreSQL's default pglz.

Why LZ4: see analytics.storage. The values already stored are compressed again.
"""

from django.db import migrations, models

from analytics.storage import compress_with_lz4

BLOBS = {
    "analytics_dailyrollup": ("active", "amounts", "counts", "first_buyers", "second_buyers"),
    "analytics_monthlyrollup": ("active", "amounts", "counts", "first_buyers", "second_buyers"),
    "analytics_breakdowncell": ("customers", "amounts", "counts"),
    "analytics_customersnapshot": ("created", "erased", "prefectures", "channels"),
}


def compress_rollups(apps, schema_editor):
    compress_with_lz4(schema_editor, BLOBS)


def drop_prefecture_cells(apps, schema_editor):
    apps.get_model("analytics", "BreakdownCell").objects.filter(dimension="prefecture").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0006_customer_lifetime"),
    ]

    operations = [
        migrations.RunPython(drop_prefecture_cells, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="breakdowncell",
            name="dimension",
            field=models.CharField(
                choices=[
                    ("hour", "Hour of the day"),
                    ("channel", "Sales channel of the purchase"),
                    ("category", "Product category"),
                ],
                max_length=20,
                verbose_name="dimension",
            ),
        ),
        migrations.RunPython(compress_rollups, migrations.RunPython.noop),
    ]
