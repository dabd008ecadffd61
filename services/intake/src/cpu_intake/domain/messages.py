"""Officer-facing messages, in English and Khmer, keyed by a stable code.

Every refusal the intake domain can give (a validation error on the referral form, a status
change that is not allowed, a match decision that breaks a rule) has a code here. The code is
the contract with the web UI and the API: it never changes; the wording may. Messages are
``str.format`` templates over the error's context (``{code}``, ``{max_length}``, ...), the same
placeholders in both languages.

The Khmer wording was written for this catalogue and should be reviewed by the unit's Khmer-
speaking officers; the English is the reference.

:func:`officer_errors` turns a pydantic ``ValidationError`` into a list of
:class:`OfficerError` (field path, code, English, Khmer), mapping pydantic's own error types
(missing field, wrong type, text too long, ...) to codes of this catalogue, so the UI never
shows pydantic's developer wording.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

Language = Literal["en", "km"]


@dataclass(frozen=True, slots=True)
class Message:
    """One message in both languages (``str.format`` templates)."""

    en: str
    km: str

    def render(self, language: Language = "en", /, **context: Any) -> str:
        template = self.km if language == "km" else self.en
        return template.format(**context)


MESSAGES: Mapping[str, Message] = {
    # --- the referral form -------------------------------------------------------------------
    "required": Message(
        "This field is required.",
        "សូមបំពេញព័ត៌មាននេះ។",
    ),
    "unknown_field": Message(
        "This field is not part of a referral.",
        "ព័ត៌មាននេះមិនមែនជាផ្នែកនៃការបញ្ជូនទេ។",
    ),
    "invalid_value": Message(
        "This value is not valid.",
        "តម្លៃនេះមិនត្រឹមត្រូវទេ។",
    ),
    "invalid_number": Message(
        "Enter a whole number.",
        "សូមបញ្ចូលចំនួនគត់។",
    ),
    "invalid_yes_no": Message(
        "Answer yes or no.",
        "សូមឆ្លើយ បាទ/ចាស ឬ ទេ។",
    ),
    "invalid_date": Message(
        "Enter a date as YYYY-MM-DD.",
        "សូមបញ្ចូលកាលបរិច្ឆេទជាទម្រង់ YYYY-MM-DD។",
    ),
    "invalid_datetime": Message(
        "Enter a date and time.",
        "សូមបញ្ចូលកាលបរិច្ឆេទ និងម៉ោង។",
    ),
    "invalid_choice": Message(
        "Choose one of the listed options.",
        "សូមជ្រើសរើសជម្រើសមួយក្នុងបញ្ជី។",
    ),
    "text_too_long": Message(
        "This text is too long: at most {max_length} characters.",
        "អត្ថបទនេះវែងពេក៖ យ៉ាងច្រើន {max_length} តួអក្សរ។",
    ),
    "too_many_items": Message(
        "Too many entries: at most {max_length}.",
        "ចំនួនច្រើនពេក៖ យ៉ាងច្រើន {max_length}។",
    ),
    "unknown_source": Message(
        "Unknown source of referral '{value}'.",
        "មិនស្គាល់ប្រភពនៃការបញ្ជូន '{value}'។",
    ),
    "received_at_no_timezone": Message(
        "The date received must include a time zone.",
        "កាលបរិច្ឆេទទទួលបាន ត្រូវតែមានតំបន់ម៉ោង។",
    ),
    "received_at_in_future": Message(
        "The date received is in the future.",
        "កាលបរិច្ឆេទទទួលបាន ស្ថិតនៅពេលអនាគត។",
    ),
    "invalid_phone": Message(
        "'{value}' is not a valid phone number.",
        "'{value}' មិនមែនជាលេខទូរស័ព្ទត្រឹមត្រូវទេ។",
    ),
    "anonymous_reporter_identified": Message(
        "An anonymous reporter cannot have a name or phone number.",
        "អ្នករាយការណ៍អនាមិក មិនអាចមានឈ្មោះ ឬលេខទូរស័ព្ទបានទេ។",
    ),
    "reporter_unidentified": Message(
        "Give the reporter's name or phone number, or mark the reporter as anonymous.",
        "សូមផ្តល់ឈ្មោះ ឬលេខទូរស័ព្ទរបស់អ្នករាយការណ៍ ឬសម្គាល់ថាជាអ្នករាយការណ៍អនាមិក។",
    ),
    "no_children": Message(
        "Give at least one child.",
        "សូមផ្តល់ព័ត៌មានកុមារយ៉ាងហោចណាស់ម្នាក់។",
    ),
    "name_km_not_khmer": Message(
        "The Khmer name must be written in Khmer script.",
        "ឈ្មោះជាភាសាខ្មែរ ត្រូវតែសរសេរជាអក្សរខ្មែរ។",
    ),
    "age_out_of_range": Message(
        "Age must be between 0 and 17.",
        "អាយុត្រូវតែនៅចន្លោះពី ០ ដល់ ១៧ ឆ្នាំ។",
    ),
    "age_or_date_of_birth_required": Message(
        "Give the child's date of birth or an estimated age.",
        "សូមផ្តល់ថ្ងៃខែឆ្នាំកំណើតរបស់កុមារ ឬអាយុប្រហាក់ប្រហែល។",
    ),
    "date_of_birth_in_future": Message(
        "The date of birth is in the future.",
        "ថ្ងៃខែឆ្នាំកំណើតស្ថិតនៅពេលអនាគត។",
    ),
    "date_of_birth_after_received": Message(
        "The date of birth is after the date received.",
        "ថ្ងៃខែឆ្នាំកំណើតស្ថិតនៅក្រោយកាលបរិច្ឆេទទទួលបាន។",
    ),
    "date_of_birth_adult": Message(
        "This date of birth makes the child 18 or older; intake is for children under 18.",
        "ថ្ងៃខែឆ្នាំកំណើតនេះ បង្ហាញថាកុមារមានអាយុ ១៨ ឆ្នាំ ឬលើសពីនេះ។ "
        "ការទទួលករណីនេះ សម្រាប់តែកុមារអាយុក្រោម ១៨ ឆ្នាំប៉ុណ្ណោះ។",
    ),
    "unknown_province": Message(
        "Unknown province code {code}.",
        "មិនស្គាល់លេខកូដខេត្ត {code}។",
    ),
    "no_concerns": Message(
        "Give at least one concern.",
        "សូមផ្តល់កង្វល់យ៉ាងហោចណាស់មួយ។",
    ),
    "unknown_concern": Message(
        "Unknown concern '{value}'.",
        "មិនស្គាល់ប្រភេទកង្វល់ '{value}'។",
    ),
    "perpetrator_age_out_of_range": Message(
        "The age of the alleged perpetrator must be between 0 and 120.",
        "អាយុរបស់ជនសង្ស័យ ត្រូវតែនៅចន្លោះពី ០ ដល់ ១២០ ឆ្នាំ។",
    ),
    "narrative_too_long": Message(
        "The narrative is too long: at most {max_length} characters.",
        "ការរៀបរាប់វែងពេក៖ យ៉ាងច្រើន {max_length} តួអក្សរ។",
    ),
    # --- the referral's life -----------------------------------------------------------------
    "invalid_reference": Message(
        "A reference looks like REF-2026-000123.",
        "លេខយោងមានទម្រង់ដូចជា REF-2026-000123។",
    ),
    "invalid_status_transition": Message(
        "A referral that is {current} cannot become {target}.",
        "ការបញ្ជូនដែលមានស្ថានភាព {current} មិនអាចប្តូរទៅជា {target} បានទេ។",
    ),
    "invalid_reason_code": Message(
        "The reason must be a short code of lower-case letters and underscores.",
        "មូលហេតុត្រូវតែជាកូដខ្លី ដែលមានអក្សរតូច និងសញ្ញា _ ប៉ុណ្ណោះ។",
    ),
    "referral_not_found": Message(
        "No referral with this id, or it is not one you may see.",
        "រកមិនឃើញការបញ្ជូនដែលមានលេខសម្គាល់នេះទេ ឬអ្នកមិនមានសិទ្ធិមើលវា។",
    ),
    "referral_changed": Message(
        "Someone else changed this referral at the same moment; reload it and try again.",
        "មានអ្នកផ្សេងបានកែប្រែការបញ្ជូននេះក្នុងពេលតែមួយ។ សូមផ្ទុកវាឡើងវិញ ហើយព្យាយាមម្តងទៀត។",
    ),
    "unsupported_media_type": Message(
        "Intake accepts no files or attachments: send the form as text only.",
        "ការទទួលករណីមិនទទួលយកឯកសារ ឬឯកសារភ្ជាប់ទេ៖ សូមផ្ញើតែទម្រង់ជាអត្ថបទប៉ុណ្ណោះ។",
    ),
    # --- match decisions ---------------------------------------------------------------------
    "match_self": Message(
        "A referral cannot be matched with itself.",
        "ការបញ្ជូនមិនអាចផ្គូផ្គងជាមួយខ្លួនឯងបានទេ។",
    ),
    "match_already_decided": Message(
        "A decision on this match has already been recorded.",
        "ការសម្រេចលើការផ្គូផ្គងនេះ ត្រូវបានកត់ត្រារួចហើយ។",
    ),
    "match_not_a_candidate": Message(
        "That referral is not one of the possible matches.",
        "ការបញ្ជូននោះ មិនមែនជាការផ្គូផ្គងដែលអាចកើតមានទេ។",
    ),
    "match_decision_not_open": Message(
        "Match decisions can only be made on a triaged referral, not one that is {status}.",
        "ការសម្រេចលើការផ្គូផ្គង អាចធ្វើបានតែលើការបញ្ជូនដែលបានចាត់ថ្នាក់រួច "
        "មិនមែនការបញ្ជូនដែលមានស្ថានភាព {status} ទេ។",
    ),
}

# pydantic's own error types -> our codes. Anything not listed becomes ``invalid_value``.
_PYDANTIC_TYPES: Mapping[str, str] = {
    "missing": "required",
    "extra_forbidden": "unknown_field",
    "string_too_long": "text_too_long",
    "too_long": "too_many_items",
    "int_parsing": "invalid_number",
    "int_type": "invalid_number",
    "int_from_float": "invalid_number",
    "bool_parsing": "invalid_yes_no",
    "bool_type": "invalid_yes_no",
    "date_parsing": "invalid_date",
    "date_type": "invalid_date",
    "date_from_datetime_parsing": "invalid_date",
    "date_from_datetime_inexact": "invalid_date",
    "datetime_parsing": "invalid_datetime",
    "datetime_type": "invalid_datetime",
    "datetime_from_date_parsing": "invalid_datetime",
    "literal_error": "invalid_choice",
    "enum": "invalid_choice",
}


class OfficerFacingError(Exception):
    """A domain rule refused something; ``code`` is a key of :data:`MESSAGES`.

    The HTTP layer answers 409 (or 422) with ``code`` and both messages; nothing else about
    the refusal needs to be known outside the domain.
    """

    def __init__(self, code: str, /, **context: Any) -> None:
        if code not in MESSAGES:
            raise KeyError(f"no message for code {code!r}")
        self.code = code
        self.context = context
        super().__init__(self.message("en"))

    def message(self, language: Language = "en") -> str:
        return MESSAGES[self.code].render(language, **self.context)


@dataclass(frozen=True, slots=True)
class OfficerError:
    """One validation problem as the form shows it, next to the field ``field``."""

    field: str  # dotted path: "children.0.date_of_birth"; "" for the whole referral
    code: str
    en: str
    km: str


def custom_error(code: str, /, **context: Any) -> PydanticCustomError:
    """The pydantic error for ``code``: its ``type`` is the code, its ``msg`` the English."""
    return PydanticCustomError(code, MESSAGES[code].en, context or None)


# (location, code, the input refused, message context)
Problem = tuple[tuple[str | int, ...], str, Any, dict[str, Any]]


def validation_error(title: str, problems: Sequence[Problem]) -> ValidationError:
    """A ValidationError carrying several custom errors at given locations (loc, code, input,
    context), so a cross-field check still points the UI at the right field."""
    details = [
        InitErrorDetails(type=custom_error(code, **ctx), loc=loc, input=value)
        for loc, code, value, ctx in problems
    ]
    return ValidationError.from_exception_data(title, details)


def officer_errors(exc: ValidationError) -> list[OfficerError]:
    """Each error of ``exc`` with its field path, code and message in both languages."""
    return officer_errors_from(exc.errors())


def officer_errors_from(errors: Iterable[Mapping[str, Any]]) -> list[OfficerError]:
    """:func:`officer_errors` for error dicts in pydantic's shape (``type``, ``loc``, ``ctx``),
    e.g. those of FastAPI's ``RequestValidationError``; the caller strips any ``body`` prefix
    from ``loc`` first."""
    out = []
    for error in errors:
        kind = error["type"]
        context = dict(error.get("ctx") or {})
        code = kind if kind in MESSAGES else _PYDANTIC_TYPES.get(kind, "invalid_value")
        message = MESSAGES[code]
        try:
            en, km = message.render("en", **context), message.render("km", **context)
        except (KeyError, IndexError):  # a pydantic context lacking a placeholder
            code, message = "invalid_value", MESSAGES["invalid_value"]
            en, km = message.en, message.km
        field = ".".join(str(part) for part in error["loc"])
        out.append(OfficerError(field=field, code=code, en=en, km=km))
    return out
