from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = _("Campaigns")

    def ready(self) -> None:
        from campaigns.erasure import erase_campaign_copies
        from customers.privacy import customer_erased

        customer_erased.connect(erase_campaign_copies, dispatch_uid="campaigns-erasure")
