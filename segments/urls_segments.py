"""Pages of the segment builder: list, build with live counts, members, export."""

urlpatterns: list = []
