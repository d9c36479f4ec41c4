from rest_framework import pagination


class CursorPagination(pagination.CursorPagination):
    """Stable, O(1)-per-page pagination for lists that grow to millions of rows.

    Views set ``ordering`` to a unique, indexed order (e.g. ``("-created_at", "-id")``).
    """

    ordering = "-id"
    page_size_query_param = "page_size"
    max_page_size = 500
