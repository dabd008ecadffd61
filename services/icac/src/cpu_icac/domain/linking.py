"""Deconfliction: tips that share an identifier are linked into one subject cluster.

Identifiers are opaque keys. The service passes HMAC blind indexes (so the linker, like the
database, never needs a plain e-mail address); :func:`tip_identifiers` builds the keys from a
report with a caller-given ``key`` function, after :func:`normalise_identifier` has made equal
things equal: e-mails lower-cased, phones in E.164 (``phonenumbers``, Cambodia as the default
region), screen names trimmed, NFC and case-folded, IPs in canonical form, file hashes lower-case.

Links:

- the same screen name, e-mail, phone or file hash (MD5, SHA-1 or PDQ, exact) in two tips;
- the same IP address seen in two tips within ``ip_window`` (default 48 hours) of each other.
  An IP sighting without a time links nothing (a shared address without a time is too weak:
  carrier-grade NAT puts thousands of people behind one address).

Not links: hashes of the empty file, and by default files the provider marked publicly
available (a viral file reshared by strangers says nothing about who they are).

The clusters are a union-find (disjoint-set forest, union by size with path halving) over tip
ids: each identifier key remembers the first tip that had it, and a later tip with the key is
joined to that one, which links every pair of tips sharing a key, transitively. For IPs, the
sightings of each address are kept sorted by time and a new one is joined to its nearest
neighbour on each side when within the window; as the window relation is an interval one,
that gives the same clusters as joining every pair within the window.

A cluster's id is its smallest tip id: with time-ordered tip ids (UUIDv7, ULID) that is its
first tip, so a cluster keeps its id as tips join it; when two clusters merge, the merged one
keeps the older id.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from ipaddress import ip_address
from typing import Final, Literal

import phonenumbers

from cpu_icac.domain.hash_sets import EMPTY_FILE_HASHES
from cpu_icac.domain.tip_report import TipReport

IdentifierKind = Literal["screen_name", "email", "phone", "ip", "md5", "sha1", "pdq"]
KeyFunction = Callable[[IdentifierKind, str], str]

DEFAULT_IP_WINDOW: Final = timedelta(hours=48)
DEFAULT_REGION: Final = "KH"


# --- normalisation -------------------------------------------------------------------------


def normalise_email(value: str) -> str:
    """Trimmed, NFC, lower-cased. (Providers' mailbox rules differ, so dots and ``+tags`` are
    kept: ``a.b@x`` and ``ab@x`` may be different people.)"""
    return unicodedata.normalize("NFC", value.strip()).lower()


@dataclass(frozen=True, slots=True)
class PhoneReading:
    """One parse of a phone number, for linking and for jurisdiction."""

    e164: str | None  # None when it is not a possible number
    # The region of a number written with its country code (``+855 ...``); None for a
    # national number, whose country cannot be told from it (the default region aside).
    region: str | None


_NOTHING = PhoneReading(None, None)
_HOME_NUMBER = re.compile(r"\+855([1-9][0-9]{1,13})")


def read_phone(value: str, region: str = DEFAULT_REGION) -> PhoneReading:
    """What :func:`normalise_phone` and ``jurisdiction`` need of a number, from one
    ``phonenumbers.parse`` (it is most of the cost): the E.164 form read as of ``region``, and
    the region of a number written with ``+`` (what ``parse(value, None)`` gives; tested
    equal on 400,000 strings)."""
    home = _HOME_NUMBER.fullmatch(value.replace(" ", "").replace("-", ""))
    if home is not None:
        # "+855" and digits, the form most numbers come in: what parse would find (country
        # code 855, the rest as national number: no national prefix to strip before 1-9),
        # without parsing. Tested equal to parse on random numbers of every length.
        number = phonenumbers.PhoneNumber(country_code=855, national_number=int(home[1]))
        possible = phonenumbers.is_possible_number(number)
        return PhoneReading("+855" + home[1] if possible else None, "KH")
    try:
        number = phonenumbers.parse(value, region, keep_raw_input=True)
    except phonenumbers.NumberParseException:
        return _NOTHING
    written = None
    if number.country_code_source == phonenumbers.CountryCodeSource.FROM_NUMBER_WITH_PLUS_SIGN:
        written = phonenumbers.region_code_for_number(number)
    number.raw_input = None  # format_number would give back the raw input of a zero number
    if not phonenumbers.is_possible_number(number):
        return PhoneReading(None, written)
    return PhoneReading(
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), written
    )


def read_phones(report: TipReport, region: str = DEFAULT_REGION) -> dict[str, PhoneReading]:
    """Each phone number of a report's persons, read once (see :func:`read_phone`)."""
    return {
        phone: read_phone(phone, region)
        for person in report.reported_persons
        for phone in person.phones
    }


def normalise_phone(value: str, region: str = DEFAULT_REGION) -> str | None:
    """E.164 (``+85512345678``), or None when ``phonenumbers`` cannot read a possible number.
    A national number (``012 345 678``) is read as of ``region``."""
    return read_phone(value, region).e164


def normalise_screen_name(value: str) -> str:
    """Trimmed, NFC, case-folded (``Lotus_Boy_77`` and ``lotus_boy_77`` are one account)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", value.strip()).casefold())


def normalise_ip(value: str) -> str | None:
    """Canonical text of an IP address (an IPv4-mapped IPv6 address as IPv4), or None."""
    try:
        address = ip_address(value.strip())
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:  # type: ignore[union-attr]
        return str(address.ipv4_mapped)  # type: ignore[union-attr]
    return str(address)


def normalise_identifier(
    kind: IdentifierKind, value: str, *, region: str = DEFAULT_REGION
) -> str | None:
    """The canonical form of one raw identifier of a kind, or None when it is unusable."""
    if kind == "email":
        return normalise_email(value) or None
    if kind == "phone":
        return normalise_phone(value, region)
    if kind == "screen_name":
        return normalise_screen_name(value) or None
    if kind == "ip":
        return normalise_ip(value)
    return value.strip().lower() or None


def plain_key(kind: IdentifierKind, normalised: str) -> str:
    """A readable key, ``kind:value``: for tests and tools. The service passes blind indexes."""
    return f"{kind}:{normalised}"


# --- a tip's identifiers -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IpSighting:
    """An IP address (as an opaque key) seen at a time."""

    key: str
    at: datetime | None


@dataclass(frozen=True, slots=True)
class TipIdentifiers:
    """What the linker knows of a tip: opaque keys, each with its kind, and IP sightings."""

    tip_id: str
    keys: frozenset[tuple[IdentifierKind, str]] = frozenset()
    ip_sightings: tuple[IpSighting, ...] = ()


def tip_identifiers(
    tip_id: str,
    report: TipReport,
    *,
    key: KeyFunction = plain_key,
    region: str = DEFAULT_REGION,
    link_public_files: bool = False,
    phones: Mapping[str, PhoneReading] | None = None,
) -> TipIdentifiers:
    """The identifiers of a report, normalised and turned into keys by ``key(kind, value)``
    (an HMAC blind index in the service; :func:`plain_key` by default). ``phones``: the
    report's numbers already read as of ``region`` (:func:`read_phones`), if the caller has
    them."""
    keys: set[tuple[IdentifierKind, str]] = set()
    sightings: list[IpSighting] = []

    def add(kind: IdentifierKind, raw: str) -> None:
        normalised = normalise_identifier(kind, raw, region=region)
        if normalised:
            keys.add((kind, key(kind, normalised)))

    for person in report.reported_persons:
        for name in person.screen_names:
            add("screen_name", name)
        for email in person.emails:
            add("email", email)
        for phone in person.phones:
            reading = phones.get(phone) if phones is not None else None
            if reading is None:
                add("phone", phone)
            elif reading.e164:
                keys.add(("phone", key("phone", reading.e164)))
        for event in person.ip_events:
            # Canonical already: the report's IpAddress type gives normalise_ip's text.
            sightings.append(IpSighting(key("ip", event.ip), event.at))
    for file in report.files:
        if file.publicly_available and not link_public_files:
            continue
        for kind, digest in (("md5", file.md5), ("sha1", file.sha1), ("pdq", file.pdq)):
            if digest and digest not in EMPTY_FILE_HASHES:
                keys.add((kind, key(kind, digest)))  # type: ignore[arg-type]
    return TipIdentifiers(tip_id, frozenset(keys), tuple(dict.fromkeys(sightings)))


# --- the linker ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubjectCluster:
    """Tips believed to concern one subject, and the kinds of identifier that linked them."""

    cluster_id: str
    tip_ids: tuple[str, ...]
    linked_by: frozenset[IdentifierKind]

    @property
    def size(self) -> int:
        return len(self.tip_ids)


@dataclass
class SubjectLinker:
    """Union-find of tips over shared identifiers. Add tips in any order; ask for clusters."""

    ip_window: timedelta = DEFAULT_IP_WINDOW
    _parent: dict[str, str] = field(default_factory=dict)
    _size: dict[str, int] = field(default_factory=dict)
    _smallest: dict[str, str] = field(default_factory=dict)
    _kinds: dict[str, set[IdentifierKind]] = field(default_factory=dict)
    _owner: dict[tuple[IdentifierKind, str], str] = field(default_factory=dict)
    _sightings: dict[str, list[tuple[datetime, str]]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._parent)

    def _find(self, tip_id: str) -> str:
        parent = self._parent
        while parent[tip_id] != tip_id:
            parent[tip_id] = parent[parent[tip_id]]  # path halving
            tip_id = parent[tip_id]
        return tip_id

    def _union(self, a: str, b: str, kind: IdentifierKind) -> None:
        ra, rb = self._find(a), self._find(b)
        if ra == rb:
            self._kinds[ra].add(kind)
            return
        if self._size[ra] < self._size[rb]:
            ra, rb = rb, ra
        self._parent[rb] = ra
        self._size[ra] += self._size.pop(rb)
        self._smallest[ra] = min(self._smallest[ra], self._smallest.pop(rb))
        self._kinds[ra] |= self._kinds.pop(rb)
        self._kinds[ra].add(kind)

    def add(self, tip: TipIdentifiers) -> str:
        """Link a tip with every earlier tip sharing an identifier; return its cluster id.
        Adding a tip id again adds its identifiers to it (a new version of the report)."""
        tip_id = tip.tip_id
        if tip_id not in self._parent:
            self._parent[tip_id] = tip_id
            self._size[tip_id] = 1
            self._smallest[tip_id] = tip_id
            self._kinds[tip_id] = set()
        for identifier in tip.keys:
            owner = self._owner.setdefault(identifier, tip_id)
            if owner != tip_id:
                self._union(tip_id, owner, identifier[0])
        for sighting in tip.ip_sightings:
            if sighting.at is not None:
                self._sight(tip_id, sighting.key, sighting.at)
        return self.cluster_id(tip_id)

    def _sight(self, tip_id: str, ip_key: str, at: datetime) -> None:
        seen = self._sightings.setdefault(ip_key, [])
        entry = (at, tip_id)
        position = bisect.bisect_left(seen, entry)
        for neighbour in (position - 1, position):
            if 0 <= neighbour < len(seen):
                other_at, other_tip = seen[neighbour]
                if other_tip != tip_id and abs(other_at - at) <= self.ip_window:
                    self._union(tip_id, other_tip, "ip")
        seen.insert(position, entry)

    def add_all(self, tips: Iterable[TipIdentifiers]) -> None:
        for tip in tips:
            self.add(tip)

    def cluster_id(self, tip_id: str) -> str:
        """The id of the tip's cluster: its smallest tip id. KeyError for an unknown tip."""
        return self._smallest[self._find(tip_id)]

    def cluster_of(self, tip_id: str) -> SubjectCluster:
        """The whole cluster a tip belongs to."""
        root = self._find(tip_id)
        members = tuple(sorted(t for t in self._parent if self._find(t) == root))
        return SubjectCluster(self._smallest[root], members, frozenset(self._kinds[root]))

    def clusters(self) -> list[SubjectCluster]:
        """Every cluster (singletons too), ordered by cluster id."""
        members: dict[str, list[str]] = {}
        for tip_id in self._parent:
            members.setdefault(self._find(tip_id), []).append(tip_id)
        out = [
            SubjectCluster(self._smallest[root], tuple(sorted(tips)), frozenset(self._kinds[root]))
            for root, tips in members.items()
        ]
        return sorted(out, key=lambda c: c.cluster_id)
