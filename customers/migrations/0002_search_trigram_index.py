"""PostgreSQL fast path for customer search: a trigram index makes ``search_text LIKE
'%…%'`` an index scan at a million customers. Other databases scan, which is fine at the
sizes they serve (the embedded default)."""

from django.db import migrations

CREATE = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS customer_search_trgm_idx "
    "ON customers_customer USING gin (search_text gin_trgm_ops)",
]
DROP = ["DROP INDEX IF EXISTS customer_search_trgm_idx"]


def run(statements):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for statement in statements:
            schema_editor.execute(statement)

    return apply


class Migration(migrations.Migration):
    dependencies = [("customers", "0001_initial")]

    operations = [migrations.RunPython(run(CREATE), run(DROP))]
