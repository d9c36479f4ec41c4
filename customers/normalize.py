"""Normalising what people type, so that search and duplicate detection find the same
customer however a name, phone number or address was written.

NFKC folds full-width Latin and digits to ASCII and half-width katakana to full-width;
hiragana and katakana are then folded together, so "ﾔﾏﾀﾞ", "やまだ" and "ヤマダ" match.
"""

from __future__ import annotations

import re
import unicodedata

_HIRAGANA_TO_KATAKANA = {code: code + 0x60 for code in range(0x3041, 0x3097)}
_KATAKANA_TO_HIRAGANA = {code + 0x60: code for code in range(0x3041, 0x3097)}
_SEPARATORS = re.compile(r"[\s\-‐‑‒–—―ー－・.,()（）]+")
_KANA = re.compile(r"^[\u30a0-\u30ff\s]*$")  # katakana block, prolonged sound mark, spaces


def search_key(text: str) -> str:
    """The form stored and searched: NFKC, lower case, hiragana, no spaces or separators.

    The prolonged sound mark ー is removed with the separators because people type it, a
    hyphen or nothing ("メール", "メ-ル", "メル" are all found by "めーる").
    """
    text = unicodedata.normalize("NFKC", text or "").lower().translate(_KATAKANA_TO_HIRAGANA)
    return _SEPARATORS.sub("", text)


def to_katakana(text: str) -> str:
    """Kana as stored: full-width katakana with single spaces ("やまだ" -> "ヤマダ")."""
    text = unicodedata.normalize("NFKC", text or "").translate(_HIRAGANA_TO_KATAKANA)
    return " ".join(text.split())


def is_kana(text: str) -> bool:
    return bool(_KANA.match(to_katakana(text)))


def digits(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", text or "") if ch.isdigit())


def normalize_phone(text: str) -> str:
    """Digits only, national form: "+81 90-1234-5678" and "090(1234)5678" -> "09012345678"."""
    raw = unicodedata.normalize("NFKC", text or "").strip()
    number = digits(raw)
    if raw.startswith("+81") or (raw.startswith("81") and len(number) in (11, 12)):
        number = "0" + number[2:]
    return number


def normalize_postal_code(text: str) -> str:
    """Seven digits: "〒100-0001" -> "1000001"."""
    return digits(text)


def normalize_email(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "").strip().lower()
