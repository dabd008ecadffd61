"""Evidence items: what an item is, checked every time one is built."""

from __future__ import annotations

import dataclasses
import typing
from datetime import UTC, datetime, timedelta, timezone

import pytest

from cpu_forensics.domain.analysis import AnalysisType
from cpu_forensics.domain.custody import MOVEMENT_KINDS, register_evidence
from cpu_forensics.domain.evidence import DigitalHashes, EvidenceItem, EvidenceType
from cpu_forensics.domain.rules import InvalidValue

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
MD5 = "098f6bcd4621d373cade4e832627b4f6"
SHA1 = "a94a8fe5ccb20ba61c4c0823fd8d4b6ebd9ac8d8"


def register(**overrides: object) -> EvidenceItem:
    fields: dict[str, object] = {
        "item_id": "ev-000001",
        "case_id": "case-000001",
        "type": "digital_device",
        "description": "Black Samsung A14, IMEI 356789104567891, screen cracked",
        "collected_by": "officer.dara",
        "collected_at": T0 - timedelta(hours=1),
        "collected_location": "Suspect's room, Toul Kork",
        "seal_number": "SEAL-0042",
        "seal_condition": "intact",
        "storage_location": "Digital store, locker 7",
        "registered_by": "officer.dara",
        "registered_at": T0,
        "event_id": "evt-000001",
    }
    fields.update(overrides)
    item, _ = register_evidence(**fields)  # type: ignore[arg-type]
    return item


def test_a_forensic_image_needs_its_sha256_and_the_tool() -> None:
    with pytest.raises(InvalidValue) as e:
        register(type="forensic_image")
    assert e.value.field == "hashes"
    with pytest.raises(InvalidValue) as e:
        register(type="forensic_image", hashes=DigitalHashes(sha256=SHA256))
    assert e.value.field == "acquisition_tool"
    item = register(
        type="forensic_image",
        hashes=DigitalHashes(sha256=SHA256.upper(), md5=MD5, sha1=SHA1),
        acquisition_tool="Cellebrite UFED 7.60",
    )
    assert item.hashes is not None and item.hashes.sha256 == SHA256  # one spelling: lower case


def test_a_device_may_be_registered_before_it_is_imaged_but_hashes_need_a_tool() -> None:
    assert register().hashes is None
    with pytest.raises(InvalidValue) as e:
        register(hashes=DigitalHashes(sha256=SHA256))
    assert e.value.field == "acquisition_tool"
    with pytest.raises(InvalidValue) as e:
        register(acquisition_tool="FTK Imager 4.7")
    assert e.value.field == "hashes"


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("hashes.sha256", {"sha256": SHA256[:-1]}),
        ("hashes.sha256", {"sha256": SHA256[:-1] + "g"}),
        ("hashes.sha256", {"sha256": MD5}),
        ("hashes.md5", {"sha256": SHA256, "md5": SHA1}),
        ("hashes.sha1", {"sha256": SHA256, "sha1": MD5}),
    ],
)
def test_hashes_are_validated(field: str, kwargs: dict[str, str]) -> None:
    with pytest.raises(InvalidValue) as e:
        DigitalHashes(**kwargs)
    assert e.value.field == field


def test_physical_items_take_no_hashes_or_tool() -> None:
    with pytest.raises(InvalidValue):
        register(type="clothing", hashes=DigitalHashes(sha256=SHA256), acquisition_tool="x")
    with pytest.raises(InvalidValue):
        register(type="blood", acquisition_tool="FTK Imager")


def test_no_field_can_take_content() -> None:
    names = {f.name for f in dataclasses.fields(EvidenceItem)}
    assert not names & {"content", "file", "data", "blob", "image_bytes", "payload"}
    with pytest.raises(TypeError):
        register(content=b"\x89PNG...")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("collected_at", datetime(2025, 3, 1, 7, 0)),  # naive: refused
        ("registered_at", datetime(2025, 3, 1, 8, 0)),
        ("type", "weapon"),
        ("seal_condition", "pristine"),
        ("description", "   "),
        ("seal_number", "SEAL\x00042"),
        ("registered_by", "officer dara"),
        ("item_id", ""),
    ],
)
def test_malformed_values_are_refused_by_field(field: str, value: object) -> None:
    names = {"item_id": "id"}
    with pytest.raises(InvalidValue) as e:
        register(**{field: value})
    assert e.value.field == names.get(field, field)


def test_text_is_normalised_to_one_spelling() -> None:
    decomposed = "Cafe\u0301 store"  # e + combining acute
    item = register(storage_location=decomposed)
    assert item.storage_location == "Caf\u00e9 store"


def test_times_are_kept_in_utc() -> None:
    phnom_penh = datetime(2025, 3, 1, 22, 0, tzinfo=timezone(timedelta(hours=7)))
    item = register(registered_at=phnom_penh, collected_at=phnom_penh)
    assert item.registered_at.tzinfo is UTC
    assert item.registered_at == datetime(2025, 3, 1, 15, 0, tzinfo=UTC)


def test_vocabularies_match_the_event_contracts() -> None:
    # The domain keeps its own lists so it imports nothing heavy; this pins them to shared/.
    from cpu_shared.contracts.codes import AnalysisType as ContractAnalysis
    from cpu_shared.contracts.codes import CustodyKind as ContractCustody
    from cpu_shared.contracts.codes import EvidenceType as ContractEvidence

    assert {t.value for t in EvidenceType} == set(typing.get_args(ContractEvidence))
    assert {k.value for k in MOVEMENT_KINDS} == set(typing.get_args(ContractCustody))
    assert {a.value for a in AnalysisType} == set(typing.get_args(ContractAnalysis))
