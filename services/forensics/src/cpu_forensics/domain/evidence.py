"""The evidence item: what was collected, how it is sealed, and who holds it now.

An :class:`EvidenceItem` is the aggregate that custody steps change. It is created only by
:func:`cpu_forensics.domain.custody.register_evidence`, which also opens the item's chain of
custody; every later change goes through the custody functions of that module. This module
owns what an item *is* and checks it every time one is built (also when a repository loads
one), so a stored row that breaks these rules fails loudly instead of printing on a report.

Decisions
---------
* No content, ever: an item records hashes and locations. There is no field that could take a
  file, an image or a device dump; digital evidence stays on the lab's own storage.
* Digital items (``digital_device``, ``forensic_image``):

  - a ``forensic_image`` *is* an acquisition, so it needs both ``hashes`` (SHA-256 at least)
    and ``acquisition_tool``: an image without a hash cannot be shown in court to be the one
    that was made, and a hash without the tool that computed it cannot be reproduced;
  - a ``digital_device`` is usually registered at seizure, before anyone has imaged it, so its
    hashes are optional; the acquisition is normally registered as a derived
    ``forensic_image``. If a device is hashed at seizure (a USB stick through a write
    blocker), the tool is required with the hashes, for the same reason;
  - a tool without hashes is refused: a tool of what?

* Non-digital items take neither hashes nor a tool.
* Hashes are lower-case hex: SHA-256 (64 digits, required when there are hashes), MD5 (32) and
  SHA-1 (40) optional, because many tools and hash sets still speak them. Upper-case input is
  accepted and lowered, so one hash has one spelling in the ledger.
* A derived item (a DNA extract from a swab, an image of a phone) names its ``parent_id``; the
  rules about the parent (same case, a possible derivation, held by the registering user)
  need the parent and are checked in ``register_evidence``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from cpu_forensics.domain.rules import InvalidValue
from cpu_forensics.domain.values import identifier, optional_text, text, utc

if TYPE_CHECKING:
    from cpu_forensics.domain.custody import CustodyKind, CustodyTransfer


class EvidenceType(StrEnum):
    BIOLOGICAL_SAMPLE = "biological_sample"
    BLOOD = "blood"
    DNA_EXTRACT = "dna_extract"
    CLOTHING = "clothing"
    DOCUMENT = "document"
    DIGITAL_DEVICE = "digital_device"
    FORENSIC_IMAGE = "forensic_image"
    OTHER = "other"


DIGITAL_TYPES = frozenset({EvidenceType.DIGITAL_DEVICE, EvidenceType.FORENSIC_IMAGE})


class SealCondition(StrEnum):
    """The tamper-evident bag as the person holding it sees it."""

    INTACT = "intact"
    DAMAGED = "damaged"
    BROKEN = "broken"
    MISSING = "missing"


class EvidenceStatus(StrEnum):
    IN_CUSTODY = "in_custody"
    TRANSFER_PENDING = "transfer_pending"  # a handover waits for the receiver's acceptance
    DISPOSED = "disposed"  # released to its owner or destroyed: the chain is closed


def parse_evidence_type(value: EvidenceType | str) -> EvidenceType:
    try:
        return EvidenceType(value)
    except ValueError:
        raise InvalidValue("type", f"unknown evidence type {value!r}") from None


def parse_seal_condition(
    value: SealCondition | str, field_name: str = "seal_condition"
) -> SealCondition:
    try:
        return SealCondition(value)
    except ValueError:
        raise InvalidValue(field_name, f"unknown seal condition {value!r}") from None


_HEX = frozenset("0123456789abcdef")


def _hex_digest(value: object, field_name: str, length: int) -> str:
    if not isinstance(value, str):
        raise InvalidValue(field_name, "must be a hex string")
    lowered = value.strip().lower()
    if len(lowered) != length or not set(lowered) <= _HEX:
        raise InvalidValue(field_name, f"must be {length} hexadecimal digits")
    return lowered


@dataclass(frozen=True, slots=True)
class DigitalHashes:
    """Acquisition hashes of a digital item, lower-case hex."""

    sha256: str
    md5: str | None = None
    sha1: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", _hex_digest(self.sha256, "hashes.sha256", 64))
        if self.md5 is not None:
            object.__setattr__(self, "md5", _hex_digest(self.md5, "hashes.md5", 32))
        if self.sha1 is not None:
            object.__setattr__(self, "sha1", _hex_digest(self.sha1, "hashes.sha1", 40))


@dataclass(slots=True, eq=False)
class EvidenceItem:
    """One exhibit: its identity (fixed at registration) and its custody state (changing).

    Identity: ``id`` .. ``acquisition_tool``. Custody state: ``custodian`` (who holds it now),
    ``status``, ``seal_number``/``seal_condition``/``storage_location`` (as of the last step),
    ``last_sequence`` and ``last_movement_at`` (the newest custody event), ``away_kind``
    (``sent_to_lab`` or ``court_exhibit`` while the item is out, so ``returned`` has a
    departure to return from), ``pending_transfer`` and ``version`` (bumped on every change,
    for the repository's optimistic locking).
    """

    id: str
    case_id: str
    type: EvidenceType
    description: str
    collected_by: str
    collected_at: datetime
    collected_location: str
    seal_number: str
    seal_condition: SealCondition
    storage_location: str
    registered_by: str
    registered_at: datetime
    custodian: str
    parent_id: str | None = None
    hashes: DigitalHashes | None = None
    acquisition_tool: str | None = None
    status: EvidenceStatus = EvidenceStatus.IN_CUSTODY
    version: int = 1
    last_sequence: int = 0
    last_movement_at: datetime | None = None
    away_kind: CustodyKind | None = None
    pending_transfer: CustodyTransfer | None = field(default=None)

    def __post_init__(self) -> None:
        self.id = identifier(self.id, "id")
        self.case_id = identifier(self.case_id, "case_id")
        self.type = parse_evidence_type(self.type)
        self.description = text(self.description, "description", max_length=2000, multiline=True)
        self.collected_by = text(self.collected_by, "collected_by")
        self.collected_at = utc(self.collected_at, "collected_at")
        self.collected_location = text(self.collected_location, "collected_location")
        self.seal_number = text(self.seal_number, "seal_number", max_length=64)
        self.seal_condition = parse_seal_condition(self.seal_condition)
        self.storage_location = text(self.storage_location, "storage_location")
        self.registered_by = identifier(self.registered_by, "registered_by")
        self.registered_at = utc(self.registered_at, "registered_at")
        self.custodian = identifier(self.custodian, "custodian")
        if self.parent_id is not None:
            self.parent_id = identifier(self.parent_id, "parent_id")
            if self.parent_id == self.id:
                raise InvalidValue("parent_id", "an item cannot be derived from itself")
        self.acquisition_tool = optional_text(self.acquisition_tool, "acquisition_tool")
        self._check_digital()
        self.status = EvidenceStatus(self.status)
        if self.last_movement_at is None:
            self.last_movement_at = self.registered_at
        else:
            self.last_movement_at = utc(self.last_movement_at, "last_movement_at")

    def _check_digital(self) -> None:
        if self.type not in DIGITAL_TYPES:
            if self.hashes is not None:
                raise InvalidValue("hashes", f"a {self.type} item takes no hashes")
            if self.acquisition_tool is not None:
                raise InvalidValue("acquisition_tool", f"a {self.type} item takes no tool")
            return
        if self.hashes is not None and not isinstance(self.hashes, DigitalHashes):
            raise InvalidValue("hashes", "must be DigitalHashes")
        if self.type is EvidenceType.FORENSIC_IMAGE and self.hashes is None:
            raise InvalidValue("hashes", "a forensic image needs its SHA-256")
        if self.hashes is not None and self.acquisition_tool is None:
            raise InvalidValue("acquisition_tool", "hashes need the tool that computed them")
        if self.hashes is None and self.acquisition_tool is not None:
            raise InvalidValue("hashes", "an acquisition tool needs the hashes it produced")

    @property
    def is_disposed(self) -> bool:
        return self.status is EvidenceStatus.DISPOSED

    @property
    def is_digital(self) -> bool:
        return self.type in DIGITAL_TYPES
