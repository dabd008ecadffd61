"""Who may do what in the icac service: one table, deny by default.

Each ``/api/v1`` route and each page names its action with ``PERMISSIONS.require("...")`` (or
``ui.page("...")``); an action missing here is denied to everyone. ``ops`` sees health and
metrics, never a tip. ``auditor`` reads the audit log (ids and codes), never a tip.

Least privilege: tips are the ICAC team's work, so analysts and supervisors only. Loading a
known-hash list changes the priority of every tip that follows, so only a supervisor does it;
analysts may see which lists are loaded. Releasing another analyst's claim is a supervisor's
call (the route checks the role); an analyst releases only their own.
"""

from cpu_shared.security.permissions import AUDIT_GRANTS, PermissionTable, Role

ICAC_TEAM = frozenset({Role.icac_analyst, Role.supervisor})

PERMISSIONS = PermissionTable(
    "icac",
    {
        "tip.create": ICAC_TEAM,
        "tip.import": ICAC_TEAM,
        "tip.list": ICAC_TEAM,
        "tip.read": ICAC_TEAM,
        "tip.claim": ICAC_TEAM,
        "tip.release": ICAC_TEAM,
        "tip.dispose": ICAC_TEAM,
        "tip_import.read": ICAC_TEAM,
        "quarantine.read": ICAC_TEAM,
        "cluster.read": ICAC_TEAM,
        "hash_set.list": ICAC_TEAM,
        "hash_set.upload": frozenset({Role.supervisor}),
        **AUDIT_GRANTS,
    },
)
