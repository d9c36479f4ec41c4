"""The 47 prefectures of Japan with their JIS X 0401 codes.

Stored as the two-digit code; shown in the user's language; recognised on import whether a
file gives the code ("13"), the Japanese name with or without its suffix ("東京都", "東京")
or the romanised name ("Tokyo").
"""

from __future__ import annotations

import unicodedata

from django.db import models
from django.utils.translation import gettext_lazy as _

# code, Japanese name, population in thousands (2020 census; weights the demo data)
_TABLE = [
    ("01", "北海道", 5225), ("02", "青森県", 1238), ("03", "岩手県", 1211),
    ("04", "宮城県", 2302), ("05", "秋田県", 960), ("06", "山形県", 1068),
    ("07", "福島県", 1833), ("08", "茨城県", 2867), ("09", "栃木県", 1933),
    ("10", "群馬県", 1939), ("11", "埼玉県", 7345), ("12", "千葉県", 6284),
    ("13", "東京都", 14048), ("14", "神奈川県", 9237), ("15", "新潟県", 2201),
    ("16", "富山県", 1035), ("17", "石川県", 1133), ("18", "福井県", 767),
    ("19", "山梨県", 810), ("20", "長野県", 2048), ("21", "岐阜県", 1979),
    ("22", "静岡県", 3633), ("23", "愛知県", 7542), ("24", "三重県", 1770),
    ("25", "滋賀県", 1414), ("26", "京都府", 2578), ("27", "大阪府", 8838),
    ("28", "兵庫県", 5465), ("29", "奈良県", 1324), ("30", "和歌山県", 923),
    ("31", "鳥取県", 553), ("32", "島根県", 671), ("33", "岡山県", 1888),
    ("34", "広島県", 2800), ("35", "山口県", 1342), ("36", "徳島県", 720),
    ("37", "香川県", 950), ("38", "愛媛県", 1335), ("39", "高知県", 692),
    ("40", "福岡県", 5135), ("41", "佐賀県", 811), ("42", "長崎県", 1312),
    ("43", "熊本県", 1738), ("44", "大分県", 1124), ("45", "宮崎県", 1070),
    ("46", "鹿児島県", 1588), ("47", "沖縄県", 1467),
]  # fmt: skip


class Prefecture(models.TextChoices):
    HOKKAIDO = "01", _("Hokkaido")
    AOMORI = "02", _("Aomori")
    IWATE = "03", _("Iwate")
    MIYAGI = "04", _("Miyagi")
    AKITA = "05", _("Akita")
    YAMAGATA = "06", _("Yamagata")
    FUKUSHIMA = "07", _("Fukushima")
    IBARAKI = "08", _("Ibaraki")
    TOCHIGI = "09", _("Tochigi")
    GUNMA = "10", _("Gunma")
    SAITAMA = "11", _("Saitama")
    CHIBA = "12", _("Chiba")
    TOKYO = "13", _("Tokyo")
    KANAGAWA = "14", _("Kanagawa")
    NIIGATA = "15", _("Niigata")
    TOYAMA = "16", _("Toyama")
    ISHIKAWA = "17", _("Ishikawa")
    FUKUI = "18", _("Fukui")
    YAMANASHI = "19", _("Yamanashi")
    NAGANO = "20", _("Nagano")
    GIFU = "21", _("Gifu")
    SHIZUOKA = "22", _("Shizuoka")
    AICHI = "23", _("Aichi")
    MIE = "24", _("Mie")
    SHIGA = "25", _("Shiga")
    KYOTO = "26", _("Kyoto")
    OSAKA = "27", _("Osaka")
    HYOGO = "28", _("Hyogo")
    NARA = "29", _("Nara")
    WAKAYAMA = "30", _("Wakayama")
    TOTTORI = "31", _("Tottori")
    SHIMANE = "32", _("Shimane")
    OKAYAMA = "33", _("Okayama")
    HIROSHIMA = "34", _("Hiroshima")
    YAMAGUCHI = "35", _("Yamaguchi")
    TOKUSHIMA = "36", _("Tokushima")
    KAGAWA = "37", _("Kagawa")
    EHIME = "38", _("Ehime")
    KOCHI = "39", _("Kochi")
    FUKUOKA = "40", _("Fukuoka")
    SAGA = "41", _("Saga")
    NAGASAKI = "42", _("Nagasaki")
    KUMAMOTO = "43", _("Kumamoto")
    OITA = "44", _("Oita")
    MIYAZAKI = "45", _("Miyazaki")
    KAGOSHIMA = "46", _("Kagoshima")
    OKINAWA = "47", _("Okinawa")


JAPANESE_NAMES: dict[str, str] = {code: name for code, name, _pop in _TABLE}
POPULATION_THOUSANDS: dict[str, int] = {code: pop for code, _name, pop in _TABLE}


def _key(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip().lower().replace(" ", "")


def _lookup() -> dict[str, str]:
    table: dict[str, str] = {}
    for member in Prefecture:
        code, japanese = member.value, JAPANESE_NAMES[member.value]
        english = member.name.lower()
        short = japanese if code == "01" else japanese[:-1]  # 東京都 -> 東京, 北海道 stays
        for alias in (
            code,
            str(int(code)),
            japanese,
            short,
            english,
            f"{english}-ken",
            f"{english}-fu",
            f"{english}-to",
            f"{english}prefecture",
        ):
            table[_key(alias)] = code
    return table


_LOOKUP = _lookup()


def parse_prefecture(text: str) -> str | None:
    """The JIS code for a prefecture written as a code, in Japanese or romanised; else None."""
    return _LOOKUP.get(_key(text))
