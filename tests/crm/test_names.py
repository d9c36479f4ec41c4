import pytest

from crm.names import full_name


@pytest.mark.parametrize(
    ("family", "given", "expected"),
    [
        ("山田", "太郎", "山田 太郎"),
        ("やまだ", "たろう", "やまだ たろう"),
        ("ヤマダ", "タロウ", "ヤマダ タロウ"),
        ("Brown", "Emma", "Emma Brown"),
        ("", "Emma", "Emma"),
        ("山田", "", "山田"),
        ("", "", ""),
    ],
)
def test_japanese_names_put_the_family_name_first(family, given, expected):
    assert full_name(family, given) == expected
