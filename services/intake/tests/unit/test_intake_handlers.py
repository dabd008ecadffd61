"""Pure parts of the service around the domain: the blocking pre-selection of candidates, who
sees which referral, the officers' form mapping and its translations. No I/O."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po
from pydantic import ValidationError

from cpu_intake.adapters.repository import BLOCKING_KINDS
from cpu_intake.adapters.tables import Referral
from cpu_intake.domain.matching import DEFAULT_WEIGHTS, MATCH_THRESHOLD, FeatureKind, score
from cpu_intake.domain.messages import officer_errors
from cpu_intake.domain.referral import ReferralCreate
from cpu_intake.permissions import PERMISSIONS
from cpu_intake.service_layer.referrals import may_see
from cpu_intake.web import pages
from cpu_intake.web.forms import ReferralForm, attach_errors, read_form, referral_data
from cpu_shared.security.auth import Principal
from cpu_shared.security.roles import Role

# --- blocking ---------------------------------------------------------------------------------


def test_no_pair_can_reach_the_threshold_without_sharing_a_blocking_digest() -> None:
    """Candidates are pre-selected by sharing a digest of a blocking kind. Every way two
    children can agree on the other kinds only (common names tokens, birth year, commune,
    province, sex) stays under the threshold, so the pre-selection loses no match."""
    non_blocking = [k for k in FeatureKind if k not in BLOCKING_KINDS]
    best = 0.0
    # Each non-blocking kind: absent on one side, equal, or different on both sides.
    for states in itertools.product(("absent", "same", "different"), repeat=len(non_blocking)):
        a: dict[str, set[str]] = {}
        b: dict[str, set[str]] = {}
        for kind, state in zip(non_blocking, states, strict=True):
            if state == "absent":
                continue
            a[kind] = {"x"}
            b[kind] = {"x"} if state == "same" else {"y"}
        # Blocking kinds may be present on both sides, but never shared.
        for kind in BLOCKING_KINDS:
            a[kind], b[kind] = {"a-" + kind}, {"b-" + kind}
        for drop in (set(), set(BLOCKING_KINDS)):
            left = {k: v for k, v in a.items() if k not in drop}
            right = {k: v for k, v in b.items() if k not in drop}
            best = max(best, score(left, right)[0])
    assert best < MATCH_THRESHOLD, best
    assert DEFAULT_WEIGHTS.prior < 0


# --- who sees which referral -----------------------------------------------------------------


def row(**values: Any) -> Referral:
    base: dict[str, Any] = {"teams": "HIT,OVCS", "province_code": "12"}
    return Referral(**{**base, **values})


def principal(
    *roles: str, teams: tuple[str, ...] = (), provinces: tuple[str, ...] = ()
) -> Principal:
    return Principal("u", frozenset(roles), frozenset(teams), frozenset(provinces))


@pytest.mark.parametrize(
    ("who", "visible"),
    [
        (principal("supervisor"), True),
        (principal("supervisor", provinces=("01",)), True),
        (principal("intake_officer"), True),
        (principal("intake_officer", provinces=("12",)), True),
        (principal("intake_officer", provinces=("01",)), False),
        (principal("investigator"), False),
        (principal("investigator", teams=("HIT",)), True),
        (principal("investigator", teams=("HIT",), provinces=("01",)), False),
        (principal("victim_support", teams=("OVCS",)), True),
        (principal("icac_analyst", teams=("ICAC",)), False),
        (principal("auditor"), False),
        (principal("ops"), False),
    ],
)
def test_record_visibility(who: Principal, visible: bool) -> None:
    assert may_see(who, row()) is visible


def test_least_privilege_in_the_permission_table() -> None:
    assert PERMISSIONS.roles_for("referral.create") == {Role.intake_officer}
    assert PERMISSIONS.roles_for("referral.matches.decide") == {Role.intake_officer}
    assert Role.forensic_officer not in PERMISSIONS.roles_for("referral.read")
    for action in PERMISSIONS.actions:
        assert Role.ops not in PERMISSIONS.roles_for(action)
        if action != "audit.read":
            assert Role.auditor not in PERMISSIONS.roles_for(action)


# --- the officers' form ----------------------------------------------------------------------


def form_of(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in pairs:
        out.setdefault(key, []).append(value)
    return out


KHMER_FORM = [
    ("children_count", "2"),
    ("perpetrators_count", "1"),
    ("source", "walk_in"),
    ("received_at", "2026-03-01T09:30"),
    ("reporter-name", "ចាន់ ដារ៉ា"),
    ("reporter-phone", "012 345 678"),
    ("children-0-name_km", "សុខ សុខា"),
    ("children-0-sex", "female"),
    ("children-0-age_estimate", "9"),
    ("children-0-province_code", "12"),
    ("children-1-sex", "unknown"),  # a row added and left blank
    ("perpetrators-0-has_access_to_child", "yes"),
    ("perpetrators-0-relationship", "ឪពុកចុង"),
    ("concerns", "physical_abuse"),
    ("concerns", "neglect"),
    ("immediate_danger", "1"),
    ("narrative", "ក្មេងត្រូវបានវាយ។"),
]


def test_a_khmer_form_becomes_a_referral() -> None:
    form, action = read_form(form_of(KHMER_FORM))
    assert action is None
    data = referral_data(form)
    referral = ReferralCreate.model_validate(
        data, context={"now": datetime(2026, 3, 1, 4, 0, tzinfo=UTC)}
    )
    assert referral.received_at == datetime(2026, 3, 1, 2, 30, tzinfo=UTC)  # 09:30 in Cambodia
    assert referral.reporter.phone == "+85512345678"
    assert len(referral.children) == 1  # the blank row is skipped
    assert referral.children[0].name_km == "សុខ សុខា"
    assert referral.alleged_perpetrators[0].has_access_to_child is True
    assert referral.concerns == ["physical_abuse", "neglect"]
    assert referral.immediate_danger is True and referral.injuries is False


def test_problems_land_next_to_the_field_they_concern() -> None:
    pairs = [*KHMER_FORM, ("children-2-age_estimate", "40"), ("children-2-province_code", "12")]
    pairs = [(k, "3" if k == "children_count" else v) for k, v in pairs]
    pairs = [p for p in pairs if p[0] != "concerns"]
    form, _ = read_form(form_of(pairs))
    with pytest.raises(ValidationError) as caught:
        ReferralCreate.model_validate(referral_data(form))
    attach_errors(form, officer_errors(caught.value))
    # Row 1 was blank and skipped: the domain's child 1 is the form's row 2.
    assert [p.code for p in form.problems("children-2-age_estimate")] == ["age_out_of_range"]
    assert [p.code for p in form.problems("concerns")] == ["no_concerns"]
    assert form.has_errors and not form.general_errors


@pytest.mark.parametrize(
    ("action", "children", "perpetrators"),
    [("add_child", 3, 1), ("add_perpetrator", 2, 2), ("something_else", 2, 1)],
)
def test_add_buttons_grow_the_form(action: str, children: int, perpetrators: int) -> None:
    form, chosen = read_form(form_of([*KHMER_FORM, ("action", action)]))
    assert (form.children, form.perpetrators) == (children, perpetrators)
    assert chosen == (action if action != "something_else" else None)
    assert form.value("children-0-name_km") == "សុខ សុខា"  # what was typed stays


def test_a_blank_form_starts_now_in_cambodia() -> None:
    form = ReferralForm.blank(datetime(2026, 3, 1, 20, 15, tzinfo=UTC))
    assert form.value("received_at") == "2026-03-02T03:15"


# --- translations --------------------------------------------------------------------------


def test_every_text_of_the_pages_has_khmer() -> None:
    web = Path(pages.__file__).parent
    with (web / "translations" / "km.po").open("rb") as handle:
        catalog = read_po(handle)
    translated = {m.id for m in catalog if m.id and m.string}
    used = set()
    for template in (web / "templates").glob("*.html"):
        used |= set(re.findall(r'_\("([^"]+)"\)', template.read_text()))
    for labels in (
        pages.SOURCE_LABELS,
        pages.CONCERN_LABELS,
        pages.SEX_LABELS,
        pages.STATUS_LABELS,
        pages.REASON_LABELS,
    ):
        used |= set(labels.values())
    used |= {"Intake", "Today's referrals", "New referral"}
    missing = sorted(used - translated)
    assert not missing, missing
    for message in catalog:
        if message.id:
            assert any("\u1780" <= ch <= "\u17ff" for ch in message.string), message.id
