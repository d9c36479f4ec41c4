from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


def _time_zone_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in sorted(zoneinfo.available_timezones())]


class UserProfile(models.Model):
    """Per-user preferences: the language and time zone the app shows this user."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="profile",
        verbose_name=_("user"),
    )
    language = models.CharField(
        _("language"),
        max_length=8,
        choices=settings.LANGUAGES,
        blank=True,
        help_text=_("Empty: follow the browser."),
    )
    time_zone = models.CharField(
        _("time zone"),
        max_length=64,
        choices=_time_zone_choices,
        blank=True,
        help_text=_("Empty: the organisation's time zone."),
    )

    class Meta:
        verbose_name = _("user profile")
        verbose_name_plural = _("user profiles")

    def __str__(self) -> str:
        return str(self.user)


class OutboxEmailQuerySet(models.QuerySet):
    def visible_to(self, user) -> OutboxEmailQuerySet:
        if user.has_perm("crm.view_outboxemail"):
            return self
        return self.none()


class OutboxEmail(models.Model):
    """An e-mail the embedded outbox backend captured instead of sending it."""

    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)
    from_email = models.CharField(_("from"), max_length=320)
    to = models.TextField(_("to"), help_text=_("Recipients, comma-separated."))
    cc = models.TextField(_("cc"), blank=True)
    bcc = models.TextField(_("bcc"), blank=True)
    subject = models.CharField(_("subject"), max_length=998)
    body = models.TextField(_("plain-text body"), blank=True)
    html_body = models.TextField(_("HTML body"), blank=True)
    headers = models.JSONField(_("headers"), default=dict, blank=True)

    objects = OutboxEmailQuerySet.as_manager()

    class Meta:
        verbose_name = _("outbox e-mail")
        verbose_name_plural = _("outbox e-mails")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["-created_at", "-id"], name="outbox_recent_idx")]

    def __str__(self) -> str:
        return self.subject


class Heartbeat(models.Model):
    """Last time a periodic task ran through beat, the broker and a worker."""

    name = models.CharField(_("name"), max_length=64, primary_key=True)
    last_seen = models.DateTimeField(_("last seen"))

    class Meta:
        verbose_name = _("heartbeat")
        verbose_name_plural = _("heartbeats")

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_seen:%Y-%m-%d %H:%M:%S}"

    @classmethod
    def beat(cls, name: str) -> None:
        cls.objects.update_or_create(name=name, defaults={"last_seen": timezone.now()})
