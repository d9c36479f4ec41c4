"""JSON that keeps Decimals (money) and dates as they were: the stored run reports hold both,
and the pages format them as such, so a plain JSON round trip (Decimal -> str) would change
what the templates receive."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal


class ReportEncoder(json.JSONEncoder):
    def default(self, o):
        if isinstance(o, Decimal):
            return {"__decimal__": str(o)}
        if isinstance(o, date):
            return {"__date__": o.isoformat()}
        # Anything else, translated labels included (they would be frozen in one language),
        # is refused: only figures are stored.
        return super().default(o)


class ReportDecoder(json.JSONDecoder):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, object_hook=self._object, **kwargs)

    @staticmethod
    def _object(value: dict):
        if len(value) == 1:
            if "__decimal__" in value:
                return Decimal(value["__decimal__"])
            if "__date__" in value:
                return date.fromisoformat(value["__date__"])
        return value
