"""Suspects, arrests, charges, court outcomes, sentences and the offence table."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from cpu_casework.domain import events as ev
from cpu_casework.domain.case import Case, Child
from cpu_casework.domain.errors import (
    DateBeforeCaseOpened,
    DateInFuture,
    DuplicateRecord,
    InvalidValue,
    UnknownSuspect,
)
from cpu_casework.domain.offences import (
    Offence,
    OffenceTable,
    UnknownOffence,
    default_offence_table,
)
from cpu_casework.domain.outcomes import (
    ACQUITTED,
    CONVICTED,
    MAX_SENTENCE_YEARS,
    InvalidSentence,
    Sentence,
    SuspectNotCharged,
)

OPENED = datetime(2025, 3, 10, 2, 0, tzinfo=UTC)  # 10 March, 09:00 in Phnom Penh
NOW = datetime(2025, 3, 20, 2, 0, tzinfo=UTC)  # 20 March, 09:00 in Phnom Penh
TODAY = date(2025, 3, 20)
SUSPECT = "suspect-0001"


def case_in(status: str) -> Case:
    """A case walked to ``under_investigation`` .. ``in_court``, with one suspect."""
    case = Case.open(
        case_id="case-00000001",
        origin="referral",
        origin_id="referral-0001",
        opened_at=OPENED,
        priority="P1",
        province_code="12",
        concerns=["rape"],
        teams=["OVCS"],
        children=[Child("child-00001", 13, "female")],
        referral_received_at=OPENED,
    )
    case.assign("OVCS", by="supervisor-1", now=OPENED)
    steps = ["under_investigation", "suspect_identified", "arrest_made", "charged", "in_court"]
    for step in steps[: steps.index(status) + 1]:
        if step == "suspect_identified":
            case.add_suspect(SUSPECT, details_ref="enc1.k1.sealed-details", by="inv-1", now=NOW)
        if step == "arrest_made":
            case.record_arrest(SUSPECT, arrested_on=date(2025, 3, 12), by="inv-1", now=NOW)
        if step == "charged":
            case.record_charge(
                SUSPECT,
                offence_codes=["CC-2009-art-239", "LSHTSE-2008-art-42"],
                charged_on=date(2025, 3, 13),
                by="inv-1",
                now=NOW,
            )
        case.transition(step, by="inv-1", now=NOW, reason_code="next_step")
    case.pull_events()
    return case


# --------------------------------------------------------------------------- suspects


def test_a_suspect_is_an_id_and_a_sealed_reference_kept_out_of_sight() -> None:
    case = case_in("under_investigation")
    suspect = case.add_suspect(SUSPECT, details_ref="enc1.k1.SECRET", by="inv-1", now=NOW)
    assert suspect is not None and suspect.details_ref == "enc1.k1.SECRET"
    assert "SECRET" not in repr(suspect)
    assert "SECRET" not in repr(case.pull_events())
    # The same suspect again is a retry.
    assert case.add_suspect(SUSPECT, details_ref="enc1.k1.OTHER", by="inv-1", now=NOW) is None
    with pytest.raises(InvalidValue):
        case.add_suspect("suspect-0002", details_ref="", by="inv-1", now=NOW)


# --------------------------------------------------------------------------- arrests


def test_an_arrest_is_recorded_with_its_date_and_suspect() -> None:
    case = case_in("suspect_identified")
    arrest = case.record_arrest(SUSPECT, arrested_on=date(2025, 3, 11), by="inv-1", now=NOW)
    assert arrest is not None and arrest.cycle == 1
    assert case.pull_events() == [
        ev.CaseSuspectArrested(
            case_id=case.case_id,
            suspect_id=SUSPECT,
            arrested_on=date(2025, 3, 11),
            province_code="12",
        )
    ]
    # The same arrest again is a retry; another date is another arrest (after an escape).
    assert case.record_arrest(SUSPECT, arrested_on=date(2025, 3, 11), by="inv-1", now=NOW) is None
    assert case.record_arrest(SUSPECT, arrested_on=date(2025, 3, 15), by="inv-1", now=NOW)


def test_an_arrest_is_not_in_the_future_nor_before_the_case_opened() -> None:
    case = case_in("suspect_identified")
    with pytest.raises(DateInFuture):
        case.record_arrest(SUSPECT, arrested_on=TODAY + timedelta(days=1), by="inv-1", now=NOW)
    with pytest.raises(DateBeforeCaseOpened):
        case.record_arrest(SUSPECT, arrested_on=date(2025, 3, 9), by="inv-1", now=NOW)
    assert case.record_arrest(SUSPECT, arrested_on=date(2025, 3, 10), by="inv-1", now=NOW)
    assert case.record_arrest(SUSPECT, arrested_on=TODAY, by="inv-1", now=NOW)


def test_today_means_today_in_cambodia() -> None:
    case = case_in("suspect_identified")
    late_evening_utc = datetime(2025, 3, 20, 20, 0, tzinfo=UTC)  # 21 March, 03:00 in Phnom Penh
    assert case.record_arrest(
        SUSPECT, arrested_on=date(2025, 3, 21), by="inv-1", now=late_evening_utc
    )
    with pytest.raises(DateInFuture):
        case.record_arrest(SUSPECT, arrested_on=date(2025, 3, 22), by="inv-1", now=late_evening_utc)


@pytest.mark.parametrize("value", ["2025-03-12", datetime(2025, 3, 12, tzinfo=UTC), None])
def test_an_arrest_date_is_a_date(value: object) -> None:
    case = case_in("suspect_identified")
    with pytest.raises(InvalidValue):
        case.record_arrest(SUSPECT, arrested_on=value, by="inv-1", now=NOW)


def test_an_arrest_names_a_suspect_on_the_case() -> None:
    case = case_in("suspect_identified")
    with pytest.raises(UnknownSuspect):
        case.record_arrest("suspect-9999", arrested_on=TODAY, by="inv-1", now=NOW)


# --------------------------------------------------------------------------- charges


def test_a_charge_names_offences_from_the_table() -> None:
    case = case_in("arrest_made")
    charge = case.record_charge(
        SUSPECT,
        offence_codes=["LSHTSE-2008-art-43", "CC-2009-art-246", "LSHTSE-2008-art-43"],
        charged_on=date(2025, 3, 14),
        by="inv-1",
        now=NOW,
    )
    assert charge is not None
    assert charge.offence_codes == ("LSHTSE-2008-art-43", "CC-2009-art-246")
    assert case.pull_events() == [
        ev.CaseCharged(
            case_id=case.case_id,
            suspect_id=SUSPECT,
            offence_codes=("LSHTSE-2008-art-43", "CC-2009-art-246"),
            charged_on=date(2025, 3, 14),
        )
    ]


@pytest.mark.parametrize(
    "codes",
    [["CC-2009-art-9999"], ["CC-art-239"], ["rape"], ["LSHTSE-2008-art-34", "CC-2009-art-1"]],
)
def test_an_unknown_offence_code_is_refused(codes: list[str]) -> None:
    case = case_in("arrest_made")
    with pytest.raises(UnknownOffence):
        case.record_charge(SUSPECT, offence_codes=codes, charged_on=TODAY, by="inv-1", now=NOW)
    assert case.charges == []


@pytest.mark.parametrize("codes", [[], "CC-2009-art-239"])
def test_a_charge_needs_a_list_of_codes(codes: object) -> None:
    case = case_in("arrest_made")
    with pytest.raises(InvalidValue):
        case.record_charge(
            SUSPECT,
            offence_codes=codes,  # type: ignore[arg-type]
            charged_on=TODAY,
            by="inv-1",
            now=NOW,
        )


def test_a_charge_date_follows_the_date_rules() -> None:
    case = case_in("arrest_made")
    with pytest.raises(DateInFuture):
        case.record_charge(
            SUSPECT,
            offence_codes=["CC-2009-art-239"],
            charged_on=TODAY + timedelta(days=1),
            by="inv-1",
            now=NOW,
        )
    with pytest.raises(DateBeforeCaseOpened):
        case.record_charge(
            SUSPECT,
            offence_codes=["CC-2009-art-239"],
            charged_on=date(2025, 1, 1),
            by="inv-1",
            now=NOW,
        )


# --------------------------------------------------------------------------- court outcomes


def test_a_conviction_with_its_sentence() -> None:
    case = case_in("in_court")
    outcome = case.record_court_outcome(
        SUSPECT,
        outcome=CONVICTED,
        decided_on=date(2025, 3, 19),
        sentence=Sentence(years=7, months=6),
        by="clerk-1",
        now=NOW,
    )
    assert outcome is not None and outcome.sentence_months == 90
    # The offences default to the suspect's charges.
    assert case.pull_events() == [
        ev.CaseCourtOutcomeRecorded(
            case_id=case.case_id,
            suspect_id=SUSPECT,
            outcome=CONVICTED,
            offence_codes=("CC-2009-art-239", "LSHTSE-2008-art-42"),
            sentence_months=90,
            decided_on=date(2025, 3, 19),
        )
    ]


def test_the_court_may_requalify_within_the_table() -> None:
    case = case_in("in_court")
    outcome = case.record_court_outcome(
        SUSPECT,
        outcome=CONVICTED,
        decided_on=TODAY,
        offence_codes=["CC-2009-art-246"],
        sentence=Sentence(years=1),
        by="clerk-1",
        now=NOW,
    )
    assert outcome is not None and outcome.offence_codes == ("CC-2009-art-246",)
    case2 = case_in("in_court")
    with pytest.raises(UnknownOffence):
        case2.record_court_outcome(
            SUSPECT,
            outcome=CONVICTED,
            decided_on=TODAY,
            offence_codes=["CC-2009-art-1"],
            by="clerk-1",
            now=NOW,
        )


def test_a_conviction_without_custody_and_an_acquittal_carry_zero_months() -> None:
    case = case_in("in_court")
    outcome = case.record_court_outcome(
        SUSPECT, outcome=CONVICTED, decided_on=TODAY, by="clerk-1", now=NOW
    )
    assert outcome is not None and outcome.sentence_months == 0
    case2 = case_in("in_court")
    acquittal = case2.record_court_outcome(
        SUSPECT, outcome=ACQUITTED, decided_on=TODAY, by="clerk-1", now=NOW
    )
    assert acquittal is not None and acquittal.sentence is None


def test_an_acquittal_has_no_sentence() -> None:
    case = case_in("in_court")
    with pytest.raises(InvalidSentence):
        case.record_court_outcome(
            SUSPECT,
            outcome=ACQUITTED,
            decided_on=TODAY,
            sentence=Sentence(years=1),
            by="clerk-1",
            now=NOW,
        )


@pytest.mark.parametrize(
    ("years", "months"),
    [(0, 0), (1, 12), (0, -1), (-1, 6), (MAX_SENTENCE_YEARS + 1, 0), (2.5, 0), (True, 0), (1, "6")],
)
def test_sentence_validation(years: object, months: object) -> None:
    with pytest.raises(InvalidSentence):
        Sentence(years=years, months=months)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("years", "months", "total"), [(0, 1, 1), (0, 11, 11), (1, 0, 12), (30, 11, 371)]
)
def test_valid_sentences(years: int, months: int, total: int) -> None:
    assert Sentence(years=years, months=months).total_months == total


def test_an_unknown_outcome_is_refused() -> None:
    case = case_in("in_court")
    with pytest.raises(InvalidValue):
        case.record_court_outcome(
            SUSPECT, outcome="dismissed", decided_on=TODAY, by="clerk-1", now=NOW
        )


def test_a_court_outcome_needs_a_charged_suspect_and_follows_the_charge() -> None:
    case = case_in("in_court")
    case.add_suspect("suspect-0002", details_ref="enc1.x", by="inv-1", now=NOW)
    with pytest.raises(SuspectNotCharged):
        case.record_court_outcome(
            "suspect-0002", outcome=ACQUITTED, decided_on=TODAY, by="clerk-1", now=NOW
        )
    with pytest.raises(InvalidValue, match="before the charge"):
        case.record_court_outcome(
            SUSPECT, outcome=ACQUITTED, decided_on=date(2025, 3, 12), by="clerk-1", now=NOW
        )
    with pytest.raises(DateInFuture):
        case.record_court_outcome(
            SUSPECT, outcome=ACQUITTED, decided_on=TODAY + timedelta(days=1), by="clerk-1", now=NOW
        )


def test_one_court_outcome_per_suspect() -> None:
    case = case_in("in_court")
    kwargs = {
        "outcome": CONVICTED,
        "decided_on": TODAY,
        "sentence": Sentence(years=3),
        "by": "clerk-1",
        "now": NOW,
    }
    assert case.record_court_outcome(SUSPECT, **kwargs) is not None  # type: ignore[arg-type]
    assert case.record_court_outcome(SUSPECT, **kwargs) is None  # type: ignore[arg-type]
    with pytest.raises(DuplicateRecord):
        case.record_court_outcome(SUSPECT, **{**kwargs, "sentence": Sentence(years=4)})  # type: ignore[arg-type]
    assert len(case.court_outcomes) == 1


# --------------------------------------------------------------------------- offence table


def test_the_shipped_offence_table() -> None:
    table = default_offence_table()
    assert 15 <= len(table) <= 25
    assert {o.law for o in table} == {"LSHTSE-2008", "CC-2009"}
    assert set(table.laws) == {"LSHTSE-2008", "CC-2009"}
    for offence in table:
        assert offence.code == f"{offence.law}-art-{offence.article}"
        assert offence.title_en
    assert table.get("CC-2009-art-239").title_en == "Rape"
    assert table.get("LSHTSE-2008-art-34").title_en == "Purchase of child prostitution"
    assert "LSHTSE-2008-art-43" in table
    with pytest.raises(UnknownOffence):
        table.get("CC-2009-art-0")


@pytest.mark.parametrize(
    "offences",
    [
        [Offence("CC-2009-art-239", "Rape", "CC-2009", 240)],
        [Offence("CC-2009-art-239", "Rape", "LSHTSE-2008", 239)],
        [Offence("PC-1992-art-33", "Rape", "PC-1992", 33)],
        [Offence("CC-2009-art-239", " ", "CC-2009", 239)],
        [Offence("CC-2009-art-239", "Rape", "CC-2009", 239)] * 2,
    ],
)
def test_a_malformed_offence_table_is_refused(offences: list[Offence]) -> None:
    with pytest.raises(ValueError):
        OffenceTable(offences)


def test_charges_can_use_another_table() -> None:
    table = OffenceTable([Offence("CC-2009-art-199", "Murder", "CC-2009", 199)])
    case = case_in("arrest_made")
    with pytest.raises(UnknownOffence):
        case.record_charge(
            SUSPECT,
            offence_codes=["CC-2009-art-239"],
            charged_on=TODAY,
            by="inv-1",
            now=NOW,
            offences=table,
        )
    assert case.record_charge(
        SUSPECT,
        offence_codes=["CC-2009-art-199"],
        charged_on=TODAY,
        by="inv-1",
        now=NOW,
        offences=table,
    )
