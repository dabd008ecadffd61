"""Who may do what in the reporting service: one table, deny by default.

Least privilege, decided per action:

* ``report.read`` (the summary as JSON and the dashboard): ``supervisor``, who runs the unit and
  answers for its figures, and ``auditor``, who checks that what the unit publishes matches what
  its systems hold. Both see suppressed aggregates only: no route of this service returns a
  record, an id or an unsuppressed small count.
* ``report.export`` (CSV and the annual-report PDF): ``supervisor`` only. An export leaves the
  system and becomes a publication; publishing is the unit head's decision. Every read and
  export is written to the audit log.
* Investigators, intake, victim-support, forensic and ICAC officers work on records in their own
  services and need no unit-wide statistics here; ``ops`` sees ``/health`` and ``/metrics`` only.
* ``audit.read``: auditor and supervisor, as in every service.
"""

from cpu_shared.security.permissions import AUDIT_GRANTS, PermissionTable, Role

PERMISSIONS = PermissionTable(
    "reporting",
    {
        "report.read": {Role.supervisor, Role.auditor},
        "report.export": {Role.supervisor},
        **AUDIT_GRANTS,
    },
)
