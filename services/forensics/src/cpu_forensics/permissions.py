"""Who may do what in the forensics service: one table, deny by default.

Each ``/api/v1`` route and each page names its action with ``PERMISSIONS.require("...")`` (or
``ui.page("...")``); an action missing here is denied to everyone. ``ops`` sees health and
metrics, never a record. Least privilege, role by role:

* ``forensic_officer`` (the Forensic Science Team: evidence store and laboratory) registers,
  moves, analyses and reads evidence, and reads the ledger;
* ``investigator`` seizes evidence in the field (registers it, so the first custodian is the
  person holding it), moves what they hold (to the store, to court), requests analyses, and
  reads the evidence of their cases (the record rule in ``service_layer.access``); they do not
  assign, perform or sign off laboratory work, and do not read the ledger as a whole;
* ``supervisor`` reads everything, decides on analyses (assigns analysts, signs off results,
  sends them back, cancels), sees flagged (unanswered) handovers and reads the ledger; a
  supervisor does not hold evidence, so registers and moves none;
* ``auditor`` reads the ledger and verifies it (CONTRACT.md section 7) and the audit log, and
  nothing else: the ledger's leaves are the evidence trail an auditor checks, while item
  records stay with the people who handle them.
"""

from cpu_shared.security.permissions import AUDIT_GRANTS, PermissionTable
from cpu_shared.security.roles import Role

FO, INV, SUP, AUD = Role.forensic_officer, Role.investigator, Role.supervisor, Role.auditor

PERMISSIONS = PermissionTable(
    "forensics",
    {
        # The evidence register and the chain of custody.
        "evidence.register": {FO, INV},
        "evidence.read": {FO, INV, SUP},
        "custody.read": {FO, INV, SUP},
        "custody.transfer": {FO, INV},
        "custody.accept": {FO, INV},
        "custody.report": {FO, INV, SUP},
        # Handovers nobody accepted in time (listed with one's own pending acceptances).
        "custody.flagged": {FO, SUP},
        # Laboratory analyses: the analyst examines; a lab lead assigns, signs off (a second
        # person's review), sends back or cancels.
        "analysis.request": {FO, INV},
        "analysis.read": {FO, INV, SUP},
        "analysis.perform": {FO},
        "analysis.decide": {FO, SUP},
        # The custody ledger (CONTRACT.md section 7).
        "ledger.read": {FO, SUP, AUD},
        "ledger.verify": {FO, SUP, AUD},
        **AUDIT_GRANTS,
    },
)
