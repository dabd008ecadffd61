"""Assignment of a case to a team and an investigator in the case's province.

A case has at most one current assignment: the lead team (OVCS, HIT, FST or ICAC) and, usually,
the investigator who leads it. The teams triage named stay on the case as the teams involved;
the assignment says who leads. Every assignment is kept in the case's history, never edited.

Rules:

* The team is one of the unit's four.
* The investigator works in the case's province. The domain does not know officers: the caller
  passes the province of the investigator's posting (from the user directory) and the domain
  compares it with the case's. A case without a province (some ICAC tips) accepts any.
* A reassignment - any change of team or investigator once a case is assigned - needs a reason
  code (published) and may carry a reason text (kept on the case only).
* Assigning the very same team and investigator again changes nothing (a retried request).
* A child-homicide case is led by HIT (see :func:`~.outcomes.is_child_homicide`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cpu_casework.domain.errors import CaseworkError, InvalidValue, ReasonRequired
from cpu_casework.domain.values import (
    TEAMS,
    optional_text,
    require_choice,
    require_id,
    require_province,
    require_reason_code,
)

HIT = "HIT"
OVCS = "OVCS"


class ReassignmentReasonRequired(ReasonRequired):
    rule = "reassignment_reason_required"

    def __init__(self) -> None:
        super().__init__("reason_code", "a reassignment must give its reason")


class InvestigatorOutsideProvince(CaseworkError):
    rule = "investigator_outside_province"

    def __init__(self, investigator_province: str, case_province: str) -> None:
        super().__init__(
            f"the investigator is posted in province {investigator_province}, "
            f"the case is in province {case_province}"
        )
        self.investigator_province = investigator_province
        self.case_province = case_province


class ChildHomicideRequiresHIT(CaseworkError):
    rule = "child_homicide_requires_hit"

    def __init__(self, team: str) -> None:
        super().__init__(f"a child-homicide case is led by HIT, not {team}")
        self.team = team


@dataclass(frozen=True)
class Assignment:
    team: str
    investigator_id: str | None
    province_code: str | None
    assigned_at: datetime
    assigned_by: str
    reassignment: bool
    reason_code: str | None = None
    reason_text: str | None = None

    def same_lead(self, team: str, investigator_id: str | None) -> bool:
        return self.team == team and self.investigator_id == investigator_id


def plan_assignment(
    *,
    current: Assignment | None,
    case_province_code: str | None,
    child_homicide: bool,
    team: str,
    investigator_id: str | None,
    investigator_province_code: str | None,
    by: str,
    now: datetime,
    reason_code: str | None = None,
    reason_text: str | None = None,
) -> Assignment | None:
    """The new assignment, or None when it would repeat the current one.

    Raises the errors of this module, or :class:`~.errors.InvalidValue` for a bad value.
    """
    require_choice(team, TEAMS, "team")
    require_id(by, "by")
    if investigator_id is not None:
        require_id(investigator_id, "investigator_id")
        if investigator_province_code is None:
            raise InvalidValue(
                "investigator_province_code", "the investigator's province is required"
            )
        require_province(investigator_province_code, "investigator_province_code")
        if case_province_code is not None and investigator_province_code != case_province_code:
            raise InvestigatorOutsideProvince(investigator_province_code, case_province_code)
    if child_homicide and team != HIT:
        raise ChildHomicideRequiresHIT(team)
    if current is not None and current.same_lead(team, investigator_id):
        return None
    reassignment = current is not None
    text = optional_text(reason_text, "reason_text")
    if reason_code is None or reason_code == "":
        if reassignment:
            raise ReassignmentReasonRequired()
        code = None
    else:
        code = require_reason_code(reason_code)
    return Assignment(
        team=team,
        investigator_id=investigator_id,
        province_code=case_province_code,
        assigned_at=now,
        assigned_by=by,
        reassignment=reassignment,
        reason_code=code,
        reason_text=text,
    )
