"""REST API of the customers app: customers, products, purchases (with a bulk upsert for shop
integrations), support tickets and interactions, one module per resource; ``fields`` and
``base`` hold what they share.

The OpenAPI schema says exactly what is accepted: serializers take the JSON types they
declare (no guessing "13" from 13 or true from "yes"), and every rule they check is declared
as a length, choice, range or pattern. So a request that follows the schema is never refused
with a 400. What the schema cannot know is the state of the database: a reference to a record
that does not exist is a 404, a duplicate external ID, order ID or SKU, or a ticket status the
workflow does not allow from the current one, a 409.

Writes go through the app's functions, as the pages' do: customers.profiles, the consent
record (customers.consent.record_consent), customers.ticketing, customers.interactions, and
for the bulk upsert the CSV import's code path (customers.importing.import_purchases).
"""

# What other apps' APIs build on, importable from here as before the split.
from crm.api.schema import AutoSchema
from customers.api.base import (
    APIModelSerializer,
    APIViewSetMixin,
    BooleanFilter,
    Conflict,
    ConflictResponseSerializer,
    IdFilter,
    StableOrderingFilter,
)
from customers.api.fields import MAX_ID

__all__ = [
    "MAX_ID",
    "APIModelSerializer",
    "APIViewSetMixin",
    "AutoSchema",
    "BooleanFilter",
    "Conflict",
    "ConflictResponseSerializer",
    "IdFilter",
    "StableOrderingFilter",
]
