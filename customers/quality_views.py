"""Pages for data quality (fill rates, usable shares, duplicates and merging) and for a
customer's personal data requests (export, erasure)."""

from __future__ import annotations

import json

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_http_methods

from crm.access import permission_required
from customers.merging import check_mergeable, merge_customers, preview_merge
from customers.models import Customer
from customers.privacy import disclose_customer_data, erase_customer
from customers.quality import (
    GROUPS_PER_PAGE,
    attach_customers,
    latest_duplicate_groups,
    latest_summary,
    with_purchase_stats,
)


class MergeForm(forms.Form):
    keep = forms.ModelChoiceField(
        queryset=Customer.objects.none(), label=gettext_lazy("record to keep")
    )
    merge = forms.ModelMultipleChoiceField(
        queryset=Customer.objects.none(), label=gettext_lazy("records to merge into it")
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        visible = Customer.objects.visible_to(user)
        self.fields["keep"].queryset = visible
        self.fields["merge"].queryset = visible

    def clean(self):
        cleaned = super().clean()
        keep, merge = cleaned.get("keep"), cleaned.get("merge")
        if keep is not None and merge is not None:
            # The list page offers every record of the group; the one kept is not merged.
            cleaned["merge"] = [customer for customer in merge if customer.pk != keep.pk]
            check_mergeable(keep=keep, duplicates=cleaned["merge"])
        return cleaned


class EraseForm(forms.Form):
    confirm = forms.BooleanField(
        label=gettext_lazy("I understand that the personal data cannot be restored."),
        required=True,
    )


@permission_required("customers.view_customer")
@require_http_methods(["GET", "POST"])
def quality(request):
    customers = Customer.objects.visible_to(request.user)
    if request.method == "POST":  # "Recompute now"
        latest_summary(customers, refresh=True)
        return redirect(request.path)
    summary, computed_at = latest_summary(customers)
    return render(
        request,
        "customers/quality/summary.html",
        {"summary": summary, "computed_at": computed_at},
    )


@permission_required("customers.view_customer")
@require_http_methods(["GET", "POST"])
def duplicates(request):
    customers = Customer.objects.visible_to(request.user)
    if request.method == "POST":  # "Recompute now"
        latest_duplicate_groups(customers, refresh=True)
        return redirect(request.path)
    groups, computed_at = latest_duplicate_groups(customers)
    page = Paginator(groups, GROUPS_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "customers/quality/duplicates.html",
        {
            "page_obj": page,
            "paginator": page.paginator,
            "is_paginated": page.has_other_pages(),
            "groups": attach_customers(page.object_list, customers),
            "computed_at": computed_at,
            "can_merge": request.user.has_perm("customers.merge_customer"),
        },
    )


@permission_required("customers.merge_customer")
@require_http_methods(["GET", "POST"])
def merge(request):
    form = MergeForm(request.POST if request.method == "POST" else request.GET, user=request.user)
    if not form.is_valid():
        return render(request, "customers/quality/merge.html", {"form": form}, status=400)
    keep, others = form.cleaned_data["keep"], form.cleaned_data["merge"]
    if request.method == "GET":
        customers = with_purchase_stats(
            Customer.objects.visible_to(request.user).filter(
                pk__in=[keep.pk, *(c.pk for c in others)]
            )
        ).in_bulk()
        context = {
            "form": form,
            "keep": customers[keep.pk],
            "others": [customers[c.pk] for c in others],
            "preview": preview_merge(keep=keep, duplicates=others),
        }
        return render(request, "customers/quality/merge.html", context)
    try:
        merge_customers(keep=keep, duplicates=others, by=request.user)
    except ValidationError as error:
        form.add_error(None, error)
        return render(request, "customers/quality/merge.html", {"form": form}, status=400)
    messages.success(
        request,
        ngettext(
            "%(count)d record merged into %(name)s.",
            "%(count)d records merged into %(name)s.",
            len(others),
        )
        % {"count": len(others), "name": keep.display_name},
    )
    return redirect("customers:quality-duplicates")


@permission_required("customers.export_customer_data")
@require_http_methods(["GET"])
def export_data(request, pk: int):
    customer = get_object_or_404(Customer.objects.visible_to(request.user), pk=pk)
    data = disclose_customer_data(customer=customer, by=request.user)
    response = HttpResponse(
        json.dumps(data, ensure_ascii=False, indent=2), content_type="application/json"
    )
    response["Content-Disposition"] = f'attachment; filename="customer-{pk}-personal-data.json"'
    return response


@permission_required("customers.erase_customer")
@require_http_methods(["GET", "POST"])
def erase(request, pk: int):
    customer = get_object_or_404(Customer.objects.visible_to(request.user), pk=pk)
    form = EraseForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        erase_customer(customer=customer, by=request.user)
        messages.success(request, _("The customer's personal data was erased."))
        return redirect("customers:detail", customer.pk)
    status = 400 if request.method == "POST" else 200
    return render(
        request, "customers/quality/erase.html", {"customer": customer, "form": form}, status=status
    )
