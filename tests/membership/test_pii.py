"""core.pii: resident ID validation, phones, masks, sealing and keyed digests."""

from datetime import date

import pytest
from django.test import override_settings

from core import pii
from core.pii import (
    InvalidPersonalData,
    mask_id_number,
    mask_name,
    mask_phone,
    phone_validate,
    pii_decrypt,
    pii_digest,
    pii_encrypt,
    resident_id_check_digit,
    resident_id_parse,
)
from tests.membership.conftest import resident_id


def with_check_digit(first17: str) -> str:
    return first17 + resident_id_check_digit(first17)


@pytest.fixture
def fresh_keys():
    """Keys are cached; tests that change the key settings start and end with an empty cache."""
    pii._keys.cache_clear()
    yield
    pii._keys.cache_clear()


def test_valid_resident_id_gives_birth_date_and_gender():
    number = with_check_digit("11010519491231002")
    parsed = resident_id_parse(number)
    assert parsed.number == number
    assert parsed.birth_date == date(1949, 12, 31)
    assert parsed.gender == "F"  # 17th digit 2 is even


def test_odd_seventeenth_digit_is_a_man():
    assert resident_id_parse(resident_id(date(1980, 5, 1), gender="M")).gender == "M"


def test_wrong_check_digit_is_refused_naming_the_check_digit():
    number = with_check_digit("11010519491231002")
    wrong = number[:17] + ("0" if number[17] != "0" else "1")
    with pytest.raises(InvalidPersonalData, match="check digit"):
        resident_id_parse(wrong)


def test_unknown_province_code_is_refused():
    with pytest.raises(InvalidPersonalData, match="province"):
        resident_id_parse(with_check_digit("99010519491231002"))


def test_impossible_birth_date_19490230_is_refused():
    with pytest.raises(InvalidPersonalData, match="does not exist"):
        resident_id_parse(with_check_digit("11010519490230002"))


def test_birth_date_in_the_future_is_refused():
    with pytest.raises(InvalidPersonalData, match="future"):
        resident_id_parse(with_check_digit("11010520300101002"), today=date(2025, 1, 1))


@pytest.mark.parametrize("value", ["1101051949123100", "11010519491231002XX", "1101051949123100A3"])
def test_wrong_length_or_characters_are_refused(value):
    with pytest.raises(InvalidPersonalData):
        resident_id_parse(value)


def test_lowercase_x_check_character_is_accepted():
    # Find a birth order whose check character is X.
    number = next(
        with_check_digit(f"11010519491231{order:03d}") for order in range(1000)
        if resident_id_check_digit(f"11010519491231{order:03d}") == "X"
    )
    parsed = resident_id_parse(number.lower())
    assert parsed.number == number
    assert parsed.number.endswith("X")


@pytest.mark.parametrize("value, expected", [
    ("+86 138 0013 8000", "13800138000"),
    ("138-0013-8000", "13800138000"),
    ("0086 13800138000", "13800138000"),
    ("010-12345678", "010-12345678"),
    ("0755 87654321", "075587654321"),
])
def test_possible_phones_are_normalised(value, expected):
    assert phone_validate(value) == expected


@pytest.mark.parametrize("value", ["12345", "2345678901", "12800138000", "1380013800", "phone"])
def test_impossible_phones_are_refused_naming_the_value(value):
    with pytest.raises(InvalidPersonalData) as error:
        phone_validate(value)
    assert value in str(error.value)


def test_masks_hide_the_middle():
    assert mask_id_number("11010519491231002X") == "110***********002X"
    assert mask_id_number("E1234567") == "E12*4567"
    assert mask_id_number("") == ""
    assert mask_phone("13800138000") == "138****8000"
    assert mask_phone("010-12345678") == "010-1234-****"
    assert mask_phone("") == ""
    assert mask_name("张秀英") == "张**"
    assert mask_name("李") == "李*"


def test_sealed_value_opens_to_the_same_value_and_hides_it():
    number = resident_id(date(1960, 1, 1))
    sealed = pii_encrypt(number)
    assert number not in sealed
    assert pii_encrypt(number) != sealed  # a fresh nonce every time
    assert pii_decrypt(sealed) == number


def test_damaged_sealed_value_is_refused_not_a_crash():
    sealed = pii_encrypt("11010519491231002X")
    for damaged in (sealed[:-4] + "AAAA", "1$not base64!", "1$", "9$" + sealed[2:]):
        with pytest.raises(InvalidPersonalData):
            pii_decrypt(damaged)


def test_sealed_value_cannot_be_opened_with_another_key(fresh_keys):
    sealed = pii_encrypt("11010519491231002X")
    pii._keys.cache_clear()
    with override_settings(PII_ENCRYPTION_KEY="another key"):
        with pytest.raises(InvalidPersonalData, match="configured key"):
            pii_decrypt(sealed)


def test_digest_is_stable_and_does_not_show_the_value():
    number = resident_id(date(1960, 1, 1))
    assert pii_digest(number) == pii_digest(number)
    assert len(pii_digest(number)) == 64
    assert number not in pii_digest(number)
    assert pii_digest(number) != pii_digest(resident_id(date(1960, 1, 2)))


def test_digest_depends_on_the_key(fresh_keys):
    number = "11010519491231002X"
    with override_settings(PII_DIGEST_KEY="key one"):
        first = pii_digest(number)
    pii._keys.cache_clear()
    with override_settings(PII_DIGEST_KEY="key two"):
        second = pii_digest(number)
    pii._keys.cache_clear()
    with override_settings(PII_DIGEST_KEY="key one"):
        again = pii_digest(number)
    assert first != second
    assert first == again
