"""Customer.tags gets an explicit through model, CustomerTag, on the table Django created for
it, so that the table can carry the index the tag filter needs: (tag, customer), a tag's
members in one index-only range scan. The separate tag_id and customer_id indexes go: the new
index and the unique (customer, tag) constraint lead with those columns."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("customers", "0006_search_text_statistics")]

    operations = [
        # The table as Django created it for the ManyToManyField: state only, no SQL.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="CustomerTag",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "customer",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                to="customers.customer",
                            ),
                        ),
                        (
                            "tag",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                to="customers.tag",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "customers_customer_tags",
                        "unique_together": {("customer", "tag")},
                    },
                ),
                migrations.AlterField(
                    model_name="customer",
                    name="tags",
                    field=models.ManyToManyField(
                        blank=True,
                        related_name="customers",
                        through="customers.CustomerTag",
                        to="customers.tag",
                        verbose_name="tags",
                    ),
                ),
            ],
        ),
        migrations.AlterModelOptions(
            name="customertag",
            options={"verbose_name": "customer tag", "verbose_name_plural": "customer tags"},
        ),
        migrations.AddIndex(
            model_name="customertag",
            index=models.Index(fields=["tag", "customer"], name="customer_tag_members_idx"),
        ),
        migrations.AddConstraint(
            model_name="customertag",
            constraint=models.UniqueConstraint(
                fields=("customer", "tag"), name="customer_tag_unique"
            ),
        ),
        migrations.AlterUniqueTogether(name="customertag", unique_together=set()),
        migrations.AlterField(
            model_name="customertag",
            name="customer",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                to="customers.customer",
                verbose_name="customer",
            ),
        ),
        migrations.AlterField(
            model_name="customertag",
            name="tag",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                to="customers.tag",
                verbose_name="tag",
            ),
        ),
    ]
