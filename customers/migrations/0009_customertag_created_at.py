"""CustomerTag gets a copy of its customer's created_at and the index (tag, created_at DESC,
customer DESC): a tag's members in the customer list's order (newest first), so that a page
of a big tag whose members are mostly old customers is one short index range scan instead of
a walk down every customer (see selectors.with_tag).

The copy is kept equal by database triggers rather than by each Python path that adds tags
(forms, API, admin inline, merge, import, seeding, ``tags.add()`` anywhere): a row inserted
without it gets the customer's; a row moved to another customer (a merge) takes the new
customer's; a change of a customer's created_at is copied to their tag rows. Existing rows
are filled by one UPDATE ... FROM (the backfill is meant to stay: it is the column's value).
"""

from django.db import migrations, models

_POSTGRESQL = [
    (
        """
        CREATE FUNCTION customer_tag_fill_created_at() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            -- Seeding writes the right value itself (COPY); everything else leaves it NULL.
            IF TG_OP = 'INSERT' AND NEW.created_at IS NOT NULL THEN
                RETURN NEW;
            END IF;
            SELECT created_at INTO NEW.created_at
            FROM customers_customer WHERE id = NEW.customer_id;
            RETURN NEW;
        END $$;
        CREATE TRIGGER customer_tag_fill_created_at
            BEFORE INSERT OR UPDATE OF customer_id ON customers_customer_tags
            FOR EACH ROW EXECUTE FUNCTION customer_tag_fill_created_at();

        CREATE FUNCTION customer_copy_created_at_to_tags() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE customers_customer_tags SET created_at = NEW.created_at
            WHERE customer_id = NEW.id;
            RETURN NULL;
        END $$;
        CREATE TRIGGER customer_copy_created_at_to_tags
            AFTER UPDATE OF created_at ON customers_customer
            FOR EACH ROW WHEN (OLD.created_at IS DISTINCT FROM NEW.created_at)
            EXECUTE FUNCTION customer_copy_created_at_to_tags();
        """,
        """
        DROP TRIGGER customer_copy_created_at_to_tags ON customers_customer;
        DROP FUNCTION customer_copy_created_at_to_tags();
        DROP TRIGGER customer_tag_fill_created_at ON customers_customer_tags;
        DROP FUNCTION customer_tag_fill_created_at();
        """,
    ),
    # A page of a tag is a LIMIT over an ordered walk of the tag's index: split between
    # parallel workers, each walked ahead far past the page (200 ms for a page of 法人 in
    # Okinawa instead of 17 ms alone), and the planner's cost model favoured them. The table
    # is small (a few bytes per tag row): its scans gain nothing from workers.
    (
        "ALTER TABLE customers_customer_tags SET (parallel_workers = 0)",
        "ALTER TABLE customers_customer_tags RESET (parallel_workers)",
    ),
    (
        """
        UPDATE customers_customer_tags AS ct SET created_at = c.created_at
        FROM customers_customer AS c WHERE c.id = ct.customer_id
        """,
        "",
    ),
]

# SQLite's BEFORE triggers cannot change NEW: the row is completed right after it is written,
# when inserted without the copy or moved to another customer.
_SQLITE_FILL = """
        CREATE TRIGGER {name}
        AFTER {event} ON customers_customer_tags FOR EACH ROW {when}
        BEGIN
            UPDATE customers_customer_tags SET created_at = (
                SELECT created_at FROM customers_customer WHERE id = NEW.customer_id
            ) WHERE id = NEW.id;
        END
        """
_SQLITE = [
    (
        _SQLITE_FILL.format(
            name="customer_tag_fill_created_at",
            event="INSERT",
            when="WHEN NEW.created_at IS NULL",
        ),
        "DROP TRIGGER customer_tag_fill_created_at",
    ),
    (
        _SQLITE_FILL.format(
            name="customer_tag_move_created_at", event="UPDATE OF customer_id", when=""
        ),
        "DROP TRIGGER customer_tag_move_created_at",
    ),
    (
        """
        CREATE TRIGGER customer_copy_created_at_to_tags
        AFTER UPDATE OF created_at ON customers_customer FOR EACH ROW
        WHEN OLD.created_at IS NOT NEW.created_at
        BEGIN
            UPDATE customers_customer_tags SET created_at = NEW.created_at
            WHERE customer_id = NEW.id;
        END
        """,
        "DROP TRIGGER customer_copy_created_at_to_tags",
    ),
    (
        """
        UPDATE customers_customer_tags SET created_at = (
            SELECT created_at FROM customers_customer
            WHERE customers_customer.id = customers_customer_tags.customer_id
        )
        """,
        "",
    ),
]


def _statements(schema_editor) -> list[tuple[str, str]]:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        return _POSTGRESQL
    if vendor == "sqlite":
        return _SQLITE
    raise NotImplementedError(f"customer tag triggers for {vendor}")


def forwards(apps, schema_editor):
    for forward, _backward in _statements(schema_editor):
        schema_editor.execute(forward)


def backwards(apps, schema_editor):
    for _forward, backward in reversed(_statements(schema_editor)):
        if backward:
            schema_editor.execute(backward)


class Migration(migrations.Migration):
    dependencies = [("customers", "0008_drop_pattern_ops_indexes")]

    operations = [
        migrations.AddField(
            model_name="customertag",
            name="created_at",
            field=models.DateTimeField(
                editable=False, null=True, verbose_name="customer created at"
            ),
        ),
        # The old index goes first: the backfill rewrites every row.
        migrations.RemoveIndex(model_name="customertag", name="customer_tag_members_idx"),
        migrations.RunPython(forwards, backwards),
        migrations.AddIndex(
            model_name="customertag",
            index=models.Index(
                fields=["tag", "-created_at", "-customer"], name="customer_tag_recent_idx"
            ),
        ),
    ]
