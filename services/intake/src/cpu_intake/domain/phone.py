"""Phone numbers in E.164 form, parsed with Google's libphonenumber rules (``phonenumbers``).

Numbers written without a country code are read as Cambodian (region ``KH``), so the
helpline's usual "012 345 678" becomes "+85512345678". Numbers that libphonenumber does not
consider valid for their country are refused, not stored half-right.
"""

from __future__ import annotations

import phonenumbers

DEFAULT_REGION = "KH"


class InvalidPhoneNumber(ValueError):
    """The text is not a valid phone number."""


#: E.164 numbers this process found valid (bounded): normalising one again gives itself, and a
#: submission normalises the reporter's number twice (validation, then matching).
_VALID_E164: set[str] = set()
_VALID_E164_MAX = 10_000


def normalise_phone(raw: str, *, region: str = DEFAULT_REGION) -> str:
    """E.164 form of ``raw`` (``"+85512345678"``); raises :class:`InvalidPhoneNumber`."""
    if raw in _VALID_E164:
        return raw
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(raw) from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber(raw)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if len(_VALID_E164) >= _VALID_E164_MAX:
        _VALID_E164.clear()
    _VALID_E164.add(e164)
    return e164
