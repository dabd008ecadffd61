"""The eight roles of CONTRACT.md section 3.

Kept in its own module because both authentication (which drops unknown roles from a token)
and authorisation (which maps actions to roles) need it; :mod:`.permissions` re-exports it.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """A role a token's ``roles`` claim may carry. Any other string grants nothing."""

    intake_officer = "intake_officer"
    investigator = "investigator"
    victim_support = "victim_support"
    forensic_officer = "forensic_officer"
    icac_analyst = "icac_analyst"
    supervisor = "supervisor"
    auditor = "auditor"
    ops = "ops"


#: Roles that may, subject to the permission table and the record rule, see a child's record.
#: ``auditor`` reads audit logs (ids and codes) and ``ops`` runs the platform: neither ever
#: sees record content, whatever a permission table says.
RECORD_ROLES: frozenset[Role] = frozenset(
    {
        Role.intake_officer,
        Role.investigator,
        Role.victim_support,
        Role.forensic_officer,
        Role.icac_analyst,
        Role.supervisor,
    }
)


def parse_role(value: str) -> Role | None:
    """The :class:`Role` named exactly ``value``, or ``None`` for anything else."""
    try:
        return Role(value)
    except ValueError:
        return None
