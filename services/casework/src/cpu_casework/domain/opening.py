"""How a case starts: which team leads it, and what a tip's priority becomes.

* A case opened from a triaged referral is led by HIT when it is a child homicide
  (:func:`~.outcomes.is_child_homicide`), else by the first team triage named. Intake's rule
  table lists the specialised teams (HIT for homicide, ICAC for online exploitation) before
  OVCS, which every referral gets, so "first named" means "most specialised".
* A case opened from an escalated ICAC tip is led by ICAC.
* A tip's priority is the case's priority, except ``informational``, which becomes P3: a tip
  ICAC escalated is a case, but nothing in it says it is urgent. Its concerns follow from
  the incident type (:func:`tip_concerns`); every tip case is at least online exploitation.

The service assigns the lead team (no investigator yet) in the transaction that opens the
case; a supervisor then names the investigator (a reassignment, with its reason).

A case that turns out to be a child homicide after it opened (a further referral of the same
child) is reassigned to HIT at once (:func:`hit_takes_over`).

When intake confirms, after a referral already opened its own case, that its child is the
child of another case's referral, the referral joins that other case. Its first case is
closed as transferred (:func:`close_as_same_child`) only while nothing has been done on it -
still ``open``, no suspect, no victim service, no first contact; otherwise it stays as it is
and a supervisor decides, since closing it would hide work in progress.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cpu_casework.domain import lifecycle
from cpu_casework.domain.assignment import HIT
from cpu_casework.domain.case import Case
from cpu_casework.domain.errors import InvalidValue
from cpu_casework.domain.values import PRIORITIES

ICAC = "ICAC"
TIP_TEAMS: tuple[str, ...] = (ICAC,)
#: Who the service names as the author of what it does on its own (opening, first assignment).
SYSTEM_USER = "casework"
SAME_CHILD_REASON = "same_child_other_case"
CHILD_HOMICIDE_REASON = "child_homicide"


def initial_team(teams: Sequence[str], child_homicide: bool) -> str | None:
    """The team that leads a newly opened case, or None when triage named none."""
    if child_homicide:
        return HIT
    return teams[0] if teams else None


def tip_case_priority(tip_priority: str) -> str:
    """The case priority of an escalated tip (P1-P3 as is, informational -> P3)."""
    if tip_priority == "informational":
        return "P3"
    if tip_priority not in PRIORITIES:
        raise InvalidValue("priority", f"unknown tip priority {tip_priority!r}")
    return tip_priority


# What a tip's incident type says the child is exposed to, in referral concern codes.
_TIP_CONCERNS: dict[str, tuple[str, ...]] = {
    "child_sexual_abuse_material": ("online_exploitation",),
    "online_enticement": ("online_exploitation",),
    "child_sex_trafficking": ("trafficking", "online_exploitation"),
    "child_sex_tourism": ("sexual_abuse", "online_exploitation"),
    "child_sexual_molestation": ("sexual_abuse", "online_exploitation"),
    "unsolicited_obscene_material_to_child": ("online_exploitation",),
    "misleading_domain_name": ("online_exploitation",),
    "misleading_content": ("online_exploitation",),
    "other": ("online_exploitation",),
}


def tip_concerns(incident_type: str) -> list[str]:
    """The concerns of a case opened from a tip of ``incident_type`` (always online)."""
    try:
        return list(_TIP_CONCERNS[incident_type])
    except KeyError:
        raise InvalidValue("incident_type", f"unknown incident type {incident_type!r}") from None


def close_as_same_child(
    case: Case, *, continued_on: str, referral_id: str, same_as: str, now: datetime
) -> bool:
    """Close ``case`` as transferred to case ``continued_on`` if nothing was done on it yet.

    Returns False (and changes nothing) when work has started or the case is closed.
    """
    untouched = (
        case.status == lifecycle.OPEN
        and not case.suspects
        and not case.victim_services
        and all(child.first_contact_at is None for child in case.children.values())
    )
    if not untouched:
        return False
    case.transition(
        lifecycle.CLOSED_TRANSFERRED,
        by=SYSTEM_USER,
        now=now,
        reason_code=SAME_CHILD_REASON,
        reason_text=(
            f"Intake confirmed that referral {referral_id} is about the child of referral "
            f"{same_as}; the work continues on case {continued_on}."
        ),
    )
    return True


def hit_takes_over(case: Case, *, now: datetime) -> bool:
    """A case found to be a child homicide after it opened (a further referral gave a child's
    age or the homicide concern) is reassigned to HIT, which leads every child homicide.

    Returns False when nothing changes (HIT already leads it, or the case is closed: a
    supervisor decides on reopening).
    """
    if not case.needs_hit_assignment or case.is_closed:
        return False
    case.assign(HIT, by=SYSTEM_USER, now=now, reason_code=CHILD_HOMICIDE_REASON)
    return True
