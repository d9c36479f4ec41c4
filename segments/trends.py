"""A segment's size trend: its recent sizes (from SegmentSize, one row per refresh) drawn
as a sparkline on the segment list and on the segment's page."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import F, Window
from django.db.models.functions import RowNumber

from segments.models import SegmentSize

TREND_POINTS = 12


@dataclass(frozen=True)
class Trend:
    """A segment's recent sizes (oldest first) drawn as a sparkline."""

    sizes: list[int]
    width: int = 100
    height: int = 24

    @property
    def points(self) -> str:
        if len(self.sizes) < 2:
            return ""
        top = max(self.sizes) or 1
        step = self.width / (len(self.sizes) - 1)
        return " ".join(
            f"{i * step:.1f},{self.height - 2 - (size / top) * (self.height - 4):.1f}"
            for i, size in enumerate(self.sizes)
        )

    @property
    def change(self) -> int | None:
        return self.sizes[-1] - self.sizes[-2] if len(self.sizes) >= 2 else None


def trends(segment_ids: list[int]) -> dict[int, Trend]:
    """The last ``TREND_POINTS`` sizes of each segment, in one query."""
    rows = (
        SegmentSize.objects.filter(segment_id__in=segment_ids)
        .annotate(
            position=Window(
                RowNumber(), partition_by=[F("segment_id")], order_by=[F("measured_at").desc()]
            )
        )
        .filter(position__lte=TREND_POINTS)
        .order_by("segment_id", "measured_at")
        .values_list("segment_id", "size")
    )
    sizes: dict[int, list[int]] = {}
    for segment_id, size in rows:
        sizes.setdefault(segment_id, []).append(size)
    return {segment_id: Trend(values) for segment_id, values in sizes.items()}
