from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


def _sync_roles_after_migrate(sender, **kwargs):
    # Django creates each app's permissions in its own post_migrate call (only apps with
    # models get one); once the last app's are there, give the roles whatever new models
    # their patterns cover ("customers.*"). Also runs after a test flush, which empties them.
    from django.apps import apps
    from django.contrib.auth.models import Group, Permission

    from crm.roles import sync_roles

    with_models = [config for config in apps.get_app_configs() if config.models_module]
    if sender is with_models[-1]:
        sync_roles(Group, Permission)


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = _("CRM system")

    def ready(self) -> None:
        from crm import signals  # noqa: F401  (connects the profile signal)

        post_migrate.connect(_sync_roles_after_migrate, dispatch_uid="crm.sync_roles")
