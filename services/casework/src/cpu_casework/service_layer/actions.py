"""Each officer command as a function of the case, built from its request body.

The API and the pages both build their commands here, so a form and a JSON request run the
same domain method with the same arguments. ``by`` is the verified user id of the caller.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cpu_casework.adapters.schemas import (
    ArrestCreate,
    AssignmentCreate,
    ChargeCreate,
    CourtOutcomeCreate,
    FirstContactCreate,
    SuspectCreate,
    TransitionCreate,
    VictimServiceCreate,
)
from cpu_casework.domain.case import Case
from cpu_casework.domain.offences import OffenceTable
from cpu_casework.domain.outcomes import Sentence
from cpu_casework.service_layer.views import seal_suspect
from cpu_shared.security.crypto import FieldCipher

Command = Callable[[Case, datetime], Any]


def assign(body: AssignmentCreate, by: str) -> Command:
    def run(case: Case, now: datetime) -> Any:
        return case.assign(
            body.team,
            by=by,
            now=now,
            investigator_id=body.investigator_id,
            investigator_province_code=body.investigator_province_code,
            reason_code=body.reason_code,
            reason_text=body.reason_text,
        )

    return run


def transition(body: TransitionCreate, by: str) -> Command:
    def run(case: Case, now: datetime) -> Any:
        return case.transition(
            body.to_status,
            by=by,
            now=now,
            reason_code=body.reason_code,
            reason_text=body.reason_text,
        )

    return run


def add_suspect(body: SuspectCreate, by: str, cipher: FieldCipher) -> tuple[str, Command]:
    """The new suspect's id (generated now, so the details are sealed to their row) and the
    command. Details are encrypted before the domain sees them."""
    suspect_id = str(uuid.uuid4())
    token = seal_suspect(cipher, suspect_id, body.details)

    def run(case: Case, now: datetime) -> Any:
        return case.add_suspect(suspect_id, details_ref=token, by=by, now=now)

    return suspect_id, run


def record_arrest(body: ArrestCreate, by: str) -> Command:
    def run(case: Case, now: datetime) -> Any:
        return case.record_arrest(
            str(body.suspect_id), arrested_on=body.arrested_on, by=by, now=now
        )

    return run


def record_charge(body: ChargeCreate, by: str, offences: OffenceTable) -> Command:
    def run(case: Case, now: datetime) -> Any:
        return case.record_charge(
            str(body.suspect_id),
            offence_codes=body.offence_codes,
            charged_on=body.charged_on,
            by=by,
            now=now,
            offences=offences,
        )

    return run


def record_court_outcome(body: CourtOutcomeCreate, by: str, offences: OffenceTable) -> Command:
    def run(case: Case, now: datetime) -> Any:
        sentence = Sentence(body.sentence.years, body.sentence.months) if body.sentence else None
        return case.record_court_outcome(
            str(body.suspect_id),
            outcome=body.outcome,
            decided_on=body.decided_on,
            by=by,
            now=now,
            offence_codes=body.offence_codes,
            sentence=sentence,
            offences=offences,
        )

    return run


def record_victim_service(body: VictimServiceCreate, by: str) -> Command:
    def run(case: Case, now: datetime) -> Any:
        return case.record_victim_service(
            body.child_id,
            service=body.service,
            provider_code=body.provider_code,
            provided_on=body.provided_on,
            by=by,
            now=now,
        )

    return run


def record_first_contact(body: FirstContactCreate, by: str) -> Command:
    def run(case: Case, now: datetime) -> Any:
        return case.record_first_contact(
            body.child_id, contacted_at=body.contacted_at, by=by, now=now
        )

    return run
