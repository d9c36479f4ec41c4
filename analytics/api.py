"""API of the analytics app (see analytics/api_urls.py)."""

urlpatterns: list = []


def register(router) -> None:
    pass
