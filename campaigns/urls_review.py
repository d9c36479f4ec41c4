"""Check and Act: the campaign list with goal attainment, the review page and its actions."""

urlpatterns: list = []
