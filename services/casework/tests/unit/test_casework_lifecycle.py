"""The case state machine: every legal transition, the illegal ones, and what each requires."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest

from cpu_casework.domain import events as ev
from cpu_casework.domain import lifecycle
from cpu_casework.domain.case import Case, Child
from cpu_casework.domain.errors import NotAllowedInStatus, ReasonRequired
from cpu_casework.domain.lifecycle import (
    CLOSED_STATUSES,
    STATUSES,
    TRANSITIONS,
    IllegalTransition,
    TransitionRequirementNotMet,
)
from cpu_casework.domain.outcomes import ACQUITTED, CONVICTED, Sentence

OPENED = datetime(2025, 3, 10, 2, 0, tzinfo=UTC)  # 09:00 in Phnom Penh
NOW = OPENED + timedelta(days=3)
TODAY = date(2025, 3, 13)
SUSPECT = "suspect-0001"


def open_case() -> Case:
    case = Case.open(
        case_id="case-00000001",
        origin="referral",
        origin_id="referral-0001",
        opened_at=OPENED,
        priority="P1",
        province_code="12",
        concerns=["sexual_abuse"],
        teams=["OVCS"],
        children=[Child("child-00001", 12, "female")],
        referral_received_at=OPENED - timedelta(hours=1),
    )
    case.pull_events()
    return case


def prepare_for(case: Case, target: str) -> None:
    """Record the facts ``target`` requires, as an officer would before moving the case."""
    if target == "under_investigation" and case.current_assignment is None:
        case.assign(
            "OVCS",
            investigator_id="inv-sokha",
            investigator_province_code="12",
            by="supervisor-1",
            now=NOW,
        )
    elif target == "suspect_identified":
        case.add_suspect(SUSPECT, details_ref="enc1.sealed", by="inv-sokha", now=NOW)
    elif target == "arrest_made":
        case.record_arrest(SUSPECT, arrested_on=TODAY, by="inv-sokha", now=NOW)
    elif target == "charged":
        case.record_charge(
            SUSPECT, offence_codes=["LSHTSE-2008-art-43"], charged_on=TODAY, by="inv-sokha", now=NOW
        )
    elif target == "closed_convicted":
        case.record_court_outcome(
            SUSPECT,
            outcome=CONVICTED,
            decided_on=TODAY,
            sentence=Sentence(years=2),
            by="inv-sokha",
            now=NOW,
        )
    elif target == "closed_acquitted":
        case.record_court_outcome(
            SUSPECT, outcome=ACQUITTED, decided_on=TODAY, by="inv-sokha", now=NOW
        )


def move(case: Case, target: str) -> None:
    prepare_for(case, target)
    case.transition(
        target,
        by="inv-sokha",
        now=NOW,
        reason_code="test_step",
        reason_text="a reason on the record",
    )


# The shortest walk from ``open`` to each status, through legal transitions only.
PATHS: dict[str, list[str]] = {
    "open": [],
    "under_investigation": ["under_investigation"],
    "suspect_identified": ["under_investigation", "suspect_identified"],
    "arrest_made": ["under_investigation", "suspect_identified", "arrest_made"],
    "charged": ["under_investigation", "suspect_identified", "arrest_made", "charged"],
    "in_court": ["under_investigation", "suspect_identified", "arrest_made", "charged", "in_court"],
    "closed_convicted": [
        "under_investigation",
        "suspect_identified",
        "arrest_made",
        "charged",
        "in_court",
        "closed_convicted",
    ],
    "closed_acquitted": [
        "under_investigation",
        "suspect_identified",
        "arrest_made",
        "charged",
        "in_court",
        "closed_acquitted",
    ],
    "closed_unfounded": ["closed_unfounded"],
    "closed_transferred": ["closed_transferred"],
    "reopened": ["closed_unfounded", "reopened"],
}


def case_in(status: str) -> Case:
    case = open_case()
    for step in PATHS[status]:
        move(case, step)
    assert case.status == status
    case.pull_events()
    return case


def test_every_status_has_a_path_and_a_row() -> None:
    assert set(PATHS) == set(STATUSES)
    assert set(TRANSITIONS) == set(STATUSES)


def test_every_status_is_reachable_and_none_is_a_dead_end() -> None:
    reached, frontier = {"open"}, ["open"]
    while frontier:
        for target in TRANSITIONS[frontier.pop()]:
            if target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(STATUSES)
    assert all(TRANSITIONS[status] for status in STATUSES)


@pytest.mark.parametrize(("source", "target"), lifecycle.legal_transitions())
def test_every_legal_transition_succeeds(source: str, target: str) -> None:
    case = case_in(source)
    version = case.version
    prepare_for(case, target)

    record = case.transition(
        target, by="inv-dara", now=NOW, reason_code="officer_decision", reason_text="why, in words"
    )

    assert case.status == target
    assert (record.from_status, record.to_status, record.by, record.at) == (
        source,
        target,
        "inv-dara",
        NOW,
    )
    assert record.reason_code == "officer_decision"
    assert record.reason_text == "why, in words"
    assert case.transitions[-1] == record
    assert case.version > version
    events = case.pull_events()
    changed = [e for e in events if isinstance(e, ev.CaseStatusChanged)]
    assert changed == [
        ev.CaseStatusChanged(
            case_id=case.case_id,
            from_status=source,
            to_status=target,
            reason_code="officer_decision",
            changed_at=NOW,
            changed_by="inv-dara",
        )
    ]
    closed = [e for e in events if isinstance(e, ev.CaseClosed)]
    if target in CLOSED_STATUSES:
        assert closed == [
            ev.CaseClosed(case_id=case.case_id, status=target, closed_at=NOW, child_homicide=False)
        ]
    else:
        assert closed == []


ILLEGAL = [
    (source, target)
    for source in STATUSES
    for target in STATUSES
    if target not in TRANSITIONS[source]
]


@pytest.mark.parametrize(("source", "target"), ILLEGAL)
def test_every_illegal_transition_is_refused_with_the_allowed_list(
    source: str, target: str
) -> None:
    case = case_in(source)
    version, history = case.version, list(case.transitions)
    with pytest.raises(IllegalTransition) as caught:
        case.transition(
            target, by="inv-dara", now=NOW, reason_code="try", reason_text="trying anyway"
        )
    assert caught.value.current == source
    assert caught.value.requested == target
    assert caught.value.allowed == list(TRANSITIONS[source])
    assert caught.value.rule == "illegal_transition"
    assert (case.status, case.version, case.transitions) == (source, version, history)
    assert case.pull_events() == []


@pytest.mark.parametrize(
    ("source", "target", "allowed"),
    [
        ("open", "charged", ["under_investigation", "closed_unfounded", "closed_transferred"]),
        (
            "open",
            "closed_convicted",
            ["under_investigation", "closed_unfounded", "closed_transferred"],
        ),
        (
            "under_investigation",
            "arrest_made",
            ["suspect_identified", "closed_unfounded", "closed_transferred"],
        ),
        ("arrest_made", "closed_unfounded", ["charged", "closed_transferred"]),
        ("charged", "closed_convicted", ["in_court", "closed_transferred"]),
        (
            "in_court",
            "closed_unfounded",
            ["closed_convicted", "closed_acquitted", "closed_transferred"],
        ),
        ("closed_convicted", "open", ["reopened"]),
        ("closed_acquitted", "in_court", ["reopened"]),
        ("closed_transferred", "under_investigation", ["reopened"]),
        ("reopened", "suspect_identified", ["under_investigation", "closed_transferred"]),
        (
            "suspect_identified",
            "suspect_identified",
            ["arrest_made", "closed_unfounded", "closed_transferred"],
        ),
    ],
)
def test_illegal_transition_samples_name_the_allowed_statuses(
    source: str, target: str, allowed: list[str]
) -> None:
    case = case_in(source)
    with pytest.raises(IllegalTransition) as caught:
        case.transition(target, by="inv-dara", now=NOW, reason_code="try", reason_text="x")
    assert caught.value.allowed == allowed
    assert case.allowed_transitions() == allowed


def test_the_docstring_table_is_the_table() -> None:
    rows = re.findall(r"^    ([a-z_]+)\s+([a-z_]+)\s+\S.*$", lifecycle.__doc__ or "", re.M)
    documented = [(src, dst) for src, dst in rows if src in STATUSES and dst in STATUSES]
    assert sorted(documented) == sorted(lifecycle.legal_transitions())


def test_unknown_status_is_an_invalid_value() -> None:
    case = case_in("open")
    with pytest.raises(ValueError, match="unknown status"):
        case.transition("archived", by="inv-dara", now=NOW, reason_code="try")


# --------------------------------------------------------------------------- requirements


@pytest.mark.parametrize(
    ("source", "target", "requirement"),
    [
        ("open", "under_investigation", "case_assigned"),
        ("under_investigation", "suspect_identified", "suspect_recorded"),
        ("suspect_identified", "arrest_made", "arrest_recorded"),
        ("arrest_made", "charged", "charge_recorded"),
        ("in_court", "closed_convicted", "conviction_recorded"),
        ("in_court", "closed_acquitted", "acquittal_only"),
    ],
)
def test_a_transition_without_its_fact_is_refused(
    source: str, target: str, requirement: str
) -> None:
    case = case_in(source)
    with pytest.raises(TransitionRequirementNotMet) as caught:
        case.transition(target, by="inv-dara", now=NOW, reason_code="try")
    assert caught.value.requirement == requirement
    assert case.status == source


def test_a_case_with_a_conviction_cannot_close_as_acquitted() -> None:
    case = case_in("in_court")
    prepare_for(case, "closed_convicted")
    with pytest.raises(TransitionRequirementNotMet) as caught:
        case.transition("closed_acquitted", by="inv-dara", now=NOW, reason_code="verdict")
    assert caught.value.requirement == "acquittal_only"


def test_a_case_is_not_closed_while_a_charged_co_accused_awaits_judgment() -> None:
    case = case_in("in_court")
    case.add_suspect("suspect-0002", details_ref="enc1.other", by="inv-sokha", now=NOW)
    case.record_arrest("suspect-0002", arrested_on=TODAY, by="inv-sokha", now=NOW)
    case.record_charge(
        "suspect-0002", offence_codes=["CC-2009-art-239"], charged_on=TODAY, by="inv-sokha", now=NOW
    )
    prepare_for(case, "closed_convicted")
    with pytest.raises(TransitionRequirementNotMet) as caught:
        case.transition("closed_convicted", by="inv-dara", now=NOW, reason_code="verdict")
    assert caught.value.requirement == "outcome_for_every_charged_suspect"

    case.record_court_outcome(
        "suspect-0002", outcome=ACQUITTED, decided_on=TODAY, by="inv-sokha", now=NOW
    )
    case.transition("closed_convicted", by="inv-dara", now=NOW, reason_code="verdict")
    assert case.status == "closed_convicted"


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("open", "closed_unfounded"),
        ("in_court", "closed_transferred"),
        ("closed_acquitted", "reopened"),
    ],
)
def test_discretionary_decisions_need_a_written_reason(source: str, target: str) -> None:
    case = case_in(source)
    for text in (None, "", "   "):
        with pytest.raises(ReasonRequired):
            case.transition(
                target, by="supervisor-1", now=NOW, reason_code="decision", reason_text=text
            )
    assert case.status == source


@pytest.mark.parametrize("code", ["", "Unfounded", "no reason", "x", "a" * 51, None])
def test_a_reason_code_is_required_and_is_a_code(code: object) -> None:
    case = case_in("open")
    with pytest.raises(ValueError, match="reason_code"):
        case.transition(
            "closed_unfounded",
            by="supervisor-1",
            now=NOW,
            reason_code=code,  # type: ignore[arg-type]
            reason_text="no abuse found",
        )


def test_reason_text_stays_on_the_case_and_out_of_events() -> None:
    case = case_in("open")
    case.transition(
        "closed_unfounded",
        by="supervisor-1",
        now=NOW,
        reason_code="no_evidence_of_abuse",
        reason_text="Home visit: the bruises were from a fall at school.",
    )
    events = case.pull_events()
    assert (case.transitions[-1].reason_text or "").startswith("Home visit")
    assert all("Home visit" not in repr(event) for event in events)


def test_reopening_starts_a_new_cycle_whose_facts_must_be_recorded_again() -> None:
    case = case_in("closed_convicted")
    move(case, "reopened")
    assert case.cycle == 2
    move(case, "under_investigation")  # the assignment carries over
    # The suspect is still on the case...
    case.transition("suspect_identified", by="inv-dara", now=NOW, reason_code="same_suspect")
    # ...but the old arrest does not count in the new cycle.
    with pytest.raises(TransitionRequirementNotMet) as caught:
        case.transition("arrest_made", by="inv-dara", now=NOW, reason_code="arrested")
    assert caught.value.requirement == "arrest_recorded"
    for step in ("arrest_made", "charged", "in_court"):
        move(case, step)
    with pytest.raises(TransitionRequirementNotMet):
        case.transition("closed_convicted", by="inv-dara", now=NOW, reason_code="verdict")
    move(case, "closed_acquitted")
    assert [t.cycle for t in case.transitions][-1] == 2


# --------------------------------------------------------------------------- facts per status


def test_facts_can_only_be_recorded_in_their_statuses() -> None:
    case = case_in("under_investigation")
    case.add_suspect(SUSPECT, details_ref="enc1.sealed", by="inv-sokha", now=NOW)
    with pytest.raises(NotAllowedInStatus) as caught:
        case.record_arrest(SUSPECT, arrested_on=TODAY, by="inv-sokha", now=NOW)
    assert caught.value.allowed == sorted(lifecycle.RECORDABLE_IN["arrest"])

    case = case_in("suspect_identified")
    with pytest.raises(NotAllowedInStatus):
        case.record_charge(
            SUSPECT, offence_codes=["CC-2009-art-239"], charged_on=TODAY, by="inv-sokha", now=NOW
        )

    case = case_in("charged")
    with pytest.raises(NotAllowedInStatus):
        case.record_court_outcome(
            SUSPECT, outcome=ACQUITTED, decided_on=TODAY, by="inv-sokha", now=NOW
        )


@pytest.mark.parametrize("status", sorted(CLOSED_STATUSES))
def test_a_closed_case_takes_no_investigation_facts_but_still_takes_services(status: str) -> None:
    case = case_in(status)
    with pytest.raises(NotAllowedInStatus):
        case.add_suspect("suspect-0009", details_ref="enc1.x", by="inv-sokha", now=NOW)
    with pytest.raises(NotAllowedInStatus):
        case.assign("HIT", by="supervisor-1", now=NOW, reason_code="late")
    record = case.record_victim_service(
        "child-00001",
        service="psychological_counselling",
        provider_code="ngo:aple",
        provided_on=TODAY,
        by="ovcs-1",
        now=NOW,
    )
    assert record is not None
