"""Who may do what in the casework service: one table, deny by default.

Each ``/api/v1`` route and each page names its action with ``PERMISSIONS.require("...")`` or
``ui.page("...")``; an action missing here is denied to everyone. ``ops`` sees health and
metrics, never a record; ``auditor`` reads the audit log only.

Least privilege, by the work each role does:

* investigators and supervisors act on investigations (transitions, suspects, arrests,
  charges, court outcomes);
* victim-support officers record the services given to children;
* both record the first contact with a child and see the overdue first-contact tasks;
* only supervisors assign and reassign cases and reopen closed ones (``case.reopen`` is
  checked on top of ``case.transition`` when the requested status is ``reopened``);
* suspects' personal details are decrypted only for ``suspect.read`` (investigators and
  supervisors): a victim-support officer sees that there is a suspect, not who it is.

Intake officers, forensic officers and ICAC analysts have no casework action: they work on
referrals, evidence and tips in their own services, which know the case by its id.

This table says what a role may do at all. Which case a person may see is the record-level
rule (:mod:`cpu_casework.service_layer.commands`): a case outside their teams (or provinces)
is answered 404, as if it did not exist.
"""

from cpu_shared.security.permissions import AUDIT_GRANTS, PermissionTable, Role

_CASE_READERS = {Role.investigator, Role.victim_support, Role.supervisor}
_INVESTIGATION = {Role.investigator, Role.supervisor}

PERMISSIONS = PermissionTable(
    "casework",
    {
        "case.list": _CASE_READERS,
        "case.read": _CASE_READERS,
        "case.assign": {Role.supervisor},
        "case.transition": _INVESTIGATION,
        "case.reopen": {Role.supervisor},
        "suspect.create": _INVESTIGATION,
        "suspect.read": _INVESTIGATION,
        "arrest.create": _INVESTIGATION,
        "charge.create": _INVESTIGATION,
        "court_outcome.create": _INVESTIGATION,
        "offence.read": _INVESTIGATION,
        "victim_service.create": {Role.victim_support, Role.supervisor},
        "first_contact.create": _CASE_READERS,
        "first_contact.overdue": _CASE_READERS,
        **AUDIT_GRANTS,
    },
)
