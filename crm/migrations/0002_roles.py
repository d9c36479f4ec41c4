"""Create the Admin, Marketer and Sales groups with their permissions (see crm.roles)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations ran; create them now so the
    # groups get theirs in this migration.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    from crm.roles import sync_roles

    sync_roles(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"))


def remove_roles(apps, schema_editor):
    from crm.roles import Role

    apps.get_model("auth", "Group").objects.filter(name__in=[r.value for r in Role]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("authtoken", "0004_alter_tokenproxy_options"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
