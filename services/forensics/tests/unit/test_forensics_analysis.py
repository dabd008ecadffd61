"""Lab analyses: the happy path, and every rule refused by name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cpu_forensics.domain.analysis import (
    APPLICABLE,
    RESULT_CODES,
    AnalysisStatus,
    AnalysisType,
    LabAnalysis,
    assign_analyst,
    cancel_analysis,
    record_result,
    request_analysis,
    sign_off_result,
    start_analysis,
)
from cpu_forensics.domain.custody import (
    CustodyKind,
    accept_transfer,
    register_evidence,
    request_transfer,
)
from cpu_forensics.domain.evidence import EvidenceItem, EvidenceType
from cpu_forensics.domain.rules import AnalysisRule, AnalysisRuleBroken, InvalidValue

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def swab(type: str = "biological_sample") -> EvidenceItem:
    item, _ = register_evidence(
        item_id="ev-000001",
        case_id="case-000001",
        type=type,
        description="Vaginal swab, kit 2231",
        collected_by="Dr. Sreymom",
        collected_at=T0 - timedelta(hours=3),
        collected_location="Calmette Hospital",
        seal_number="SEAL-0100",
        seal_condition="intact",
        storage_location="HQ cold store",
        registered_by="officer.dara",
        registered_at=T0,
        event_id="evt-000001",
    )
    return item


def hand_to(item: EvidenceItem, user: str, at: datetime) -> None:
    transfer = request_transfer(
        item,
        transfer_id=f"tr-{user}",
        kind=CustodyKind.SENT_TO_LAB,
        from_user=item.custodian,
        to_user=user,
        purpose="DNA analysis",
        location="National lab",
        at=at,
        recorded_at=at,
    )
    accept_transfer(
        item, transfer.transfer_id, by_user=user, at=at, event_id=f"evt-{user}", recorded_at=at
    )


def requested(item: EvidenceItem) -> LabAnalysis:
    return request_analysis(
        item,
        analysis_id="an-000001",
        type="dna_profile",
        requested_by="investigator.bopha",
        purpose="Compare with the suspect's reference sample",
        at=T0 + timedelta(hours=1),
    )


def refused(rule: AnalysisRule) -> pytest.RaisesExc[AnalysisRuleBroken]:
    return pytest.raises(AnalysisRuleBroken, match=f"^{rule.value}: ")


def test_request_assign_examine_report_and_sign_off() -> None:
    item = swab()
    analysis = requested(item)
    assert analysis.status is AnalysisStatus.REQUESTED and analysis.case_id == "case-000001"
    assign_analyst(
        analysis, analyst="analyst.chan", by_user="lab.head.vanna", at=T0 + timedelta(hours=2)
    )
    hand_to(item, "analyst.chan", T0 + timedelta(hours=3))
    start_analysis(analysis, item, by_user="analyst.chan", at=T0 + timedelta(hours=4))
    result = record_result(
        analysis,
        by_user="analyst.chan",
        method="GlobalFiler PCR amplification, 3500xL capillary electrophoresis",
        result_code="full_profile",
        summary="Single-source male profile, 21 loci.",
        at=T0 + timedelta(days=3),
    )
    assert analysis.status is AnalysisStatus.REPORTED and analysis.result == result
    sign_off_result(analysis, by_user="lab.head.vanna", at=T0 + timedelta(days=4))
    assert analysis.status is AnalysisStatus.SIGNED_OFF
    assert analysis.signed_off_by == "lab.head.vanna"
    assert analysis.version == 5  # one bump per step after the request


def test_a_result_sent_back_is_kept_not_erased() -> None:
    item = swab()
    analysis = requested(item)
    assign_analyst(analysis, analyst="analyst.chan", by_user="lab.head", at=T0 + timedelta(hours=2))
    hand_to(item, "analyst.chan", T0 + timedelta(hours=3))
    start_analysis(analysis, item, by_user="analyst.chan", at=T0 + timedelta(hours=4))
    record_result(
        analysis,
        by_user="analyst.chan",
        method="m",
        result_code="partial_profile",
        at=T0 + timedelta(days=1),
    )
    with pytest.raises(InvalidValue):
        sign_off_result(analysis, by_user="lab.head", approve=False, at=T0 + timedelta(days=2))
    sign_off_result(
        analysis,
        by_user="lab.head",
        approve=False,
        note="Re-run locus D21",
        at=T0 + timedelta(days=2),
    )
    assert analysis.status is AnalysisStatus.IN_PROGRESS and analysis.result is None
    assert [r.result_code for r in analysis.superseded_results] == ["partial_profile"]


def test_analysis_not_applicable_and_item_disposed() -> None:
    phone = swab("digital_device")
    with refused(AnalysisRule.ANALYSIS_NOT_APPLICABLE):
        request_analysis(
            phone, analysis_id="an-1", type="toxicology", requested_by="inv.b", purpose="p", at=T0
        )
    item = swab()
    hand_to(item, "officer.rath", T0 + timedelta(minutes=10))
    transfer = request_transfer(
        item,
        transfer_id="tr-d",
        kind="destroyed",
        from_user="officer.rath",
        to_user="officer.keo",
        purpose="court order 12/2025",
        location="Incinerator",
        at=T0 + timedelta(hours=1),
        recorded_at=T0 + timedelta(hours=1),
    )
    accept_transfer(
        item,
        transfer.transfer_id,
        by_user="officer.keo",
        at=T0 + timedelta(hours=1),
        event_id="evt-d",
        recorded_at=T0 + timedelta(hours=1),
    )
    with refused(AnalysisRule.ITEM_DISPOSED):
        requested(item)


def test_every_type_applies_to_something_and_has_codes_that_can_go_to_reporting() -> None:
    for kind in AnalysisType:
        assert APPLICABLE[kind]
        for code in RESULT_CODES[kind]:
            assert code.replace("_", "").isalpha() and code.islower() and len(code) <= 50
    assert EvidenceType.DIGITAL_DEVICE not in APPLICABLE[AnalysisType.DNA_PROFILE]


def test_not_the_analyst_and_analyst_not_custodian() -> None:
    item = swab()
    analysis = requested(item)
    assign_analyst(analysis, analyst="analyst.chan", by_user="lab.head", at=T0 + timedelta(hours=2))
    with refused(AnalysisRule.NOT_THE_ANALYST):
        start_analysis(analysis, item, by_user="analyst.other", at=T0 + timedelta(hours=3))
    with refused(AnalysisRule.ANALYST_NOT_CUSTODIAN):  # the item is still with the officer
        start_analysis(analysis, item, by_user="analyst.chan", at=T0 + timedelta(hours=3))
    hand_to(item, "analyst.chan", T0 + timedelta(hours=3))
    start_analysis(analysis, item, by_user="analyst.chan", at=T0 + timedelta(hours=4))
    with refused(AnalysisRule.NOT_THE_ANALYST):
        record_result(
            analysis,
            by_user="analyst.other",
            method="m",
            result_code="no_profile",
            at=T0 + timedelta(hours=5),
        )


def test_signer_is_analyst_and_unknown_result_code() -> None:
    item = swab()
    analysis = requested(item)
    assign_analyst(analysis, analyst="analyst.chan", by_user="lab.head", at=T0 + timedelta(hours=2))
    hand_to(item, "analyst.chan", T0 + timedelta(hours=3))
    start_analysis(analysis, item, by_user="analyst.chan", at=T0 + timedelta(hours=4))
    with refused(AnalysisRule.UNKNOWN_RESULT_CODE):
        record_result(
            analysis,
            by_user="analyst.chan",
            method="m",
            result_code="matches Mr Sok",
            at=T0 + timedelta(hours=5),
        )
    with refused(AnalysisRule.UNKNOWN_RESULT_CODE):  # a code of another analysis type
        record_result(
            analysis,
            by_user="analyst.chan",
            method="m",
            result_code="device_locked",
            at=T0 + timedelta(hours=5),
        )
    record_result(
        analysis,
        by_user="analyst.chan",
        method="m",
        result_code="mixed_profile",
        at=T0 + timedelta(hours=5),
    )
    with refused(AnalysisRule.SIGNER_IS_ANALYST):
        sign_off_result(analysis, by_user="analyst.chan", at=T0 + timedelta(hours=6))


def test_analysis_wrong_state_and_time_goes_backwards() -> None:
    item = swab()
    analysis = requested(item)
    with refused(AnalysisRule.ANALYSIS_WRONG_STATE):
        record_result(
            analysis,
            by_user="analyst.chan",
            method="m",
            result_code="no_profile",
            at=T0 + timedelta(hours=2),
        )
    with refused(AnalysisRule.ANALYSIS_WRONG_STATE):
        sign_off_result(analysis, by_user="lab.head", at=T0 + timedelta(hours=2))
    with refused(AnalysisRule.TIME_GOES_BACKWARDS):
        assign_analyst(analysis, analyst="analyst.chan", by_user="lab.head", at=T0)
    cancel_analysis(
        analysis,
        by_user="investigator.bopha",
        reason="suspect confessed",
        at=T0 + timedelta(hours=2),
    )
    assert analysis.status is AnalysisStatus.CANCELLED
    with refused(AnalysisRule.ANALYSIS_WRONG_STATE):
        assign_analyst(
            analysis, analyst="analyst.chan", by_user="lab.head", at=T0 + timedelta(hours=3)
        )


def test_every_analysis_rule_is_exercised_by_these_tests() -> None:
    import pathlib

    source = pathlib.Path(__file__).read_text()
    assert [r.name for r in AnalysisRule if f"AnalysisRule.{r.name}" not in source] == []
