"""Who may do what in the intake service: one table, deny by default.

Each ``/api/v1`` route and each ``/ui`` page names its action; an action missing here is
denied to everyone. ``ops`` sees health and metrics, never a record.

Least privilege, role by role:

- ``intake_officer`` records referrals, reads and lists them, sees possible duplicates and
  decides them, and withdraws a referral made in error. A token carrying ``provinces`` limits
  the officer to referrals of those provinces (a provincial desk); without it the officer
  works for the national 1288 helpline and sees every referral.
- ``supervisor`` reads everything (referrals, lists, matches, the audit log) but does not
  record or change referrals: that stays with the officer who took the report.
- ``investigator``, ``victim_support`` and ``icac_analyst`` may read one referral, and only one
  routed to a team in their token (HIT, OVCS, ICAC) and, if their token has provinces, in one
  of them (``cpu_shared.security.permissions.can_see_record``). Anything else is 404, so ids
  cannot be probed. They may not list referrals or see duplicate candidates.
- ``forensic_officer`` has no business with a referral; ``auditor`` reads only the audit log
  (ids and codes); ``ops`` nothing.
"""

from cpu_shared.security.permissions import AUDIT_GRANTS, PermissionTable, Role

CREATE = "referral.create"
READ = "referral.read"
LIST = "referral.list"
MATCHES_READ = "referral.matches.read"
MATCH_DECIDE = "referral.matches.decide"
WITHDRAW = "referral.withdraw"

#: Roles that read every referral in their provinces without a team check.
DESK_ROLES = frozenset({Role.intake_officer, Role.supervisor})

PERMISSIONS = PermissionTable(
    "intake",
    {
        CREATE: {Role.intake_officer},
        READ: {
            Role.intake_officer,
            Role.supervisor,
            Role.investigator,
            Role.victim_support,
            Role.icac_analyst,
        },
        LIST: {Role.intake_officer, Role.supervisor},
        MATCHES_READ: {Role.intake_officer, Role.supervisor},
        MATCH_DECIDE: {Role.intake_officer},
        WITHDRAW: {Role.intake_officer},
        **AUDIT_GRANTS,
    },
)
