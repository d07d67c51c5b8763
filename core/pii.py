"""Personal data (PIPL): ID numbers that can be found but not read, masks, validation.

An ID number is kept three ways: a keyed digest (HMAC-SHA256) for exact lookup,
an AES-GCM ciphertext that only the application can open (shown in full to
staff with the permission, and logged), and a mask for lists. Someone who
reads the database sees neither the number nor a digest they could brute-force
without the key.
"""

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.utils.translation import gettext_lazy as _

_CIPHER_VERSION = "1"

# GB 11643-1999: weights of the 17 digits and the check character for sum mod 11.
_RIC_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_RIC_CHECK = "10X98765432"
# First two digits: the province-level division (GB/T 2260).
_RIC_PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65 71 81 82".split()
)
_RIC_SHAPE = re.compile(r"^[0-9]{17}[0-9X]$")
# Mainland mobile numbers: 11 digits from 13x to 19x.
_MOBILE = re.compile(r"^1[3-9][0-9]{9}$")
# Landlines with area code: 0 + 2-3 digits, then 7-8 digits, optional extension.
_LANDLINE = re.compile(r"^0[0-9]{2,3}-?[0-9]{7,8}(-[0-9]{1,6})?$")


class InvalidPersonalData(ValueError):
    """A value that fails validation; `message` is translated and names the rule."""

    def __init__(self, message):
        self.message = message
        super().__init__(str(message))


@dataclass(frozen=True)
class ResidentId:
    number: str
    birth_date: date
    gender: str  # "M" or "F": the 17th digit is odd for men


def normalize_id_number(value: str) -> str:
    """Upper case, no spaces: what an ID-card reader or a clerk may type."""
    return re.sub(r"\s+", "", value or "").upper()


def resident_id_parse(value: str, *, today: date | None = None) -> ResidentId:
    """Check a resident ID (GB 11643) and return it with birth date and gender.

    Raise InvalidPersonalData naming what is wrong: length, characters,
    province, birth date or check digit.
    """
    number = normalize_id_number(value)
    if len(number) != 18:
        raise InvalidPersonalData(_("A resident ID number has 18 characters."))
    if not _RIC_SHAPE.match(number):
        raise InvalidPersonalData(_("A resident ID number is 17 digits followed by a digit or X."))
    if number[:2] not in _RIC_PROVINCES:
        raise InvalidPersonalData(_("The resident ID number does not start with a province code."))
    total = sum(int(digit) * weight for digit, weight in zip(number[:17], _RIC_WEIGHTS, strict=True))
    if number[17] != _RIC_CHECK[total % 11]:
        raise InvalidPersonalData(_("The check digit of the resident ID number is wrong."))
    try:
        birth_date = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise InvalidPersonalData(_("The birth date inside the resident ID number does not exist.")) from None
    today = today or date.today()
    if birth_date > today:
        raise InvalidPersonalData(_("The birth date inside the resident ID number is in the future."))
    if birth_date.year < 1890:
        raise InvalidPersonalData(_("The birth date inside the resident ID number is too early."))
    return ResidentId(number=number, birth_date=birth_date, gender="M" if int(number[16]) % 2 else "F")


def resident_id_check_digit(first17: str) -> str:
    """The GB 11643 check character for 17 digits (used to make valid demo numbers)."""
    total = sum(int(digit) * weight for digit, weight in zip(first17, _RIC_WEIGHTS, strict=True))
    return _RIC_CHECK[total % 11]


def normalize_phone(value: str) -> str:
    """Digits only for a mobile (+86 and separators dropped); landlines keep their dash."""
    text = re.sub(r"[\s()]", "", value or "")
    if text.startswith("+86"):
        text = text[3:]
    elif text.startswith("0086"):
        text = text[4:]
    if re.fullmatch(r"1[0-9-]{10,12}", text):
        text = text.replace("-", "")
    return text


def phone_validate(value: str) -> str:
    """Return the normalized phone or raise InvalidPersonalData for an impossible number."""
    phone = normalize_phone(value)
    if _MOBILE.match(phone) or _LANDLINE.match(phone):
        return phone
    raise InvalidPersonalData(
        _("%(value)s is not a possible phone number: use an 11-digit mobile or a landline with area code.")
        % {"value": value}
    )


def mask_id_number(number: str) -> str:
    if not number:
        return ""
    if len(number) <= 7:
        return number[0] + "*" * (len(number) - 1)
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


def mask_phone(phone: str) -> str:
    if not phone:
        return ""
    if len(phone) >= 11 and phone.isdigit():
        return phone[:3] + "****" + phone[-4:]
    return phone[:-4].rstrip("-") + "-****" if len(phone) > 6 else "****"


def mask_name(name: str) -> str:
    """张秀英 -> 张**; a POS may show it to the person at the till."""
    if not name:
        return ""
    return name[0] + "*" * max(len(name) - 1, 1)


@lru_cache(maxsize=1)
def _keys() -> tuple[bytes, bytes, AESGCM]:
    """The digest key, the cipher key and one AESGCM object for it (reused: a migration seals millions)."""
    digest_key = _key_from_setting("PII_DIGEST_KEY", "pii-digest")
    cipher_key = _key_from_setting("PII_ENCRYPTION_KEY", "pii-encryption")
    return digest_key, cipher_key, AESGCM(cipher_key)


def _key_from_setting(name: str, purpose: str) -> bytes:
    configured = getattr(settings, name, "")
    material = configured or f"{purpose}:{settings.SECRET_KEY}"
    return hashlib.sha256(material.encode()).digest()


def pii_digest(value: str) -> str:
    """Keyed digest for exact lookup; the same value always gives the same digest."""
    return hmac.digest(_keys()[0], value.encode(), "sha256").hex()


def pii_encrypt(value: str) -> str:
    nonce = os.urandom(12)
    sealed = _keys()[2].encrypt(nonce, value.encode(), None)
    return _CIPHER_VERSION + "$" + base64.b64encode(nonce + sealed).decode()


def pii_decrypt(token: str) -> str:
    """Open a value sealed by pii_encrypt; raise InvalidPersonalData if the key does not fit."""
    if not token:
        return ""
    version, _sep, body = token.partition("$")
    if version != _CIPHER_VERSION:
        raise InvalidPersonalData(_("This value was sealed with an unknown key version."))
    try:
        raw = base64.b64decode(body, validate=True)
        return _keys()[2].decrypt(raw[:12], raw[12:], None).decode()
    except (InvalidTag, ValueError):
        # A damaged value (not base64, too short for a nonce) is refused like a wrong key, never a crash.
        raise InvalidPersonalData(_("This value cannot be opened with the configured key.")) from None
