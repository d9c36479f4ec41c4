"""The embedded e-mail backend: messages go to the outbox table the app shows."""

from __future__ import annotations

from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage


def _html_alternative(message: EmailMessage) -> str:
    for content, mimetype in getattr(message, "alternatives", []):
        if mimetype == "text/html":
            return content
    return ""


class OutboxBackend(BaseEmailBackend):
    def send_messages(self, email_messages) -> int:
        from crm.models import OutboxEmail

        rows = [
            OutboxEmail(
                from_email=message.from_email,
                to=", ".join(message.to),
                cc=", ".join(message.cc),
                bcc=", ".join(message.bcc),
                subject=message.subject,
                body=message.body,
                html_body=_html_alternative(message),
                headers={k: str(v) for k, v in message.extra_headers.items()},
            )
            for message in email_messages
            if message.recipients()
        ]
        OutboxEmail.objects.bulk_create(rows)
        return len(rows)
