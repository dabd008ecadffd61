"""The referral form: HTML field names to the API's shape, and problems back to fields.

An HTML form is flat, so nested parts are spelled ``reporter-name``, ``children-0-name_km``,
``perpetrators-1-age_estimate``. The form posts as ``application/x-www-form-urlencoded`` and
works without JavaScript: "add a child" is a submit button that comes back with one more
fieldset. Validation is the domain's (``ReferralCreate``); its problems are mapped back to the
field they concern, in the page's language.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cpu_intake.domain.messages import OfficerError
from cpu_intake.domain.referral import (
    CAMBODIA_TZ,
    MAX_CHILDREN,
    MAX_PERPETRATORS,
)

CHILD_FIELDS = (
    "given_name",
    "family_name",
    "name_km",
    "sex",
    "date_of_birth",
    "age_estimate",
    "province_code",
    "district",
    "commune",
    "village",
)
PERPETRATOR_FIELDS = ("name", "relationship", "age_estimate", "has_access_to_child")
REPORTER_FIELDS = ("name", "phone", "relationship")
TOP_FIELDS = ("source", "received_at", "narrative")
FLAGS = ("immediate_danger", "injuries")
ADD_CHILD = "add_child"
ADD_PERPETRATOR = "add_perpetrator"


@dataclass
class ReferralForm:
    """What the officer typed (re-shown as is after a problem) and the problems by field."""

    values: dict[str, str] = field(default_factory=dict)
    concerns: list[str] = field(default_factory=list)
    children: int = 1
    perpetrators: int = 1
    errors: dict[str, list[OfficerError]] = field(default_factory=dict)
    general_errors: list[OfficerError] = field(default_factory=list)
    # Which form row each child / perpetrator of the parsed referral came from.
    child_rows: list[int] = field(default_factory=list)
    perpetrator_rows: list[int] = field(default_factory=list)

    def value(self, name: str, default: str = "") -> str:
        return self.values.get(name, default)

    def checked(self, name: str) -> bool:
        return self.values.get(name) == "1"

    def problems(self, name: str) -> list[OfficerError]:
        return self.errors.get(name, [])

    @property
    def has_errors(self) -> bool:
        return bool(self.errors or self.general_errors)

    @classmethod
    def blank(cls, now: datetime) -> ReferralForm:
        local = now.astimezone(CAMBODIA_TZ)
        return cls(
            values={"received_at": local.strftime("%Y-%m-%dT%H:%M"), "source": "helpline_1288"}
        )


def _count(form: Mapping[str, Sequence[str]], name: str, minimum: int, maximum: int) -> int:
    raw = (form.get(name) or ["1"])[0]
    number = int(raw) if raw.isdigit() else 1
    return max(minimum, min(maximum, number))


def read_form(form: Mapping[str, Sequence[str]]) -> tuple[ReferralForm, str | None]:
    """The form as typed, and the action asked for (``add_child``, ``add_perpetrator`` or None
    for "submit")."""

    def first(name: str) -> str:
        values = form.get(name) or [""]
        return values[0]

    parsed = ReferralForm(
        children=_count(form, "children_count", 1, MAX_CHILDREN),
        perpetrators=_count(form, "perpetrators_count", 0, MAX_PERPETRATORS),
        concerns=[c for c in form.get("concerns", []) if c],
    )
    names = [*TOP_FIELDS, *FLAGS, "reporter-anonymous"]
    names += [f"reporter-{n}" for n in REPORTER_FIELDS]
    names += [f"children-{i}-{n}" for i in range(parsed.children) for n in CHILD_FIELDS]
    names += [
        f"perpetrators-{i}-{n}" for i in range(parsed.perpetrators) for n in PERPETRATOR_FIELDS
    ]
    parsed.values = {name: first(name) for name in names if first(name) != ""}
    action = first("action") or None
    if action == ADD_CHILD and parsed.children < MAX_CHILDREN:
        parsed.children += 1
    elif action == ADD_PERPETRATOR and parsed.perpetrators < MAX_PERPETRATORS:
        parsed.perpetrators += 1
    elif action not in (None, ADD_CHILD, ADD_PERPETRATOR):
        action = None
    return parsed, action


def _received_at(text: str) -> str:
    # <input type="datetime-local"> gives the officer's wall clock without a zone: Cambodia's.
    if text and len(text) in (16, 19) and "T" in text:
        return text + "+07:00"
    return text


def referral_data(form: ReferralForm) -> dict[str, Any]:
    """The referral as ``POST /api/v1/referrals`` takes it. Rows left entirely blank are
    skipped (and remembered, so problems still point at the right row)."""
    v = form.values
    data: dict[str, Any] = {"concerns": list(form.concerns)}
    for name in ("source", "narrative"):
        if name in v:
            data[name] = v[name]
    if "received_at" in v:
        data["received_at"] = _received_at(v["received_at"])
    for flag in FLAGS:
        data[flag] = v.get(flag) == "1"
    reporter: dict[str, Any] = {"anonymous": v.get("reporter-anonymous") == "1"}
    for name in REPORTER_FIELDS:
        if f"reporter-{name}" in v:
            reporter[name] = v[f"reporter-{name}"]
    data["reporter"] = reporter

    children, form.child_rows = [], []
    for row in range(form.children):
        child = {n: v[f"children-{row}-{n}"] for n in CHILD_FIELDS if f"children-{row}-{n}" in v}
        if set(child) <= {"sex"} and child.get("sex", "unknown") == "unknown":
            continue
        children.append(child)
        form.child_rows.append(row)
    data["children"] = children

    perpetrators, form.perpetrator_rows = [], []
    for row in range(form.perpetrators):
        prefix = f"perpetrators-{row}-"
        person: dict[str, Any] = {n: v[prefix + n] for n in PERPETRATOR_FIELDS if prefix + n in v}
        access = person.pop("has_access_to_child", "")
        if not person and not access:
            continue
        if access in ("yes", "no"):
            person["has_access_to_child"] = access == "yes"
        perpetrators.append(person)
        form.perpetrator_rows.append(row)
    data["alleged_perpetrators"] = perpetrators
    return data


def field_name(form: ReferralForm, path: str) -> str | None:
    """The form field a problem at ``path`` (``children.0.age_estimate``) belongs to, or None
    for a problem about the referral as a whole."""
    parts = path.split(".") if path else []
    if not parts:
        return None
    head = parts[0]
    if head in ("children", "alleged_perpetrators"):
        rows = form.child_rows if head == "children" else form.perpetrator_rows
        prefix = "children" if head == "children" else "perpetrators"
        if len(parts) >= 3 and parts[1].isdigit() and int(parts[1]) < len(rows):
            return f"{prefix}-{rows[int(parts[1])]}-{parts[2]}"
        return prefix
    if head == "reporter":
        return f"reporter-{parts[1]}" if len(parts) > 1 else "reporter-name"
    if head == "concerns":
        return "concerns"
    if head in (*TOP_FIELDS, *FLAGS):
        return head
    return None


def attach_errors(form: ReferralForm, problems: Sequence[OfficerError]) -> None:
    for problem in problems:
        name = field_name(form, problem.field)
        if name is None:
            form.general_errors.append(problem)
        else:
            form.errors.setdefault(name, []).append(problem)
