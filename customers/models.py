from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from crm.names import full_name
from customers.normalize import search_key
from customers.prefectures import JAPANESE_NAMES, Prefecture


class Gender(models.TextChoices):
    FEMALE = "female", _("Female")
    MALE = "male", _("Male")
    OTHER = "other", _("Other")
    UNKNOWN = "unknown", _("Prefer not to say")


class SourceChannel(models.TextChoices):
    """Where the customer's data came from (the articles' list of sources)."""

    BUSINESS_CARD = "business_card", _("Business card")
    EVENT = "event", _("Event, webinar or exhibition")
    WHITEPAPER = "whitepaper", _("White-paper download")
    LINE = "line", _("LINE official account")
    NEWSLETTER = "newsletter", _("Newsletter sign-up")
    WEB_SURVEY = "web_survey", _("Web survey")
    MEMBERSHIP = "membership", _("Membership site")
    STORE = "store", _("Store")
    ECOMMERCE = "ecommerce", _("E-commerce")
    OTHER = "other", _("Other")


class ConsentSource(models.TextChoices):
    """How an e-mail consent (or its withdrawal) was given: the legal record."""

    WEB_FORM = "web_form", _("Web form")
    CHECKOUT = "checkout", _("Checkout")
    PAPER = "paper", _("Paper form")
    EVENT = "event", _("At an event")
    VERBAL = "verbal", _("Verbally, recorded by staff")
    IMPORT = "import", _("Imported")
    API = "api", _("Through the API")
    UNSUBSCRIBE = "unsubscribe", _("Unsubscribe link")
    STAFF = "staff", _("Changed by staff")


class Tag(models.Model):
    name = models.CharField(_("name"), max_length=50, unique=True)

    class Meta:
        verbose_name = _("tag")
        verbose_name_plural = _("tags")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CustomerQuerySet(models.QuerySet):
    def visible_to(self, user) -> CustomerQuerySet:
        """Every role that may view customers sees all of them (owners organise, not hide)."""
        if user.has_perm("customers.view_customer"):
            return self
        return self.none()

    def search(self, text: str) -> CustomerQuerySet:
        """Customers whose name, kana, e-mail, phone or external id contains ``text``,
        however it is typed (width, hiragana/katakana, spaces and hyphens are ignored)."""
        key = search_key(text)
        if not key:
            return self
        return self.filter(search_text__contains=key)


class Customer(models.Model):
    external_id = models.CharField(
        _("external ID"),
        max_length=64,
        unique=True,
        help_text=_("The customer's ID in the shop or other system; imports match on it."),
    )
    family_name = models.CharField(_("family name"), max_length=50, blank=True)
    given_name = models.CharField(_("given name"), max_length=50, blank=True)
    family_name_kana = models.CharField(_("family name (kana)"), max_length=50, blank=True)
    given_name_kana = models.CharField(_("given name (kana)"), max_length=50, blank=True)
    email = models.EmailField(_("e-mail"), max_length=254, blank=True)
    phone = models.CharField(_("phone"), max_length=20, blank=True, help_text=_("Digits only."))
    birthday = models.DateField(_("birthday"), null=True, blank=True)
    gender = models.CharField(_("gender"), max_length=10, choices=Gender.choices, blank=True)
    prefecture = models.CharField(
        _("prefecture"), max_length=2, choices=Prefecture.choices, blank=True
    )
    postal_code = models.CharField(_("postal code"), max_length=7, blank=True)
    address = models.CharField(_("address"), max_length=255, blank=True)
    channel = models.CharField(
        _("source channel"), max_length=20, choices=SourceChannel.choices, blank=True
    )
    sns_accounts = models.JSONField(
        _("SNS accounts"),
        default=dict,
        blank=True,
        help_text=_('Service and account, e.g. {"line": "...", "instagram": "@..."}.'),
    )
    tags = models.ManyToManyField(
        Tag,
        verbose_name=_("tags"),
        blank=True,
        related_name="customers",
        through="CustomerTag",
    )
    notes = models.TextField(_("preferences and notes"), blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="owned_customers",
    )
    # Current consent state; every change is also a ConsentRecord (who, when, how, form).
    email_opt_in = models.BooleanField(_("e-mail consent"), default=False)
    email_opt_in_at = models.DateTimeField(_("consent changed at"), null=True, blank=True)
    # Normalised name, kana, e-mail, phone and external id, for search (see normalize.py).
    search_text = models.TextField(editable=False, default="")
    erased_at = models.DateTimeField(_("erased at"), null=True, blank=True, editable=False)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = CustomerQuerySet.as_manager()
    history = HistoricalRecords(excluded_fields=["search_text", "updated_at"])

    class Meta:
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        indexes = [
            models.Index(fields=["prefecture"], name="customer_prefecture_idx"),
            models.Index(fields=["channel"], name="customer_channel_idx"),
            models.Index(fields=["email_opt_in"], name="customer_opt_in_idx"),
            models.Index(fields=["birthday"], name="customer_birthday_idx"),
            models.Index(fields=["-created_at", "-id"], name="customer_recent_idx"),
            models.Index(models.functions.Lower("email"), name="customer_email_lower_idx"),
            models.Index(fields=["phone"], name="customer_phone_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(external_id=""), name="customer_external_id_not_empty"
            ),
            models.CheckConstraint(
                condition=Q(email_opt_in=False) | Q(email_opt_in_at__isnull=False),
                name="customer_opt_in_has_date",
            ),
        ]
        permissions = [
            ("export_customer_data", _("Can export a customer's personal data")),
            ("erase_customer", _("Can erase a customer's personal data")),
            ("merge_customer", _("Can merge duplicate customers")),
        ]

    def __str__(self) -> str:
        return self.display_name

    def save(self, *args, **kwargs):
        self.search_text = self.build_search_text()
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            kwargs["update_fields"] = {*update_fields, "search_text", "updated_at"}
        super().save(*args, **kwargs)

    def build_search_text(self) -> str:
        parts = [
            self.family_name + self.given_name,
            self.family_name_kana + self.given_name_kana,
            self.email,
            self.phone,
            self.external_id,
        ]
        return " ".join(search_key(part) for part in parts if part)

    @property
    def display_name(self) -> str:
        return full_name(self.family_name, self.given_name) or self.external_id

    @property
    def kana_name(self) -> str:
        return f"{self.family_name_kana} {self.given_name_kana}".strip()

    @property
    def prefecture_japanese(self) -> str:
        return JAPANESE_NAMES.get(self.prefecture, "")

    @property
    def is_erased(self) -> bool:
        return self.erased_at is not None


class CustomerTag(models.Model):
    """A tag on a customer (the table Django created for ``Customer.tags``, made explicit for
    its indexes)."""

    # Indexed by customer_tag_unique (customer, tag).
    customer = models.ForeignKey(
        Customer, verbose_name=_("customer"), on_delete=models.CASCADE, db_index=False
    )
    # Indexed by customer_tag_recent_idx (tag, created_at, customer).
    tag = models.ForeignKey(Tag, verbose_name=_("tag"), on_delete=models.CASCADE, db_index=False)
    # A copy of the customer's created_at, so that a tag's members can be read newest first
    # from this table's index (the customer list's order; see selectors.with_tag). Database
    # triggers (migration 0009) keep it equal whatever path writes the row or changes the
    # customer's created_at: left empty on insert, it is filled from the customer.
    created_at = models.DateTimeField(_("customer created at"), null=True, editable=False)

    class Meta:
        db_table = "customers_customer_tags"
        verbose_name = _("customer tag")
        verbose_name_plural = _("customer tags")
        constraints = [
            models.UniqueConstraint(fields=["customer", "tag"], name="customer_tag_unique")
        ]
        # A tag's members newest first, in the customer list's order, from one index range
        # scan that can start at a keyset cursor (see selectors.with_tag).
        indexes = [
            models.Index(fields=["tag", "-created_at", "-customer"], name="customer_tag_recent_idx")
        ]

    def __str__(self) -> str:
        return f"{self.customer} – {self.tag}"


class ConsentRecord(models.Model):
    """One change of a customer's e-mail consent: the legal record (append-only)."""

    customer = models.ForeignKey(
        Customer,
        on_delete=models.CASCADE,
        related_name="consent_records",
        verbose_name=_("customer"),
    )
    opted_in = models.BooleanField(_("opted in"))
    recorded_at = models.DateTimeField(_("recorded at"), default=timezone.now)
    source = models.CharField(_("how"), max_length=20, choices=ConsentSource.choices)
    form = models.CharField(
        _("form or wording"), max_length=200, blank=True, help_text=_("Which form, or its text.")
    )
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        verbose_name=_("recorded by"),
    )

    class Meta:
        verbose_name = _("consent record")
        verbose_name_plural = _("consent records")
        ordering = ["-recorded_at", "-id"]
        indexes = [models.Index(fields=["customer", "-recorded_at"], name="consent_customer_idx")]

    def __str__(self) -> str:
        return f"{self.customer_id} {'+' if self.opted_in else '-'} {self.recorded_at:%Y-%m-%d}"


class Product(models.Model):
    sku = models.CharField(_("SKU"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=200)
    category = models.CharField(_("category"), max_length=100, blank=True, db_index=True)
    price = models.DecimalField(
        _("price"),
        max_digits=12,
        decimal_places=2,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0"))],
    )

    class Meta:
        verbose_name = _("product")
        verbose_name_plural = _("products")
        ordering = ["sku"]
        constraints = [
            models.CheckConstraint(condition=Q(price__gte=0), name="product_price_not_negative")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"


class PurchaseChannel(models.TextChoices):
    ECOMMERCE = "ecommerce", _("E-commerce")
    STORE = "store", _("Store")
    PHONE = "phone", _("Phone order")
    SUBSCRIPTION = "subscription", _("Subscription")
    OTHER = "other", _("Other")


class PurchaseStatus(models.TextChoices):
    COMPLETED = "completed", _("Completed")
    CANCELLED = "cancelled", _("Cancelled")
    REFUNDED = "refunded", _("Refunded")


class PurchaseQuerySet(models.QuerySet):
    def completed(self) -> PurchaseQuerySet:
        """The purchases every metric counts (cancelled and refunded ones are excluded)."""
        return self.filter(status=PurchaseStatus.COMPLETED)


class Purchase(models.Model):
    order_id = models.CharField(_("order ID"), max_length=64, unique=True)
    # Indexed by purchase_customer_idx (customer, -purchased_at): no index of its own, which
    # every imported row would pay for.
    customer = models.ForeignKey(
        Customer,
        on_delete=models.CASCADE,
        related_name="purchases",
        verbose_name=_("customer"),
        db_index=False,
    )
    purchased_at = models.DateTimeField(_("purchased at"))
    channel = models.CharField(
        _("channel"), max_length=20, choices=PurchaseChannel.choices, blank=True
    )
    status = models.CharField(
        _("status"),
        max_length=10,
        choices=PurchaseStatus.choices,
        default=PurchaseStatus.COMPLETED,
    )
    total = models.DecimalField(_("total"), max_digits=14, decimal_places=2)

    objects = PurchaseQuerySet.as_manager()

    class Meta:
        verbose_name = _("purchase")
        verbose_name_plural = _("purchases")
        ordering = ["-purchased_at", "-id"]
        indexes = [
            models.Index(fields=["customer", "-purchased_at"], name="purchase_customer_idx"),
            models.Index(fields=["purchased_at"], name="purchase_date_idx"),
        ]

    def __str__(self) -> str:
        return self.order_id


class PurchaseItem(models.Model):
    # Indexed by item_unique_product (purchase, product).
    purchase = models.ForeignKey(
        Purchase,
        on_delete=models.CASCADE,
        related_name="items",
        verbose_name=_("purchase"),
        db_index=False,
    )
    product = models.ForeignKey(
        Product, on_delete=models.PROTECT, related_name="purchase_items", verbose_name=_("product")
    )
    quantity = models.PositiveIntegerField(_("quantity"), default=1)
    unit_price = models.DecimalField(_("unit price"), max_digits=12, decimal_places=2)

    class Meta:
        verbose_name = _("purchase item")
        verbose_name_plural = _("purchase items")
        constraints = [
            # One line per product and order: re-importing a file updates, never duplicates.
            models.UniqueConstraint(fields=["purchase", "product"], name="item_unique_product"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="item_quantity_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.product_id} × {self.quantity}"

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.quantity


class TicketStatus(models.TextChoices):
    OPEN = "open", _("Open")
    PENDING = "pending", _("Pending")
    RESOLVED = "resolved", _("Resolved")
    CLOSED = "closed", _("Closed")


class TicketPriority(models.TextChoices):
    LOW = "low", _("Low")
    NORMAL = "normal", _("Normal")
    HIGH = "high", _("High")
    URGENT = "urgent", _("Urgent")


class ContactChannel(models.TextChoices):
    EMAIL = "email", _("E-mail")
    PHONE = "phone", _("Phone")
    CHAT = "chat", _("Chat")
    WEB_FORM = "web_form", _("Web form")
    LINE = "line", _("LINE")
    STORE = "store", _("Store")
    OTHER = "other", _("Other")


# How long a ticket of each priority may stay unresolved before it counts as overdue.
TICKET_RESPONSE_TIME = {
    TicketPriority.URGENT: timedelta(hours=4),
    TicketPriority.HIGH: timedelta(days=1),
    TicketPriority.NORMAL: timedelta(days=3),
    TicketPriority.LOW: timedelta(days=7),
}
ACTIVE_TICKET_STATUSES = (TicketStatus.OPEN, TicketStatus.PENDING)


class SupportTicketQuerySet(models.QuerySet):
    def visible_to(self, user) -> SupportTicketQuerySet:
        if user.has_perm("customers.view_supportticket"):
            return self
        return self.none()

    def active(self) -> SupportTicketQuerySet:
        return self.filter(status__in=ACTIVE_TICKET_STATUSES)

    def overdue(self, now=None) -> SupportTicketQuerySet:
        return self.active().filter(due_at__lt=now or timezone.now())


class SupportTicket(models.Model):
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="tickets", verbose_name=_("customer")
    )
    opened_at = models.DateTimeField(_("opened at"), default=timezone.now)
    channel = models.CharField(
        _("channel"), max_length=20, choices=ContactChannel.choices, default=ContactChannel.EMAIL
    )
    subject = models.CharField(_("subject"), max_length=200)
    body = models.TextField(_("inquiry"), blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=TicketStatus.choices, default=TicketStatus.OPEN
    )
    priority = models.CharField(
        _("priority"), max_length=10, choices=TicketPriority.choices, default=TicketPriority.NORMAL
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_tickets",
        verbose_name=_("assignee"),
    )
    due_at = models.DateTimeField(_("respond by"), null=True, blank=True)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)

    objects = SupportTicketQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("support ticket")
        verbose_name_plural = _("support tickets")
        ordering = ["-opened_at", "-id"]
        indexes = [
            models.Index(fields=["customer", "-opened_at"], name="ticket_customer_idx"),
            models.Index(fields=["status", "due_at"], name="ticket_queue_idx"),
            models.Index(fields=["assignee", "status"], name="ticket_assignee_idx"),
        ]

    def __str__(self) -> str:
        return self.subject

    def save(self, *args, **kwargs):
        if self.due_at is None:
            self.due_at = self.opened_at + TICKET_RESPONSE_TIME[TicketPriority(self.priority)]
        super().save(*args, **kwargs)

    @property
    def is_overdue(self) -> bool:
        return (
            self.status in ACTIVE_TICKET_STATUSES
            and self.due_at is not None
            and self.due_at < timezone.now()
        )


class TicketReply(models.Model):
    ticket = models.ForeignKey(
        SupportTicket, on_delete=models.CASCADE, related_name="replies", verbose_name=_("ticket")
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, verbose_name=_("author")
    )
    body = models.TextField(_("message"))
    internal = models.BooleanField(
        _("internal note"), default=False, help_text=_("Seen by staff only, not sent.")
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("ticket reply")
        verbose_name_plural = _("ticket replies")
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.ticket_id} @ {self.created_at:%Y-%m-%d %H:%M}"


class InteractionKind(models.TextChoices):
    CALL = "call", _("Call")
    VISIT = "visit", _("Visit")
    MEETING = "meeting", _("Meeting")
    EMAIL = "email", _("E-mail")
    NOTE = "note", _("Note")


class Interaction(models.Model):
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="interactions", verbose_name=_("customer")
    )
    kind = models.CharField(_("kind"), max_length=10, choices=InteractionKind.choices)
    occurred_at = models.DateTimeField(_("when"), default=timezone.now)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, verbose_name=_("by")
    )
    summary = models.TextField(_("summary"))

    class Meta:
        verbose_name = _("interaction")
        verbose_name_plural = _("interactions")
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["customer", "-occurred_at"], name="interaction_customer_idx")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.occurred_at:%Y-%m-%d}"


class ImportKind(models.TextChoices):
    CUSTOMERS = "customers", _("Customers")
    PURCHASES = "purchases", _("Purchases")


class ImportStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")


class ImportJob(models.Model):
    """One CSV import, from the upload page or the command line: who, what, how it went.

    Bulk imports write rows in bulk, so their change history is this record (who imported
    which file when, with counts and row errors), not one history entry per customer.
    """

    kind = models.CharField(_("kind"), max_length=10, choices=ImportKind.choices)
    file = models.FileField(_("file"), upload_to="imports/%Y/%m/", blank=True)
    file_name = models.CharField(_("file name"), max_length=255)
    keep_valid_rows = models.BooleanField(
        _("keep valid rows"),
        default=False,
        help_text=_("Import the valid rows even if some rows have errors."),
    )
    status = models.CharField(
        _("status"), max_length=10, choices=ImportStatus.choices, default=ImportStatus.QUEUED
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        verbose_name=_("imported by"),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    total_bytes = models.BigIntegerField(_("file size"), default=0)
    processed_bytes = models.BigIntegerField(_("bytes read"), default=0)
    rows_read = models.PositiveIntegerField(_("rows read"), default=0)
    rows_created = models.PositiveIntegerField(_("rows created"), default=0)
    rows_updated = models.PositiveIntegerField(_("rows updated"), default=0)
    error_count = models.PositiveIntegerField(_("rows with errors"), default=0)
    errors = models.JSONField(
        _("errors"),
        default=list,
        blank=True,
        help_text=_("The first row errors: line, column, reason."),
    )

    class Meta:
        verbose_name = _("import")
        verbose_name_plural = _("imports")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.file_name}"

    @property
    def progress(self) -> int:
        """Percent of the file read (0-100)."""
        if not self.total_bytes:
            return 100 if self.status == ImportStatus.SUCCEEDED else 0
        return min(100, round(100 * self.processed_bytes / self.total_bytes))


class PersonalDataExport(models.Model):
    """One disclosure of everything held on a customer (who asked the system for it, when)."""

    customer = models.ForeignKey(
        Customer,
        on_delete=models.SET_NULL,
        null=True,
        related_name="data_exports",
        verbose_name=_("customer"),
    )
    exported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("exported by"),
    )
    exported_at = models.DateTimeField(_("exported at"), default=timezone.now)

    class Meta:
        verbose_name = _("personal data export")
        verbose_name_plural = _("personal data exports")
        ordering = ["-exported_at", "-id"]

    def __str__(self) -> str:
        return f"{self.customer_id} @ {self.exported_at:%Y-%m-%d %H:%M}"


class ErasureLog(models.Model):
    """One erasure of a customer's personal data.

    Keeps the SHA-256 of the normalised e-mail address, never the address, so that campaign
    suppression can refuse the address if it comes back without the CRM keeping it.
    """

    customer = models.OneToOneField(
        Customer,
        on_delete=models.SET_NULL,
        null=True,
        related_name="erasure",
        verbose_name=_("customer"),
    )
    erased_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("erased by"),
    )
    erased_at = models.DateTimeField(_("erased at"), default=timezone.now)
    email_hash = models.CharField(
        _("e-mail hash"),
        max_length=64,
        blank=True,
        help_text=_("SHA-256 of the normalised e-mail address; empty if there was none."),
    )

    class Meta:
        verbose_name = _("erasure")
        verbose_name_plural = _("erasures")
        ordering = ["-erased_at", "-id"]
        indexes = [models.Index(fields=["email_hash"], name="erasure_email_hash_idx")]

    def __str__(self) -> str:
        return f"{self.customer_id} @ {self.erased_at:%Y-%m-%d %H:%M}"


class MergeLog(models.Model):
    """One merge of a probable duplicate into the customer that was kept."""

    kept = models.ForeignKey(
        Customer,
        on_delete=models.SET_NULL,
        null=True,
        related_name="merges",
        verbose_name=_("kept customer"),
    )
    merged_customer_id = models.BigIntegerField(_("merged customer ID"))
    merged_external_id = models.CharField(_("merged external ID"), max_length=64)
    merged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("merged by"),
    )
    merged_at = models.DateTimeField(_("merged at"), default=timezone.now)
    moved = models.JSONField(
        _("moved rows"), default=dict, blank=True, help_text=_("Rows moved, per kind.")
    )
    filled_fields = models.JSONField(
        _("filled fields"),
        default=list,
        blank=True,
        help_text=_("Empty fields of the kept customer filled from the merged one."),
    )

    class Meta:
        verbose_name = _("merge")
        verbose_name_plural = _("merges")
        ordering = ["-merged_at", "-id"]

    def __str__(self) -> str:
        return f"{self.merged_external_id} → {self.kept_id}"
