"""IP geolocation from a MaxMind-format database (``maxminddb``), and the small test database
the project builds for itself.

The operator supplies the real database (GeoIP2 or GeoLite2 City, or one the unit builds) at
``ICAC_GEOIP_DATABASE``. What is read of a record:

- the country: ``country.iso_code`` (else ``registered_country.iso_code``);
- for Cambodia, the province: ``subdivisions[0].iso_code``, which for Cambodia is the
  ISO 3166-2:KH number and the same as the official two-digit province code (``12`` or
  ``KH-12`` is Phnom Penh), or a ``province_code`` a unit-built database may carry.

Answers are remembered per address (a bounded cache: a feed repeats addresses), and the
reader's lookups are thread-safe, so enrichment can run off the event loop.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any, Final

import maxminddb

from cpu_icac.domain.jurisdiction import HOME_COUNTRY, IpLocation

_PROVINCE: Final = re.compile(r"^(?:KH-)?0?([1-9]|1[0-9]|2[0-5])$")
CACHE_SIZE: Final = 65_536
_UNKNOWN: Final = IpLocation(None, None)


def province_code_of(value: Any) -> str | None:
    """``"12"``, ``"KH-12"``, ``"KH-3"`` or ``3`` as the official two-digit code, else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    found = _PROVINCE.match(value.strip().upper())
    return f"{int(found.group(1)):02d}" if found else None


def location_of(record: Any) -> IpLocation:
    """An :class:`IpLocation` from a database record (City layout or a unit's own)."""
    if not isinstance(record, dict):
        return _UNKNOWN
    country = None
    for key in ("country", "registered_country"):
        part = record.get(key)
        if isinstance(part, dict) and isinstance(part.get("iso_code"), str):
            country = part["iso_code"].upper()
            break
    if country is None and isinstance(record.get("country_code"), str):
        country = record["country_code"].upper()
    if country is None or not re.fullmatch(r"[A-Z]{2}", country):
        return _UNKNOWN
    province = None
    if country == HOME_COUNTRY:
        province = province_code_of(record.get("province_code"))
        subdivisions = record.get("subdivisions")
        if province is None and isinstance(subdivisions, list) and subdivisions:
            first = subdivisions[0]
            if isinstance(first, dict):
                province = province_code_of(first.get("iso_code"))
    return IpLocation(country, province)


class GeoIpLocator:
    """Looks addresses up in one database file, opened once."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._reader = maxminddb.open_database(str(self.path), maxminddb.MODE_AUTO)
        self._cache: dict[str, IpLocation] = {}
        self._lock = threading.Lock()

    def locate(self, ip: str) -> IpLocation:
        """Where ``ip`` (canonical text) is; ``IpLocation(None)`` when the database does not
        know it or it is not an address."""
        found = self._cache.get(ip)
        if found is not None:
            return found
        try:
            record = self._reader.get(ip)
        except (ValueError, TypeError):
            record = None
        location = location_of(record) if record is not None else _UNKNOWN
        with self._lock:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[ip] = location
        return location

    def locate_all(self, ips: list[str]) -> dict[str, IpLocation]:
        return {ip: self.locate(ip) for ip in ips}

    @property
    def description(self) -> str:
        meta = self._reader.metadata()
        return f"{meta.database_type} built {meta.build_epoch}"

    def close(self) -> None:
        self._reader.close()


# --- the test database -----------------------------------------------------------------------

#: The documentation ranges and where the test database puts them (shared/data/tips/README.md).
TEST_NETWORKS: Final[dict[str, tuple[str, str | None]]] = {
    "203.0.113.0/24": ("KH", "12"),  # Phnom Penh
    "198.51.100.0/24": ("KH", "17"),  # Siem Reap
    "192.0.2.0/24": ("US", None),
}


def write_test_database(
    path: Path | str, networks: dict[str, tuple[str, str | None]] | None = None
) -> Path:
    """Write a small GeoIP2-City-shaped database for tests and benchmarks (needs the dev
    dependencies ``mmdb-writer`` and ``netaddr``)."""
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type="CPU-Test-City",
        languages=["en"],
        description="CPU test database: documentation ranges only",
    )
    for network, (country, province) in (networks or TEST_NETWORKS).items():
        record: dict[str, Any] = {"country": {"iso_code": country}}
        if province:
            record["subdivisions"] = [{"iso_code": province}]
        writer.insert_network(IPSet([network]), record)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    writer.to_db_file(str(target))
    return target
