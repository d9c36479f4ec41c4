"""The segments app's API: crm/api/urls.py adds these routes to the project's router."""

from segments import api_scoring, api_segments


def register(router) -> None:
    api_scoring.register(router)
    api_segments.register(router)


urlpatterns = [*api_scoring.urlpatterns, *api_segments.urlpatterns]
