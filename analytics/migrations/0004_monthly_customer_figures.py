from datetime import timedelta

from django.db import migrations, models


def fill_months(apps, schema_editor):
    """Sum the existing daily per-customer figures into their months (seconds at 10M
    purchases: a month is read at a time)."""
    from analytics import bitmaps

    daily = apps.get_model("analytics", "DailyRollup")
    monthly = apps.get_model("analytics", "MonthlyRollup")
    for row in monthly.objects.order_by("month").only("month"):
        nxt = (row.month.replace(day=28) + timedelta(days=4)).replace(day=1)
        days = daily.objects.filter(day__gte=row.month, day__lt=nxt).values_list(
            "active", "amounts", "counts"
        )
        _ids, counts, cents = bitmaps.merge_figures(bitmaps.figures_of(*d) for d in days)
        monthly.objects.filter(month=row.month).update(
            amounts=bitmaps.pack_ints(cents), counts=bitmaps.pack_ints(counts)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0003_breakdown_cells"),
    ]

    operations = [
        migrations.AddField(
            model_name="monthlyrollup",
            name="amounts",
            field=models.BinaryField(
                default=b"", editable=False, verbose_name="spend per customer"
            ),
        ),
        migrations.AddField(
            model_name="monthlyrollup",
            name="counts",
            field=models.BinaryField(
                default=b"", editable=False, verbose_name="purchases per customer"
            ),
        ),
        migrations.RunPython(fill_months, migrations.RunPython.noop),
    ]
