"""The analytics app's API: crm/api/urls.py adds these routes to the project's router."""

from analytics import api, api_breakdowns, api_goals


def register(router) -> None:
    api.register(router)
    api_goals.register(router)


urlpatterns = [*api.urlpatterns, *api_breakdowns.urlpatterns]
