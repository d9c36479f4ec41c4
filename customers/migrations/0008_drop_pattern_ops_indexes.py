"""Drop the ``varchar_pattern_ops`` twins Django adds on PostgreSQL beside the unique indexes
of ``Purchase.order_id`` and ``Customer.external_id``.

They only serve ``LIKE 'prefix%'`` queries, which the app never makes on these columns (search
goes through ``search_text``), yet every imported row pays for them: with the purchases'
twin gone the import benchmark went from about 38,600 to 43,100 purchase rows/s
(tests/bench/bench_import.py, 1M rows into 10M). Django does not recreate them unless the
field itself is altered; a later AlterField on these fields should drop them again.
"""

from django.db import migrations

TWINS = [("Purchase", "order_id"), ("Customer", "external_id")]


def _twin_names(apps, schema_editor):
    for model_name, column in TWINS:
        model = apps.get_model("customers", model_name)
        yield (
            model,
            column,
            schema_editor._create_index_name(model._meta.db_table, [column], suffix="_like"),
        )


def drop_twins(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for _model, _column, name in _twin_names(apps, schema_editor):
        schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


def restore_twins(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for model, column, _name in _twin_names(apps, schema_editor):
        field = model._meta.get_field(column)
        schema_editor.execute(schema_editor._create_like_index_sql(model, field))


class Migration(migrations.Migration):
    dependencies = [("customers", "0007_customer_tag_through")]

    operations = [migrations.RunPython(drop_twins, restore_twins, elidable=False)]
