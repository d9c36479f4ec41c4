"""E-mail through a real SMTP server (aiosmtpd), and the embedded outbox."""

from __future__ import annotations

import email
import email.policy

import pytest
from django.core.mail import EmailMultiAlternatives

from crm.models import OutboxEmail
from tests.crm.test_auth import post_form


@pytest.mark.smtp
@pytest.mark.django_db
def test_password_reset_mail_reaches_the_smtp_server(csrf_client, sales, smtp_server, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = smtp_server.hostname
    settings.EMAIL_PORT = smtp_server.port
    settings.EMAIL_USE_TLS = False

    response = post_form(
        csrf_client, "/accounts/password_reset/", {"email": sales.email}, HTTP_ACCEPT_LANGUAGE="ja"
    )

    assert response.status_code == 302
    [envelope] = smtp_server.messages
    assert envelope.rcpt_tos == [sales.email]
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert "パスワード" in message["Subject"]  # Japanese subject, MIME-encoded on the wire
    assert "/accounts/reset/" in message.get_content()


@pytest.mark.django_db
def test_outbox_backend_keeps_both_parts(settings):
    settings.EMAIL_BACKEND = "crm.mail.OutboxBackend"
    message = EmailMultiAlternatives(
        "ご購入ありがとうございます",
        "テキスト本文",
        "shop@example.com",
        ["山田 <yamada@example.com>"],
    )
    message.attach_alternative("<p>HTML本文</p>", "text/html")
    assert message.send() == 1
    stored = OutboxEmail.objects.get()
    assert stored.to == "山田 <yamada@example.com>"
    assert stored.body == "テキスト本文"
    assert stored.html_body == "<p>HTML本文</p>"


@pytest.mark.django_db
def test_outbox_html_is_sandboxed(client_as, marketer):
    stored = OutboxEmail.objects.create(
        from_email="a@example.com", to="b@example.com", subject="s", html_body="<script>x</script>"
    )
    response = client_as(marketer).get(f"/outbox/{stored.pk}/html/")
    assert response.status_code == 200
    assert response["Content-Security-Policy"].startswith("sandbox")
