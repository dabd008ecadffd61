"""Triage: one test per rule of the default table, and the validation of rule files."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cpu_intake.domain.referral import AllegedPerpetrator, ReferralCreate
from cpu_intake.domain.triage import (
    TriageFacts,
    TriageResult,
    TriageRules,
    TriageRulesError,
    default_rules,
    load_rules,
    triage,
)


def run(*concerns: str, **flags: bool) -> TriageResult:
    return default_rules().evaluate(TriageFacts(concerns=frozenset(concerns), **flags))


def test_immediate_danger_is_p1() -> None:
    result = run("neglect", immediate_danger=True)
    assert result.priority == "P1"
    assert result.teams == ("OVCS",)
    assert result.rule_ids == ("immediate_danger", "victim_support")


def test_injuries_is_p1() -> None:
    result = run("physical_abuse", injuries=True)
    assert result.priority == "P1"
    assert result.teams == ("OVCS",)
    assert result.rule_ids == ("injuries", "victim_support")


def test_homicide_is_p1_for_the_homicide_team() -> None:
    result = run("homicide")
    assert result.priority == "P1"
    assert result.teams == ("HIT", "OVCS")
    assert result.rule_ids == ("homicide", "victim_support")


def test_perpetrator_with_access_is_p1() -> None:
    result = run("domestic_violence", perpetrator_has_access=True)
    assert result.priority == "P1"
    assert result.teams == ("OVCS",)
    assert result.rule_ids == ("perpetrator_has_access", "victim_support")


@pytest.mark.parametrize("concern", ["sexual_abuse", "rape"])
def test_sexual_abuse_and_rape_are_p2(concern: str) -> None:
    result = run(concern)
    assert result.priority == "P2"
    assert result.teams == ("OVCS",)  # documented: no extra team (see triage_rules.json)
    assert result.rule_ids == ("sexual_abuse", "victim_support")


def test_trafficking_is_p2() -> None:
    result = run("trafficking")
    assert result.priority == "P2"
    assert result.teams == ("OVCS",)
    assert result.rule_ids == ("trafficking", "victim_support")


def test_online_exploitation_is_p2_with_icac() -> None:
    result = run("online_exploitation")
    assert result.priority == "P2"
    assert result.teams == ("ICAC", "OVCS")
    assert result.rule_ids == ("online_exploitation", "victim_support")


def test_victim_support_for_every_child_and_p3_otherwise() -> None:
    result = run("neglect", "child_labour")
    assert result.priority == "P3"
    assert result.teams == ("OVCS",)
    assert result.rule_ids == ("victim_support",)


def test_every_rule_of_the_default_table_has_a_test_above() -> None:
    tested = {
        "immediate_danger",
        "injuries",
        "homicide",
        "perpetrator_has_access",
        "sexual_abuse",
        "trafficking",
        "online_exploitation",
        "victim_support",
    }
    assert {rule.id for rule in default_rules().rules} == tested


def test_most_urgent_priority_wins_and_teams_accumulate_in_table_order() -> None:
    result = run("online_exploitation", "homicide", "rape", injuries=True)
    assert result.priority == "P1"
    assert result.teams == ("HIT", "ICAC", "OVCS")
    assert result.rule_ids == (
        "injuries",
        "homicide",
        "sexual_abuse",
        "online_exploitation",
        "victim_support",
    )


def test_triage_of_a_referral_reads_access_only_when_stated() -> None:
    referral = ReferralCreate.model_validate(
        {
            "source": "helpline_1288",
            "received_at": "2026-03-01T09:00:00+07:00",
            "reporter": {"anonymous": True},
            "children": [{"age_estimate": 9, "province_code": "12"}],
            "concerns": ["neglect"],
            "alleged_perpetrators": [{"has_access_to_child": None}, {"name": "Uncle"}],
        },
        context={"now": datetime(2026, 3, 1, 3, tzinfo=UTC)},
    )
    assert triage(referral).priority == "P3"  # unknown access is not "has access"
    with_access = referral.model_copy(
        update={"alleged_perpetrators": [AllegedPerpetrator(has_access_to_child=True)]}
    )
    assert triage(with_access).rule_ids == ("perpetrator_has_access", "victim_support")


def test_every_rule_explains_itself_in_english_and_khmer() -> None:
    for rule in default_rules().rules:
        assert rule.description.en
        assert any("\u1780" <= ch <= "\u17ff" for ch in rule.description.km)


# --- the rule file ----------------------------------------------------------------------------

DEFAULT_FILE = Path(__file__).parents[2] / "src/cpu_intake/domain/triage_rules.json"


def table(**changes: object) -> dict:
    data = json.loads(DEFAULT_FILE.read_text(encoding="utf-8"))
    data.update(changes)
    return data


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_the_packaged_file_is_the_default_table(tmp_path: Path) -> None:
    assert load_rules() == default_rules()
    assert load_rules(write(tmp_path, table())) == default_rules()


def test_a_rule_file_from_configuration_changes_triage_without_code(tmp_path: Path) -> None:
    data = table()
    data["rules"].insert(
        0,
        {
            "id": "rape_forensics",
            "description": {"en": "Rape: forensic evidence.", "km": "ការរំលោភ៖ ភស្តុតាង។"},
            "when": {"concerns_any": ["rape"]},
            "teams": ["FST"],
        },
    )
    rules = load_rules(write(tmp_path, data))
    result = rules.evaluate(TriageFacts(concerns=frozenset({"rape"})))
    assert result.priority == "P2"
    assert result.teams == ("FST", "OVCS")
    assert result.rule_ids == ("rape_forensics", "sexual_abuse", "victim_support")


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TriageRulesError, match="cannot read the rule file"):
        load_rules(tmp_path / "nope.json")


def test_a_file_that_is_not_json_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text('{"version": 1,\n  "rules": [,]}', encoding="utf-8")
    with pytest.raises(TriageRulesError, match=r"not valid JSON \(line 2, column"):
        load_rules(path)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["rules"][2].update(teams=["SWAT"]), r"rules\.2\.teams\.0"),
        (lambda d: d["rules"][0].update(priority="P0"), r"rules\.0\.priority"),
        (lambda d: d["rules"][4]["when"].update(concerns_any=["theft"]), r"concerns_any\.0"),
        (lambda d: d["rules"][0].update(when={}), r"at least one key"),
        (lambda d: d["rules"][0].update(when={"always": False}), r"rules\.0\.when\.always"),
        (lambda d: d["rules"][0]["when"].update(danger=True), r"rules\.0\.when\.danger"),
        (lambda d: d["rules"][1].update(id="immediate_danger"), r"repeated: immediate_danger"),
        (lambda d: d["rules"][0].update(id="Bad Id"), r"rules\.0\.id"),
        (lambda d: d["rules"][0].pop("description"), r"rules\.0\.description"),
        (lambda d: d["rules"][0].pop("priority"), r"must set a priority, teams, or both"),
        (lambda d: d.update(rules=[]), r"rules: List should have at least 1 item"),
        (lambda d: d.pop("default_priority"), r"default_priority: Field required"),
    ],
)
def test_a_bad_rule_table_is_refused_with_the_place_of_the_problem(
    tmp_path: Path, mutate, message: str
) -> None:
    data = table()
    mutate(data)
    with pytest.raises(TriageRulesError, match=message) as caught:
        load_rules(write(tmp_path, data))
    assert str(tmp_path / "rules.json") in str(caught.value)


def test_from_json_validates_a_string_too() -> None:
    with pytest.raises(TriageRulesError, match="<rules>: not a valid triage rule table"):
        TriageRules.from_json("[]")
