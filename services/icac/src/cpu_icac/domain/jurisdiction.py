"""Does a tip concern Cambodia? From enrichment results (IP geolocation) and the report itself.

Cambodian indicators: an IP address geolocated to Cambodia, a phone number of Cambodia
(+855), an e-mail address under ``.kh``. A tip with none of them is a *no-jurisdiction
candidate* (reason code ``no_cambodian_indicator``): an analyst confirms with the
``no_jurisdiction`` disposition and refers it to the country concerned; the platform never
drops it by itself. The province of the tip is the one most of its Cambodian IPs point to.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import phonenumbers

from cpu_icac.domain.linking import PhoneReading, normalise_ip
from cpu_icac.domain.tip_report import TipReport

HOME_COUNTRY: Final = "KH"
NO_JURISDICTION: Final = "no_cambodian_indicator"


@dataclass(frozen=True, slots=True)
class IpLocation:
    """What the geolocation database says of one IP: ISO country code, and for a Cambodian
    address the two-digit province code when known."""

    country_code: str | None
    province_code: str | None = None


@dataclass(frozen=True, slots=True)
class JurisdictionAssessment:
    """Indicators found (codes), the countries seen, the tip's province, and the verdict."""

    no_jurisdiction_candidate: bool
    home_indicators: tuple[str, ...]
    foreign_countries: tuple[str, ...]
    province_code: str | None

    @property
    def reason_codes(self) -> tuple[str, ...]:
        return (NO_JURISDICTION,) if self.no_jurisdiction_candidate else ()


def _phone_region(value: str, phones: Mapping[str, PhoneReading] | None) -> str | None:
    reading = phones.get(value) if phones is not None else None
    if reading is not None:
        return reading.region
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return None  # a national number without "+": no country can be told from it
    return phonenumbers.region_code_for_number(number)


def assess_jurisdiction(
    report: TipReport,
    ip_locations: Mapping[str, IpLocation],
    *,
    home_country: str = HOME_COUNTRY,
    phones: Mapping[str, PhoneReading] | None = None,
) -> JurisdictionAssessment:
    """Weigh a report's indicators. ``ip_locations`` maps canonical IP text (as in the
    report) to what geolocation found; an IP missing from it counts as unknown. ``phones``:
    the report's numbers already read (:func:`linking.read_phones`), if the caller has them."""
    home: list[str] = []
    foreign: list[str] = []
    provinces: Counter[str] = Counter()
    for ip in report.ip_addresses():
        location = ip_locations.get(ip) or ip_locations.get(normalise_ip(ip) or ip)
        if location is None or not location.country_code:
            continue
        country = location.country_code.upper()
        if country == home_country:
            home.append("ip_geolocated_home")
            if location.province_code:
                provinces[location.province_code] += 1
        else:
            foreign.append(country)
    for person in report.reported_persons:
        for phone in person.phones:
            region = _phone_region(phone, phones)
            if region == home_country:
                home.append("phone_home_country")
            elif region:
                foreign.append(region)
        for email in person.emails:
            if email.lower().endswith("." + home_country.lower()):
                home.append("email_home_domain")
    province = max(sorted(provinces), key=provinces.__getitem__) if provinces else None
    return JurisdictionAssessment(
        no_jurisdiction_candidate=not home,
        home_indicators=tuple(dict.fromkeys(home)),
        foreign_countries=tuple(dict.fromkeys(foreign)),
        province_code=province,
    )
