"""Who may do what in the forensics service: one table, deny by default.

Each ``/api/v1`` route names its action with ``PERMISSIONS.require("...")``; an action
missing here is denied to everyone. ``ops`` sees health and metrics, never a record.
"""

from cpu_shared.security.permissions import AUDIT_GRANTS, PermissionTable

PERMISSIONS = PermissionTable(
    "forensics",
    {
        **AUDIT_GRANTS,
    },
)
