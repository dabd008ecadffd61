"""Victim services provided to the children of a case (led by OVCS).

Each service record names a child on the case, the service, the provider (a code, never a
person's name) and the date in Cambodia it was provided, which may not be in the future. It
may be before the case was opened: a hospital often treats a child before anyone refers them.
Services may be recorded whatever the case's status: support goes on after a case is closed.

Provider codes are lower case, 2-50 characters of ``a-z 0-9 _ . : -``. A ``partner_referral``
hands the child to a partner agency, so its provider is the Ministry of Social Affairs
(``mosvy``, or a provincial department ``dosvy:NN`` with NN the province code) or an NGO
(``ngo:<code>``); the unit keeps the list of provider codes itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import get_args

from cpu_casework.domain.errors import InvalidValue
from cpu_shared.contracts.codes import VictimService

SERVICES: tuple[str, ...] = get_args(VictimService)
PARTNER_REFERRAL = "partner_referral"

_PROVIDER = re.compile(r"^[a-z0-9][a-z0-9_.:\-]{1,49}$")
_PARTNER = re.compile(r"^(mosvy|dosvy:(0[1-9]|1[0-9]|2[0-5])|ngo:[a-z0-9][a-z0-9_.\-]*)$")


@dataclass(frozen=True)
class VictimServiceRecord:
    child_id: str
    service: str
    provider_code: str
    provided_on: date
    recorded_at: datetime
    recorded_by: str

    def same_service(self, other: VictimServiceRecord) -> bool:
        return (self.child_id, self.service, self.provider_code, self.provided_on) == (
            other.child_id,
            other.service,
            other.provider_code,
            other.provided_on,
        )


def check_provider(service: str, provider_code: object) -> str:
    """The provider code, checked for the service; raises InvalidValue."""
    if service not in SERVICES:
        raise InvalidValue("service", f"must be one of {', '.join(SERVICES)}")
    if not isinstance(provider_code, str) or not _PROVIDER.match(provider_code):
        raise InvalidValue("provider_code", "must be a lower-case provider code (2-50 chars)")
    if service == PARTNER_REFERRAL and not _PARTNER.match(provider_code):
        raise InvalidValue(
            "provider_code",
            "a partner referral goes to MoSVY (mosvy, dosvy:NN) or an NGO (ngo:<code>)",
        )
    return provider_code
