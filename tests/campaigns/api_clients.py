"""The campaigns API tests' client: signed in as a user, the way an integration's token is."""

from __future__ import annotations

from rest_framework.test import APIClient


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client
