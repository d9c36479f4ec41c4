"""Factories of the campaigns tests: consenting customers, a segment of them, a campaign."""

from __future__ import annotations

import factory

from campaigns.models import Campaign, Variant
from customers.consent import record_consent
from customers.models import ConsentSource
from segments.membership import create_segment
from segments.models import Segment, SegmentKind
from tests.customers.factories import CustomerFactory

# Every customer in Tokyo: the default of CustomerFactory.
EVERYONE = {"op": "and", "conditions": [{"field": "prefecture", "op": "in", "value": ["13"]}]}


def subscriber(**fields):
    """A customer in Tokyo with e-mail consent given and recorded."""
    customer = CustomerFactory(**fields)
    record_consent(customer=customer, opted_in=True, source=ConsentSource.WEB_FORM, form="signup")
    return customer


def everyone_segment(name: str = "everyone"):
    existing = Segment.objects.filter(name=name).first()
    return existing or create_segment(
        name=name, description="", kind=SegmentKind.DYNAMIC, rules=EVERYONE
    )


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign

    name = factory.Sequence(lambda n: f"秋のセール {n}")
    segment = factory.LazyFunction(everyone_segment)
    coupon_code = "AUTUMN10"


class VariantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Variant

    campaign = factory.SubFactory(CampaignFactory)
    label = "A"
    subject = "{{ family_name }}様、秋のセールのお知らせ"
    html_body = (
        "<html><body><p>{{ full_name }}様</p>"
        '<p><a href="https://shop.example.jp/sale?from=mail&amp;x=1">セール会場へ</a></p>'
        "<p>クーポン: {{ coupon_code }}</p></body></html>"
    )
    text_body = "{{ full_name }}様\nセール会場: https://shop.example.jp/sale?from=mail&x=1\n"
    weight = 100
