"""The support ticket workflow: open, assign, reply, move through the statuses.

A ticket goes open → pending (waiting for the customer) → resolved → closed; it can be
resolved straight from open, go back from pending to open when the customer answers, and be
reopened once resolved or closed. Every change is saved through the model so that
django-simple-history records who did what (shown to admins in the Django admin).
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from customers.models import (
    TICKET_RESPONSE_TIME,
    ContactChannel,
    Customer,
    SupportTicket,
    TicketPriority,
    TicketReply,
    TicketStatus,
)

ALLOWED_TRANSITIONS: dict[str, tuple[str, ...]] = {
    TicketStatus.OPEN: (TicketStatus.PENDING, TicketStatus.RESOLVED),
    TicketStatus.PENDING: (TicketStatus.OPEN, TicketStatus.RESOLVED),
    TicketStatus.RESOLVED: (TicketStatus.CLOSED, TicketStatus.OPEN),
    TicketStatus.CLOSED: (TicketStatus.OPEN,),
}
_DONE = (TicketStatus.RESOLVED, TicketStatus.CLOSED)


class TransitionNotAllowed(ValueError):
    """The ticket cannot go to that status from the one it is in now."""


def allowed_statuses(ticket: SupportTicket) -> tuple[str, ...]:
    return ALLOWED_TRANSITIONS.get(ticket.status, ())


@transaction.atomic
def open_ticket(
    *,
    customer: Customer,
    subject: str,
    body: str = "",
    channel: str = ContactChannel.EMAIL,
    priority: str = TicketPriority.NORMAL,
    assignee=None,
    due_at: datetime | None = None,
    by=None,
) -> SupportTicket:
    """A new open ticket; without ``due_at`` it is due within its priority's response time."""
    ticket = SupportTicket(
        customer=customer,
        subject=subject,
        body=body,
        channel=channel,
        priority=priority,
        assignee=assignee,
        due_at=due_at,
    )
    ticket._history_user = by
    ticket.save()
    return ticket


@transaction.atomic
def change_ticket_status(*, ticket: SupportTicket, status: str, by=None) -> SupportTicket:
    """Move ``ticket`` to ``status`` if the workflow allows it from its current status.

    The row is locked and re-read first, so two people clicking at once cannot both apply a
    transition that was only valid from the status the first one left.
    """
    current = SupportTicket.objects.select_for_update().get(pk=ticket.pk)
    if status not in allowed_statuses(current):
        raise TransitionNotAllowed(
            _("A ticket that is %(current)s cannot become %(status)s.")
            % {
                "current": current.get_status_display(),
                "status": dict(TicketStatus.choices).get(status, status),
            }
        )
    now = timezone.now()
    reopened = current.status in _DONE and status not in _DONE
    current.status = status
    fields = ["status"]
    if status == TicketStatus.RESOLVED or (
        status == TicketStatus.CLOSED and not current.resolved_at
    ):
        current.resolved_at = now
        fields.append("resolved_at")
    elif reopened:
        current.resolved_at = None
        # A reopened ticket needs an answer again: it gets a fresh deadline rather than
        # counting as overdue since the day it was first due.
        current.due_at = now + TICKET_RESPONSE_TIME[TicketPriority(current.priority)]
        fields += ["resolved_at", "due_at"]
    current._history_user = by
    current.save(update_fields=fields)
    return current


@transaction.atomic
def assign_ticket(*, ticket: SupportTicket, assignee, by=None) -> SupportTicket:
    """Give ``ticket`` to ``assignee`` (``None``: back to the unassigned queue)."""
    ticket.assignee = assignee
    ticket._history_user = by
    ticket.save(update_fields=["assignee"])
    return ticket


@transaction.atomic
def add_ticket_reply(
    *, ticket: SupportTicket, body: str, internal: bool = False, by=None
) -> TicketReply:
    """A reply to the customer, or with ``internal`` a note for colleagues only."""
    return TicketReply.objects.create(
        ticket=ticket,
        body=body,
        internal=internal,
        author=by if by is not None and by.is_authenticated else None,
    )
