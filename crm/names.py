"""How people's names are shown."""

from __future__ import annotations

import unicodedata


def _is_japanese(text: str) -> bool:
    return any(
        unicodedata.name(char, "").startswith(("CJK UNIFIED", "HIRAGANA", "KATAKANA"))
        for char in text
    )


def full_name(family: str, given: str) -> str:
    """Family name first for Japanese names (山田 太郎), given name first otherwise (Emma Brown).

    The order follows the name, not the interface language: 山田 太郎 stays 山田 太郎 in English.
    """
    family, given = family.strip(), given.strip()
    if _is_japanese(family + given):
        return f"{family} {given}".strip()
    return f"{given} {family}".strip()


def user_display_name(user) -> str:
    return full_name(user.last_name, user.first_name) or user.get_username()
