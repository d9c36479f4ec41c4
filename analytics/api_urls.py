"""The analytics app's API: crm/api/urls.py adds these routes to the project's router."""

from analytics import api


def register(router) -> None:
    api.register(router)


urlpatterns = [*api.urlpatterns]
