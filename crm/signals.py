from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver

from crm.models import UserProfile


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="crm.create_profile")
def create_profile(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        UserProfile.objects.get_or_create(user=instance)
