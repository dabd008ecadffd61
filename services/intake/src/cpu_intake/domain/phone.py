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


class E164(str):
    """A number :func:`normalise_phone` found valid, in E.164 form: normalising it again
    gives itself, so it is not parsed again (a submission's reporter number is normalised by
    validation, then by matching). The mark lives on the value only: nothing is remembered."""

    __slots__ = ()


def normalise_phone(raw: str, *, region: str = DEFAULT_REGION) -> str:
    """E.164 form of ``raw`` (``"+85512345678"``); raises :class:`InvalidPhoneNumber`."""
    if type(raw) is E164:
        return raw
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(raw) from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber(raw)
    return E164(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
