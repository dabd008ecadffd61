"""The referral form: one test per validation error (officer-facing code and message, and
its Khmer text), phone numbers, the human reference and the status lifecycle."""

import string
from copy import deepcopy
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from pydantic import ValidationError

from cpu_intake.domain.messages import MESSAGES, OfficerError, OfficerFacingError, officer_errors
from cpu_intake.domain.phone import InvalidPhoneNumber, normalise_phone
from cpu_intake.domain.referral import (
    ALLOWED_TRANSITIONS,
    NARRATIVE_MAX_LENGTH,
    Referral,
    ReferralCreate,
    ReferralStatus,
    can_transition,
    format_reference,
    parse_reference,
)
from cpu_intake.domain.triage import triage

NOW = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)  # 10:00 in Phnom Penh


def valid() -> dict[str, Any]:
    return {
        "source": "helpline_1288",
        "received_at": "2026-03-01T09:30:00+07:00",
        "reporter": {"name": "Chan Dara", "phone": "012 345 678", "relationship": "aunt"},
        "children": [
            {
                "given_name": "Sokha",
                "family_name": "Chan",
                "name_km": "ចាន់ សុខា",
                "sex": "female",
                "date_of_birth": "2016-05-04",
                "province_code": "12",
                "district": "Dangkao",
                "commune": "Prey Sa",
                "village": "Trapeang",
            }
        ],
        "concerns": ["physical_abuse"],
        "alleged_perpetrators": [
            {"name": "Mr X", "relationship": "stepfather", "age_estimate": 40}
        ],
        "narrative": "The neighbour heard shouting.",
        "immediate_danger": False,
        "injuries": False,
    }


def validate(data: dict[str, Any]) -> ReferralCreate:
    return ReferralCreate.model_validate(data, context={"now": NOW})


def errors_of(data: dict[str, Any]) -> list[OfficerError]:
    with pytest.raises(ValidationError) as caught:
        validate(data)
    return officer_errors(caught.value)


def only_error(data: dict[str, Any]) -> OfficerError:
    errors = errors_of(data)
    assert len(errors) == 1, errors
    error = errors[0]
    assert error.code in MESSAGES
    assert any("\u1780" <= ch <= "\u17ff" for ch in error.km)  # the Khmer text is there
    return error


def with_child(**changes: Any) -> dict[str, Any]:
    data = valid()
    data["children"][0].update(changes)
    return data


def test_a_valid_referral_is_accepted_and_normalised() -> None:
    referral = validate(valid())
    assert referral.received_at == datetime(2026, 3, 1, 2, 30, tzinfo=UTC)
    assert referral.received_on == date(2026, 3, 1)
    assert referral.reporter.phone == "+85512345678"
    assert referral.children[0].age_on(referral.received_on) == 9
    assert triage(referral).priority == "P3"


# --- one test per validation error ------------------------------------------------------------


def test_received_in_the_future() -> None:
    data = valid()
    data["received_at"] = (NOW + timedelta(hours=1)).isoformat()
    error = only_error(data)
    assert (error.field, error.code) == ("received_at", "received_at_in_future")
    assert error.en == "The date received is in the future."


def test_received_a_little_ahead_is_clock_skew_and_accepted() -> None:
    data = valid()
    data["received_at"] = (NOW + timedelta(minutes=2)).isoformat()
    assert validate(data).received_at == NOW + timedelta(minutes=2)


def test_received_without_time_zone() -> None:
    data = valid()
    data["received_at"] = "2026-03-01T09:30:00"
    error = only_error(data)
    assert (error.field, error.code) == ("received_at", "received_at_no_timezone")
    assert error.en == "The date received must include a time zone."


@pytest.mark.parametrize("age", [-1, 18, 40])
def test_age_outside_0_to_17(age: int) -> None:
    error = only_error(with_child(date_of_birth=None, age_estimate=age))
    assert (error.field, error.code) == ("children.0.age_estimate", "age_out_of_range")
    assert error.en == "Age must be between 0 and 17."


@pytest.mark.parametrize("age", [0, 17])
def test_age_0_and_17_are_children(age: int) -> None:
    assert (
        validate(with_child(date_of_birth=None, age_estimate=age)).children[0].age_estimate == age
    )


def test_date_of_birth_making_an_adult() -> None:
    error = only_error(with_child(date_of_birth="2008-03-01"))  # 18 on the day received
    assert (error.field, error.code) == ("children.0.date_of_birth", "date_of_birth_adult")
    assert error.en.startswith("This date of birth makes the child 18 or older")


def test_date_of_birth_the_day_before_the_18th_birthday_is_a_child() -> None:
    assert (
        validate(with_child(date_of_birth="2008-03-02")).children[0].age_on(date(2026, 3, 1)) == 17
    )


def test_date_of_birth_in_the_future() -> None:
    error = only_error(with_child(date_of_birth="2026-03-02"))
    assert (error.field, error.code) == ("children.0.date_of_birth", "date_of_birth_in_future")
    assert error.en == "The date of birth is in the future."


def test_date_of_birth_after_the_day_received() -> None:
    data = with_child(date_of_birth="2026-02-20")
    data["received_at"] = "2026-02-10T09:00:00+07:00"
    error = only_error(data)
    assert (error.field, error.code) == (
        "children.0.date_of_birth",
        "date_of_birth_after_received",
    )


def test_neither_date_of_birth_nor_age() -> None:
    error = only_error(with_child(date_of_birth=None, age_estimate=None))
    assert (error.field, error.code) == (
        "children.0.date_of_birth",
        "age_or_date_of_birth_required",
    )
    assert error.en == "Give the child's date of birth or an estimated age."


@pytest.mark.parametrize("code", ["26", "00", "99", "x1"])
def test_unknown_province(code: str) -> None:
    error = only_error(with_child(province_code=code))
    assert (error.field, error.code) == ("children.0.province_code", "unknown_province")
    assert error.en == f"Unknown province code {code}."
    assert code in error.km


@pytest.mark.parametrize(("given", "stored"), [("01", "01"), ("25", "25"), ("8", "08"), (12, "12")])
def test_province_codes_01_to_25(given: Any, stored: str) -> None:
    assert validate(with_child(province_code=given)).children[0].province_code == stored


def test_no_concerns() -> None:
    data = valid()
    data["concerns"] = []
    error = only_error(data)
    assert (error.field, error.code) == ("concerns", "no_concerns")
    assert error.en == "Give at least one concern."


def test_unknown_concern_code() -> None:
    data = valid()
    data["concerns"] = ["neglect", "theft"]
    error = only_error(data)
    assert (error.field, error.code) == ("concerns.1", "unknown_concern")
    assert error.en == "Unknown concern 'theft'."


def test_repeated_concerns_are_kept_once() -> None:
    data = valid()
    data["concerns"] = ["neglect", "rape", "neglect"]
    assert validate(data).concerns == ["neglect", "rape"]


def test_unknown_source_code() -> None:
    data = valid()
    data["source"] = "fax"
    error = only_error(data)
    assert (error.field, error.code) == ("source", "unknown_source")
    assert error.en == "Unknown source of referral 'fax'."


def test_no_children() -> None:
    data = valid()
    data["children"] = []
    error = only_error(data)
    assert (error.field, error.code) == ("children", "no_children")
    assert error.en == "Give at least one child."


@pytest.mark.parametrize("phone", ["0123", "12345", "not a number", "+855 99"])
def test_invalid_phone(phone: str) -> None:
    data = valid()
    data["reporter"]["phone"] = phone
    error = only_error(data)
    assert (error.field, error.code) == ("reporter.phone", "invalid_phone")
    assert error.en == f"'{phone}' is not a valid phone number."


def test_anonymous_reporter_with_a_name() -> None:
    data = valid()
    data["reporter"] = {"anonymous": True, "name": "Chan Dara", "relationship": "neighbour"}
    error = only_error(data)
    assert (error.field, error.code) == ("reporter.name", "anonymous_reporter_identified")
    assert error.en == "An anonymous reporter cannot have a name or phone number."


def test_anonymous_reporter_with_a_phone() -> None:
    data = valid()
    data["reporter"] = {"anonymous": True, "phone": "012 345 678"}
    error = only_error(data)
    assert (error.field, error.code) == ("reporter.phone", "anonymous_reporter_identified")


def test_anonymous_reporter_with_blank_fields_from_a_form_is_fine() -> None:
    data = valid()
    data["reporter"] = {"anonymous": True, "name": "", "phone": " ", "relationship": "neighbour"}
    reporter = validate(data).reporter
    assert (reporter.name, reporter.phone) == (None, None)


def test_named_reporter_needs_a_name_or_phone() -> None:
    data = valid()
    data["reporter"] = {"anonymous": False, "relationship": "teacher"}
    error = only_error(data)
    assert (error.field, error.code) == ("reporter.name", "reporter_unidentified")


@pytest.mark.parametrize("name_km", ["Sokha", "ចាន់ Sokha", "សុខា1", "សុខា!", "\u200b"])
def test_khmer_name_in_another_script(name_km: str) -> None:
    error = only_error(with_child(name_km=name_km))
    assert (error.field, error.code) == ("children.0.name_km", "name_km_not_khmer")
    assert error.en == "The Khmer name must be written in Khmer script."


def test_khmer_name_is_stored_nfc_without_zero_width_characters() -> None:
    child = validate(with_child(name_km="ចាន់\u200b សុខា\u200c")).children[0]
    assert child.name_km == "ចាន់ សុខា"


def test_narrative_too_long() -> None:
    data = valid()
    data["narrative"] = "x" * (NARRATIVE_MAX_LENGTH + 1)
    error = only_error(data)
    assert (error.field, error.code) == ("narrative", "narrative_too_long")
    assert error.en == f"The narrative is too long: at most {NARRATIVE_MAX_LENGTH} characters."
    assert str(NARRATIVE_MAX_LENGTH) in error.km


def test_perpetrator_age_out_of_range() -> None:
    data = valid()
    data["alleged_perpetrators"][0]["age_estimate"] = 200
    error = only_error(data)
    assert (error.field, error.code) == (
        "alleged_perpetrators.0.age_estimate",
        "perpetrator_age_out_of_range",
    )


def test_a_name_too_long() -> None:
    error = only_error(with_child(given_name="a" * 101))
    assert (error.field, error.code) == ("children.0.given_name", "text_too_long")
    assert error.en == "This text is too long: at most 100 characters."


def test_a_missing_field() -> None:
    data = valid()
    del data["received_at"]
    error = only_error(data)
    assert (error.field, error.code) == ("received_at", "required")
    assert error.en == "This field is required."


def test_an_unknown_field() -> None:
    data = valid()
    data["attachment"] = "photo.jpg"  # intake accepts no files about a child
    error = only_error(data)
    assert (error.field, error.code) == ("attachment", "unknown_field")


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("sex", "x", "invalid_choice"),
        ("date_of_birth", "4 May 2016", "invalid_date"),
        ("age_estimate", "nine", "invalid_number"),
    ],
)
def test_wrong_types_get_officer_wording(field: str, value: Any, code: str) -> None:
    error = only_error(with_child(**{field: value}))
    assert (error.field, error.code) == (f"children.0.{field}", code)
    assert error.en == MESSAGES[code].en


def test_many_problems_are_reported_together_each_at_its_field() -> None:
    data = valid()
    data["source"] = "fax"
    data["concerns"] = []
    data["children"].append(deepcopy(data["children"][0]) | {"province_code": "26"})
    fields = {(e.field, e.code) for e in errors_of(data)}
    assert fields == {
        ("source", "unknown_source"),
        ("concerns", "no_concerns"),
        ("children.1.province_code", "unknown_province"),
    }


# --- the message catalogue --------------------------------------------------------------------


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@pytest.mark.parametrize("code", sorted(MESSAGES))
def test_every_code_has_a_khmer_message_with_the_same_placeholders(code: str) -> None:
    message = MESSAGES[code]
    assert message.en.strip() and message.km.strip()
    assert any("\u1780" <= ch <= "\u17ff" for ch in message.km), code
    assert _placeholders(message.en) == _placeholders(message.km)


def test_officer_facing_error_renders_both_languages() -> None:
    error = OfficerFacingError("unknown_province", code="26")
    assert str(error) == "Unknown province code 26."
    assert error.message("km") == "មិនស្គាល់លេខកូដខេត្ត 26។"
    with pytest.raises(KeyError):
        OfficerFacingError("no_such_code")


# --- phone numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("012 345 678", "+85512345678"),
        ("012345678", "+85512345678"),
        ("012-345-678", "+85512345678"),
        ("+855 12 345 678", "+85512345678"),
        ("855 12 345 678", "+85512345678"),
        ("(097) 123 4567", "+855971234567"),
        ("+66 81 234 5678", "+66812345678"),
    ],
)
def test_phone_numbers_become_e164(raw: str, e164: str) -> None:
    assert normalise_phone(raw) == e164


@pytest.mark.parametrize("raw", ["", "0123", "abc", "+855 1", "012 345 678 999 1"])
def test_invalid_phone_numbers_are_refused(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumber):
        normalise_phone(raw)


def test_a_normalised_number_normalises_to_itself_and_a_plain_string_is_still_checked() -> None:
    number = normalise_phone("012 345 678")
    assert normalise_phone(number) is number  # not parsed again
    assert normalise_phone("+85512345678") == number
    with pytest.raises(InvalidPhoneNumber):
        normalise_phone("+8551")  # E.164-looking text is checked like any other


# --- reference --------------------------------------------------------------------------------


def test_reference_format() -> None:
    assert format_reference(2026, 123) == "REF-2026-000123"
    assert format_reference(2026, 999_999) == "REF-2026-999999"
    assert parse_reference(" ref-2026-000123 ") == (2026, 123)


@pytest.mark.parametrize(("year", "sequence"), [(2026, 0), (2026, 1_000_000), (99, 1)])
def test_reference_out_of_range(year: int, sequence: int) -> None:
    with pytest.raises(ValueError):
        format_reference(year, sequence)


@pytest.mark.parametrize("text", ["REF-2026-123", "2026-000123", "REF-2026-000000"])
def test_reference_typed_wrong(text: str) -> None:
    with pytest.raises(OfficerFacingError) as caught:
        parse_reference(text)
    assert caught.value.code == "invalid_reference"


# --- status lifecycle -------------------------------------------------------------------------

S = ReferralStatus


def test_allowed_transitions() -> None:
    assert {(a, b) for a, targets in ALLOWED_TRANSITIONS.items() for b in targets} == {
        (S.SUBMITTED, S.TRIAGED),
        (S.SUBMITTED, S.WITHDRAWN),
        (S.TRIAGED, S.LINKED),
        (S.TRIAGED, S.CASE_OPENED),
        (S.TRIAGED, S.WITHDRAWN),
    }
    assert not can_transition(S.SUBMITTED, S.CASE_OPENED)
    assert not can_transition(S.WITHDRAWN, S.TRIAGED)


def submitted() -> Referral:
    return Referral.submit(
        validate(valid()),
        referral_id=uuid4(),
        reference=format_reference(2026, 1),
        submitted_by="officer.dara",
        at=NOW,
    )


def test_submit_triage_and_open_a_case() -> None:
    referral = submitted()
    assert referral.status is S.SUBMITTED
    referral.apply_triage(triage(referral.details), at=NOW)
    referral.mark_case_opened(case_id="case-1", at=NOW)
    assert referral.status is S.CASE_OPENED
    assert referral.version == 3
    assert [type(e).__name__ for e in referral.events] == [
        "ReferralSubmitted",
        "ReferralTriaged",
        "ReferralCaseOpened",
    ]
    assert [(h.from_status, h.to_status) for h in referral.history] == [
        (None, S.SUBMITTED),
        (S.SUBMITTED, S.TRIAGED),
        (S.TRIAGED, S.CASE_OPENED),
    ]


def test_a_case_cannot_open_before_triage() -> None:
    referral = submitted()
    with pytest.raises(OfficerFacingError) as caught:
        referral.mark_case_opened(case_id="case-1", at=NOW)
    assert caught.value.code == "invalid_status_transition"
    assert str(caught.value) == "A referral that is submitted cannot become case_opened."
    assert referral.status is S.SUBMITTED and referral.version == 1


def test_withdraw_records_reason_and_who() -> None:
    referral = submitted()
    referral.withdraw(reason_code="duplicate_call", by="officer.dara", at=NOW)
    assert referral.status is S.WITHDRAWN
    assert referral.history[-1].reason_code == "duplicate_call"
    assert referral.history[-1].by == "officer.dara"
    with pytest.raises(OfficerFacingError) as caught:
        referral.withdraw(reason_code="again", by="officer.dara", at=NOW)
    assert caught.value.code == "invalid_status_transition"


def test_withdraw_reason_must_be_a_code() -> None:
    with pytest.raises(OfficerFacingError) as caught:
        submitted().withdraw(reason_code="Caller said sorry", by="officer.dara", at=NOW)
    assert caught.value.code == "invalid_reason_code"


def test_naive_timestamps_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        submitted().apply_triage(triage(validate(valid())), at=datetime(2026, 3, 1, 10))


# --- provinces --------------------------------------------------------------------------------


def test_the_25_provinces_by_official_code() -> None:
    from cpu_intake.domain.provinces import province, provinces

    assert list(provinces()) == [f"{n:02d}" for n in range(1, 26)]
    phnom_penh = province("12")
    assert phnom_penh is not None
    assert (phnom_penh.name_en, phnom_penh.name_km) == ("Phnom Penh", "ភ្នំពេញ")
    assert province("26") is None
