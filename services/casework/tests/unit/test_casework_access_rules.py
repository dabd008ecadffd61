"""The permission table is least privilege, and every page string has its Khmer text."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.pofile import read_po

from cpu_casework.permissions import PERMISSIONS
from cpu_shared.security.roles import Role

WEB = Path(__file__).resolve().parents[2] / "src" / "cpu_casework" / "web"


def test_ops_and_auditors_get_no_case_action() -> None:
    for action in PERMISSIONS.actions - {"audit.read"}:
        assert Role.ops not in PERMISSIONS.roles_for(action), action
        assert Role.auditor not in PERMISSIONS.roles_for(action), action


def test_each_role_acts_only_on_its_own_work() -> None:
    investigation = {
        "case.transition",
        "suspect.create",
        "suspect.read",
        "arrest.create",
        "charge.create",
        "court_outcome.create",
    }
    for action in investigation:
        assert PERMISSIONS.roles_for(action) == {Role.investigator, Role.supervisor}, action
    assert PERMISSIONS.roles_for("victim_service.create") == {Role.victim_support, Role.supervisor}
    assert PERMISSIONS.roles_for("case.assign") == {Role.supervisor}
    assert PERMISSIONS.roles_for("case.reopen") == {Role.supervisor}
    for role in (Role.intake_officer, Role.forensic_officer, Role.icac_analyst):
        assert not any(PERMISSIONS.allows({role.value}, a) for a in PERMISSIONS.actions), role


def test_every_page_string_has_a_khmer_translation() -> None:
    with (WEB / "translations" / "km.po").open("rb") as handle:
        catalog = read_po(handle)
    translated = {m.id for m in catalog if m.id and m.string}
    wanted: set[str] = set()
    for template in (WEB / "templates").glob("*.html"):
        wanted |= set(re.findall(r'_\("([^"]+)"\)', template.read_text()))
    pages = (WEB / "pages.py").read_text()
    for table in (
        "STATUS_LABELS",
        "SERVICE_LABELS",
        "KIND_LABELS",
        "SEX_LABELS",
        "OUTCOME_LABELS",
        "DONE_MESSAGES",
    ):
        body = pages[pages.index(f"{table} = {{") :]
        body = body[: body.index("}")]
        wanted |= set(re.findall(r': "([^"]+)"', body))
    wanted |= set(re.findall(r'"message": "([^"]+)"', pages))
    wanted |= {"Casework", "Caseload", "Overdue first contacts"}
    assert not sorted(wanted - translated)
