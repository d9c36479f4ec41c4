"""Property (hypothesis): over random audiences and unsubscribes during the send, nobody
without recorded consent, with an invalid or shared-and-already-served address, suppressed,
erased or unsubscribed is sent marketing mail. An unsubscribe takes effect before the next
group of messages (CAMPAIGN_FLUSH_EVERY) is handed to the server."""

from __future__ import annotations

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigns.audience import freeze_audience
from campaigns.models import Campaign, Message, SuppressionReason
from campaigns.rendering import store_links
from campaigns.sending import send_pending
from campaigns.suppression import suppress
from customers.consent import record_consent
from customers.models import ConsentSource, Customer, ErasureLog
from customers.privacy import erase_customer
from tests.campaigns.factories import VariantFactory
from tests.campaigns.test_sending import server  # noqa: F401 - the SMTP server fixture
from tests.customers.factories import CustomerFactory

GROUP = 5  # CAMPAIGN_FLUSH_EVERY in the server fixture

person = st.fixed_dictionaries(
    {
        "consent": st.sampled_from(["none", "flag_only", "recorded", "withdrawn"]),
        "address": st.sampled_from(["own", "own", "invalid", "empty", "shared"]),
        "suppressed": st.booleans(),
        "erased": st.booleans(),
        "unsubscribe_at": st.none() | st.integers(min_value=1, max_value=12),
    }
)


def make(index: int, spec: dict, admin) -> Customer:
    email = {
        "own": f"p{index}@example.jp",
        "invalid": f"p{index}@@example",
        "empty": "",
        "shared": "shared@example.jp",
    }[spec["address"]]
    customer = CustomerFactory(email=email)
    if spec["consent"] in ("recorded", "withdrawn"):
        record_consent(customer=customer, opted_in=True, source=ConsentSource.WEB_FORM)
    if spec["consent"] == "withdrawn":
        record_consent(customer=customer, opted_in=False, source=ConsentSource.STAFF)
    if spec["consent"] == "flag_only":
        Customer.objects.filter(pk=customer.pk).update(
            email_opt_in=True, email_opt_in_at=customer.created_at
        )
    if spec["suppressed"] and email:
        suppress(email=email, reason=SuppressionReason.HARD_BOUNCE)
    if spec["erased"]:
        with transaction.atomic():  # as the erasure page calls it
            erase_customer(customer=customer, by=admin)
    customer.refresh_from_db()
    return customer


def eligible_before_send(spec: dict) -> bool:
    return (
        spec["consent"] == "recorded"
        and spec["address"] in ("own", "shared")
        and not spec["suppressed"]
        and not spec["erased"]
    )


@pytest.mark.django_db(transaction=True)
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(people=st.lists(person, min_size=1, max_size=14))
def test_nobody_who_may_not_get_marketing_mail_gets_it(server, admin_member, people):  # noqa: F811
    Message.objects.all().delete()
    Campaign.objects.all().delete()
    ErasureLog.objects.all().delete()
    Customer.objects.all().delete()
    server.messages.clear()

    customers = [make(i, spec, admin_member) for i, spec in enumerate(people)]
    by_address: dict[str, list[int]] = {}
    for i, customer in enumerate(customers):
        by_address.setdefault(customer.email, []).append(i)
    unsubscribed_at: dict[int, int] = {}

    def events(count: int) -> None:
        for i, spec in enumerate(people):
            if spec["unsubscribe_at"] == count and customers[i].email:
                customer = Customer.objects.get(pk=customers[i].pk)
                record_consent(customer=customer, opted_in=False, source=ConsentSource.UNSUBSCRIBE)
                suppress(email=customer.email, reason=SuppressionReason.UNSUBSCRIBED)
                unsubscribed_at[i] = count

    server.on_message = events
    campaign = VariantFactory().campaign
    store_links(campaign=campaign)
    freeze_audience(campaign=campaign)
    send_pending(campaign_id=campaign.pk)

    received = server.received_to()
    assert len(received) == len(set(received))  # one message per address
    for position, address in enumerate(received, start=1):
        senders = [i for i in by_address[address] if eligible_before_send(people[i])]
        assert senders, f"{address} was not eligible"
        # Anyone with the address unsubscribing suppresses it: after that, at most the rest
        # of the group in flight reaches the server.
        moments = [unsubscribed_at[i] for i in by_address[address] if i in unsubscribed_at]
        if moments:
            assert position <= min(moments) + GROUP
