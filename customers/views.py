"""Pages for sales staff: the customer list and its export, the Customer 360, the profile
forms, interactions and the ticket queue. Each view checks access, validates input, calls one
function (customers.selectors for reads; profiles, ticketing, interactions for writes) and
responds."""

from __future__ import annotations

from operator import attrgetter

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from crm.access import has_permissions, permission_required
from crm.exporting import FORMATS, Column, export_response
from crm.names import user_display_name
from customers import selectors
from customers.forms import (
    AssignForm,
    CustomerFilterForm,
    CustomerForm,
    InteractionForm,
    ReplyForm,
    TicketForm,
    TicketStatusForm,
)
from customers.interactions import log_interaction
from customers.models import Customer, Gender, SourceChannel
from customers.prefectures import Prefecture
from customers.profiles import create_customer, update_customer
from customers.ticketing import (
    TransitionNotAllowed,
    add_ticket_reply,
    allowed_statuses,
    assign_ticket,
    change_ticket_status,
    open_ticket,
)

VIEW_CUSTOMER = "customers.view_customer"


def _is_partial(request) -> bool:
    """An htmx request for a fragment (a history restore needs the whole page)."""
    return bool(request.htmx) and not request.htmx.history_restore_request


# --- Customer list and export -----------------------------------------------------------------


@require_GET
@permission_required(VIEW_CUSTOMER)
def customer_list(request):
    form = CustomerFilterForm(request.GET)
    form.is_valid()  # invalid filters show their error; the valid ones still apply
    customers = selectors.customers_for_list(user=request.user, **form.filters())
    page = selectors.keyset_page(
        selectors.list_page_rows(customers),
        after=selectors.Cursor.parse(request.GET.get("after", "")),
        before=selectors.Cursor.parse(request.GET.get("before", "")),
    )
    context = {"form": form, "page": page, "customers": selectors.with_labels(page.object_list)}
    template = "customers/_customer_results.html" if _is_partial(request) else "customers/list.html"
    return render(request, template, context)


def customer_export_columns() -> list[Column]:
    """The export's columns, labelled in the active language.

    Choice labels are translated once here rather than through ``get_FOO_display()`` per
    row, which would translate every choice of the field for each of a million rows.
    """
    genders = {value: str(label) for value, label in Gender.choices}
    prefectures = {value: str(label) for value, label in Prefecture.choices}
    channels = {value: str(label) for value, label in SourceChannel.choices}
    consent = {True: _("yes"), False: _("no")}
    return [
        Column(_("external ID"), attrgetter("external_id")),
        Column(_("family name"), attrgetter("family_name")),
        Column(_("given name"), attrgetter("given_name")),
        Column(_("family name (kana)"), attrgetter("family_name_kana")),
        Column(_("given name (kana)"), attrgetter("given_name_kana")),
        Column(_("e-mail"), attrgetter("email")),
        Column(_("phone"), attrgetter("phone")),
        Column(_("birthday"), attrgetter("birthday")),
        Column(_("gender"), lambda c: genders.get(c.gender, "")),
        Column(_("postal code"), attrgetter("postal_code")),
        Column(_("prefecture"), lambda c: prefectures.get(c.prefecture, "")),
        Column(_("address"), attrgetter("address")),
        Column(_("source channel"), lambda c: channels.get(c.channel, "")),
        Column(_("e-mail consent"), lambda c: consent[c.email_opt_in]),
        Column(_("consent changed at"), attrgetter("email_opt_in_at")),
        Column(_("owner"), lambda c: user_display_name(c.owner) if c.owner else ""),
        Column(_("tags"), lambda c: ", ".join(c.tag_names)),
        Column(_("created at"), attrgetter("created_at")),
    ]


@require_GET
@permission_required(VIEW_CUSTOMER)
def customer_export(request):
    """Every customer matching the list's filters, as CSV or Excel, streamed."""
    fmt = request.GET.get("format", "csv")
    if fmt not in FORMATS:
        messages.error(request, _("Choose CSV or Excel to export."))
        return redirect(reverse("customers:list") + "?" + request.GET.urlencode())
    form = CustomerFilterForm(request.GET)
    form.is_valid()
    customers = selectors.customers_for_list(user=request.user, **form.filters())
    rows = selectors.export_rows(customers)
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    return export_response(
        fmt,
        columns=customer_export_columns(),
        objects=rows,
        filename=f"customers-{stamp}",
        sheet_title=_("Customers"),
    )


# --- Customer 360 -----------------------------------------------------------------------------


def _customer_or_404(request, pk: int) -> Customer:
    return get_object_or_404(selectors.customer_for_360(user=request.user), pk=pk)


def _interactions_context(request, customer: Customer, form: InteractionForm | None = None):
    user = request.user
    context = {"customer": customer, "interactions": [], "interaction_form": None}
    if user.has_perm("customers.view_interaction"):
        context["interactions"], context["more_interactions"] = selectors.first_rows(
            selectors.interactions_of(customer), selectors.RECENT_INTERACTIONS
        )
    if user.has_perm("customers.add_interaction"):
        context["interaction_form"] = form or InteractionForm()
    return context


def _customer_360(request, customer: Customer, *, interaction_form=None):
    user = request.user
    context = _interactions_context(request, customer, interaction_form)
    if user.has_perm("customers.view_purchase"):
        context["kpis"] = selectors.purchase_kpis(customer)
        context["purchases"] = Paginator(
            selectors.purchase_timeline(customer), selectors.TIMELINE_PAGE_SIZE
        ).get_page(request.GET.get("page"))
    if user.has_perm("customers.view_supportticket"):
        context["tickets"], context["more_tickets"] = selectors.first_rows(
            selectors.tickets_of(customer), selectors.RECENT_TICKETS
        )
    return render(request, "customers/detail.html", context)


@require_GET
@permission_required(VIEW_CUSTOMER)
def customer_detail(request, pk: int):
    return _customer_360(request, _customer_or_404(request, pk))


@require_http_methods(["GET", "HEAD", "POST"])
@permission_required(VIEW_CUSTOMER, "customers.view_interaction")
def customer_interactions(request, pk: int):
    """GET: every interaction with the customer. POST: log one (from the 360 page; with htmx
    only the interactions section comes back)."""
    customer = _customer_or_404(request, pk)
    if request.method != "POST":
        page_obj = Paginator(selectors.interactions_of(customer), 25).get_page(
            request.GET.get("page")
        )
        return render(
            request,
            "customers/interactions.html",
            {
                "customer": customer,
                "page_obj": page_obj,
                "paginator": page_obj.paginator,
                "is_paginated": page_obj.has_other_pages(),
            },
        )
    if not has_permissions(request.user, ["customers.add_interaction"]):
        raise PermissionDenied
    form = InteractionForm(request.POST)
    if not form.is_valid():
        if _is_partial(request):
            context = _interactions_context(request, customer, form)
            return render(request, "customers/_interactions.html", context)
        return _customer_360(request, customer, interaction_form=form)
    log_interaction(customer=customer, by=request.user, **form.cleaned_data)
    if _is_partial(request):
        context = {**_interactions_context(request, customer), "logged": True}
        return render(request, "customers/_interactions.html", context)
    messages.success(request, _("The interaction was logged."))
    return redirect(reverse("customers:detail", args=[customer.pk]) + "#interactions")


# --- Create and edit --------------------------------------------------------------------------


@require_http_methods(["GET", "HEAD", "POST"])
@permission_required(VIEW_CUSTOMER, "customers.add_customer")
def customer_create(request):
    form = CustomerForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        customer = create_customer(by=request.user, **form.service_arguments())
        messages.success(
            request, _("Customer %(name)s was created.") % {"name": customer.display_name}
        )
        return redirect("customers:detail", pk=customer.pk)
    return render(request, "customers/form.html", {"form": form, "customer": None})


@require_http_methods(["GET", "HEAD", "POST"])
@permission_required(VIEW_CUSTOMER, "customers.change_customer")
def customer_edit(request, pk: int):
    customer = _customer_or_404(request, pk)
    if customer.is_erased:
        messages.error(request, _("This customer's personal data was erased; it cannot be edited."))
        return redirect("customers:detail", pk=customer.pk)
    # Validating a ModelForm writes the typed values onto its instance: the page keeps
    # showing the saved name while the form has errors.
    saved_name = customer.display_name
    form = CustomerForm(request.POST or None, instance=customer)
    if request.method == "POST" and form.is_valid():
        update_customer(customer=customer, by=request.user, **form.service_arguments())
        messages.success(
            request, _("Customer %(name)s was saved.") % {"name": customer.display_name}
        )
        return redirect("customers:detail", pk=customer.pk)
    context = {"form": form, "customer": customer, "name": saved_name}
    return render(request, "customers/form.html", context)


# --- Tickets ----------------------------------------------------------------------------------

VIEW_TICKET = "customers.view_supportticket"
CHANGE_TICKET = "customers.change_supportticket"


@require_GET
@permission_required(VIEW_TICKET)
def ticket_queue(request):
    tab = request.GET.get("tab", "mine")
    if tab not in selectors.TICKET_TAB_KEYS:
        tab = "mine"
    customer = None
    if request.GET.get("customer", "").isdigit():
        customer = get_object_or_404(
            Customer.objects.visible_to(request.user), pk=int(request.GET["customer"])
        )
    customer_id = customer.pk if customer else None
    tickets = selectors.ticket_queue(user=request.user, tab=tab, customer_id=customer_id)
    page_obj = Paginator(tickets, selectors.TICKET_PAGE_SIZE).get_page(request.GET.get("page"))
    counts = selectors.ticket_tab_counts(user=request.user, customer_id=customer_id)
    tabs = [
        {"key": t.key, "label": t.label, "help": t.help, "count": counts[t.key]}
        for t in selectors.TICKET_TABS
    ]
    context = {
        "tab": next(t for t in tabs if t["key"] == tab),
        "tabs": tabs,
        "customer": customer,
        "tickets": page_obj.object_list,
        "page_obj": page_obj,
        "paginator": page_obj.paginator,
        "is_paginated": page_obj.has_other_pages(),
    }
    return render(request, "customers/ticket_list.html", context)


def _ticket_or_404(request, pk: int):
    return get_object_or_404(selectors.ticket_for_detail(user=request.user), pk=pk)


def _ticket_page(request, ticket, *, reply_form=None, assign_form=None, status=200):
    user = request.user
    context = {
        "ticket": ticket,
        "replies": ticket.replies.select_related("author"),
        "reply_form": None,
        "assign_form": None,
        "next_statuses": [],
    }
    if user.has_perm("customers.add_ticketreply"):
        context["reply_form"] = reply_form or ReplyForm()
    if has_permissions(user, [CHANGE_TICKET]):
        context["assign_form"] = assign_form or AssignForm(initial={"assignee": ticket.assignee})
        labels = dict(ticket._meta.get_field("status").choices)
        context["next_statuses"] = [(s, labels[s]) for s in allowed_statuses(ticket)]
    return render(request, "customers/ticket_detail.html", context, status=status)


@require_GET
@permission_required(VIEW_TICKET)
def ticket_detail(request, pk: int):
    return _ticket_page(request, _ticket_or_404(request, pk))


@require_http_methods(["GET", "HEAD", "POST"])
@permission_required(VIEW_TICKET, "customers.add_supportticket")
def ticket_create(request):
    initial = {}
    if request.GET.get("customer", "").isdigit():
        initial["customer"] = int(request.GET["customer"])
    form = TicketForm(request.POST or None, initial=initial, user=request.user)
    if request.method == "POST" and form.is_valid():
        ticket = open_ticket(by=request.user, **form.cleaned_data)
        messages.success(request, _("The ticket was opened."))
        return redirect("customers:ticket-detail", pk=ticket.pk)
    customer = form.cleaned_data.get("customer") if form.is_bound else None
    if customer is None and "customer" in initial:
        customer = Customer.objects.visible_to(request.user).filter(pk=initial["customer"]).first()
    return render(request, "customers/ticket_form.html", {"form": form, "customer": customer})


@require_POST
@permission_required(VIEW_TICKET, "customers.add_ticketreply")
def ticket_reply(request, pk: int):
    ticket = _ticket_or_404(request, pk)
    form = ReplyForm(request.POST)
    if not form.is_valid():
        return _ticket_page(request, ticket, reply_form=form)
    reply = add_ticket_reply(ticket=ticket, by=request.user, **form.cleaned_data)
    messages.success(
        request, _("The internal note was added.") if reply.internal else _("The reply was added.")
    )
    return redirect(reverse("customers:ticket-detail", args=[ticket.pk]) + "#thread")


@require_POST
@permission_required(VIEW_TICKET, CHANGE_TICKET)
def ticket_status(request, pk: int):
    ticket = _ticket_or_404(request, pk)
    form = TicketStatusForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose a status."))
        return redirect("customers:ticket-detail", pk=ticket.pk)
    try:
        ticket = change_ticket_status(
            ticket=ticket, status=form.cleaned_data["status"], by=request.user
        )
    except TransitionNotAllowed as refusal:
        messages.error(request, str(refusal))
    else:
        messages.success(
            request,
            _("The ticket is now %(status)s.") % {"status": ticket.get_status_display()},
        )
    return redirect("customers:ticket-detail", pk=ticket.pk)


@require_POST
@permission_required(VIEW_TICKET, CHANGE_TICKET)
def ticket_assign(request, pk: int):
    ticket = _ticket_or_404(request, pk)
    if "to_me" in request.POST:
        assignee = request.user
    else:
        form = AssignForm(request.POST)
        if not form.is_valid():
            return _ticket_page(request, ticket, assign_form=form)
        assignee = form.cleaned_data["assignee"]
    assign_ticket(ticket=ticket, assignee=assignee, by=request.user)
    if assignee is None:
        messages.success(request, _("The ticket is unassigned."))
    else:
        messages.success(
            request,
            _("The ticket is assigned to %(name)s.") % {"name": user_display_name(assignee)},
        )
    return redirect("customers:ticket-detail", pk=ticket.pk)
