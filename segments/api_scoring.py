"""API of the segments app (see segments/api_urls.py)."""

urlpatterns: list = []


def register(router) -> None:
    pass
