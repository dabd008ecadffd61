"""A tip report as the platform receives it (CONTRACT.md section 6): the model, its validation
and its content fingerprint.

Only hashes and metadata of files are accepted. A report that carries file content (a
``data``/``content``/``bytes``/... field, a ``data:`` URI or a long base64 run in a text field)
is refused with the code ``file_payload``: the platform must never hold abuse imagery.

Reasons never echo a value: they end up in dead-letter headers and logs, and a value may be a
child's name, a phone number or worse. A reason names the field (``files[0].md5``) and says
what is wrong with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from hashlib import sha256
from ipaddress import ip_address
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

IncidentType = Literal[
    "child_sexual_abuse_material",
    "online_enticement",
    "child_sex_trafficking",
    "child_sex_tourism",
    "child_sexual_molestation",
    "unsolicited_obscene_material_to_child",
    "misleading_domain_name",
    "misleading_content",
    "other",
]
ReportAnnotation = Literal[
    "sextortion",
    "csam_solicitation",
    "minor_to_minor_interaction",
    "sadistic_online_exploitation",
    "informational",
]
ProviderPriority = Literal["1", "2", "3", "E"]
IpEventKind = Literal["login", "upload", "registration", "purchase", "other", "unknown"]
VictimSex = Literal["female", "male", "other", "unknown"]
RejectionCode = Literal["invalid_report", "file_payload"]

INCIDENT_TYPES: Final[frozenset[str]] = frozenset(IncidentType.__args__)  # type: ignore[attr-defined]
REPORT_ANNOTATIONS: Final[frozenset[str]] = frozenset(ReportAnnotation.__args__)  # type: ignore[attr-defined]

MAX_REASON_CHARS: Final = 1000  # a Kafka header or a log line, not an essay
FINGERPRINT_VERSION: Final = "tip-v1"

# Keys that carry file content, compared after lower-casing and dropping "_" and "-".
PAYLOAD_KEYS: Final[frozenset[str]] = frozenset(
    {
        "data",
        "content",
        "contents",
        "bytes",
        "base64",
        "payload",
        "blob",
        "binary",
        "filedata",
        "filecontent",
        "filecontents",
        "filebytes",
        "filebody",
        "rawdata",
        "imagedata",
        "imagebytes",
        "imagecontent",
        "videodata",
        "videobytes",
        "thumbnail",
        "thumbnaildata",
        "datauri",
        "dataurl",
        "encodedfile",
        "attachmentdata",
        "media64",
    }
)
_DATA_URI = re.compile(r"data:[a-z0-9.+-]+/[a-z0-9.+-]+[;,]", re.IGNORECASE)
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{1024,}")


def is_payload_key(key: str) -> bool:
    """True when a field of this name would carry file content rather than metadata."""
    return key.lower().replace("_", "").replace("-", "") in PAYLOAD_KEYS


def text_carries_file(text: str) -> bool:
    """True when free text embeds a file: a ``data:`` URI or a long run of base64."""
    return bool(_DATA_URI.search(text)) or (len(text) >= 1024 and bool(_BASE64_RUN.search(text)))


# Field names a reason may show. Any other key came from the input and could itself be
# personal data (a name, a phone number used as a key): it is shown as "<field>".
# Filled in below, once the models exist; parsing adds the XML and CMT names it reads.
KNOWN_FIELD_NAMES: set[str] = {"report"}


def safe_field_name(name: object) -> str:
    """A field name fit for a reason: a known name, a payload key, or ``<field>``."""
    if isinstance(name, int):
        return str(name)
    if isinstance(name, str) and (name in KNOWN_FIELD_NAMES or is_payload_key(name)):
        return name
    return "<field>"


def field_path(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """``("files", 0, "md5")`` as ``files[0].md5``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + safe_field_name(part)
    return out or "report"


def find_file_payload(obj: Any, path: tuple[int | str, ...] = ()) -> str | None:
    """The path of the first field that carries file content, or None.

    For loosely mapped inputs (the CMT export) whose unknown keys are otherwise ignored.
    """
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            sub = (*path, key)
            if isinstance(key, str) and is_payload_key(key) and value not in (None, "", [], {}):
                return field_path(sub)
            found = find_file_payload(value, sub)
            if found:
                return found
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            found = find_file_payload(value, (*path, i))
            if found:
                return found
    elif isinstance(obj, str) and text_carries_file(obj):
        return field_path(path)
    return None


PAYLOAD_REFUSED: Final = "file content is refused: send only hashes and metadata"


class TipReportError(ValueError):
    """A report refused: ``code`` says the kind, ``reasons`` name the fields (never values)."""

    def __init__(self, code: RejectionCode, reasons: tuple[str, ...]) -> None:
        self.code: RejectionCode = code
        self.reasons = reasons or ("invalid report",)
        super().__init__(self.reason)

    @property
    def reason(self) -> str:
        """All reasons in one line, at most :data:`MAX_REASON_CHARS` characters."""
        text = "; ".join(self.reasons)
        return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"


def payload_refusal(where: str) -> TipReportError:
    """The rejection of a report that carries file content at ``where`` (a field path)."""
    return TipReportError("file_payload", (f"{where}: {PAYLOAD_REFUSED}",))


# --- field types --------------------------------------------------------------------------


def _no_file(text: str) -> str:
    if text_carries_file(text):
        raise PydanticCustomError("file_payload", PAYLOAD_REFUSED)
    return text


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _to_utc(value: datetime) -> datetime:
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _priority(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        value = value.strip()
        return value.upper() if value.lower() == "e" else value
    return value


# Dotted-quad IPv4 without leading zeros (already canonical) or something IPv6-like; checked
# in Rust by pydantic-core, so only IPv6 costs a Python call (to ipaddress) below.
_IP_PATTERN = (
    r"^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
    r"(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}"
    r"|[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*)$"
)


def _ipv6(value: str) -> str:
    if ":" not in value:
        return value
    try:
        address = ip_address(value)
    except ValueError:
        raise PydanticCustomError("ip_address", "not an IPv4 or IPv6 address") from None
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


# Pattern and lower-casing both run in pydantic-core (no Python call per hash).
Md5 = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{32}$", to_lower=True)]
Sha1 = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{40}$", to_lower=True)]
Pdq = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$", to_lower=True)]
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
# Too short to carry an image worth the name; long free text is checked for embedded files.
ShortText = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")]
IpAddress = Annotated[
    str, StringConstraints(max_length=64, pattern=_IP_PATTERN), AfterValidator(_ipv6)
]
Email = Annotated[str, Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]
Phone = Annotated[str, Field(max_length=40, pattern=r"^[+(]{0,2}[0-9][0-9 ()./+-]{2,39}$")]


# Free text: blank is absent, and no embedded file.
EscalationText = Annotated[
    Annotated[str, Field(max_length=2000), AfterValidator(_no_file)] | None,
    BeforeValidator(_blank_to_none),
]
NarrativeText = Annotated[
    Annotated[str, Field(max_length=20_000), AfterValidator(_no_file)] | None,
    BeforeValidator(_blank_to_none),
]


class _Model(BaseModel):
    # Unknown fields are refused, which is also what catches a file payload in any field.
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class IpEvent(_Model):
    """An IP address the provider saw the reported user at."""

    ip: IpAddress
    event: IpEventKind = "unknown"
    at: UtcDatetime | None = None


class ReportedPerson(_Model):
    """One reported user or account: identifiers only, as the provider knows them."""

    screen_names: tuple[ShortText, ...] = Field(default=(), max_length=100)
    emails: tuple[Email, ...] = Field(default=(), max_length=100)
    phones: tuple[Phone, ...] = Field(default=(), max_length=100)
    ip_events: tuple[IpEvent, ...] = Field(default=(), max_length=1000)


class Victim(_Model):
    """A child the report is about: an estimated age and sex, nothing that identifies them."""

    age_estimate: Annotated[int, Field(ge=0, le=120)] | None = None
    sex: VictimSex | None = None


class FileRef(_Model):
    """A reported file: hashes and metadata, never content."""

    file_name: Annotated[str, Field(max_length=1024), AfterValidator(_no_file)] | None = None
    md5: Md5 | None = None
    sha1: Sha1 | None = None
    pdq: Pdq | None = None
    viewed_by_provider: bool | None = None
    publicly_available: bool | None = None

    @model_validator(mode="after")
    def _needs_a_hash(self) -> FileRef:
        if self.md5 is None and self.sha1 is None and self.pdq is None:
            raise PydanticCustomError("missing_hash", "a file needs at least one of md5, sha1, pdq")
        return self


class Reporter(_Model):
    """The electronic service provider (or other body) that made the report."""

    name: Annotated[str | None, Field(max_length=256)] = None
    type: Annotated[str | None, Field(pattern=r"^[a-z_]{1,32}$")] = None
    email: Email | None = None


_NOT_CONTENT: Final = {"provider", "report_id"}


class TipReport(_Model):
    """A tip report in the platform's normalised shape (CONTRACT.md section 6)."""

    provider: Annotated[str, Field(pattern=r"^(ncmec|hsi|interpol|esp:[a-z0-9][a-z0-9._-]{0,62})$")]
    report_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")]
    incident_type: IncidentType
    annotations: tuple[ReportAnnotation, ...] = Field(default=(), max_length=16)
    escalation_reason: EscalationText = None
    incident_at: UtcDatetime | None = None
    provider_priority: Annotated[ProviderPriority | None, BeforeValidator(_priority)] = None
    reporter: Reporter | None = None
    reported_persons: tuple[ReportedPerson, ...] = Field(default=(), max_length=100)
    victims: tuple[Victim, ...] = Field(default=(), max_length=100)
    files: tuple[FileRef, ...] = Field(default=(), max_length=1000)
    narrative: NarrativeText = None

    @field_validator("annotations")
    @classmethod
    def _annotations_are_a_set(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted(set(value)))

    @property
    def key(self) -> tuple[str, str]:
        """What identifies a report across re-sends: ``(provider, report_id)``."""
        return (self.provider, self.report_id)

    def content_fingerprint(self) -> str:
        """SHA-256 (hex) of the normalised report, provider and report_id left out.

        Two reports with the same key and fingerprint are the same report (a re-send to
        ignore); a different fingerprint is a new version. Normalisation is what validation
        already did (lower-case hashes, canonical IPs, UTC times, annotations as a sorted set,
        blank text as absent); keys come in the model's fixed order, and list order is
        significant, as the provider sent it. ``FINGERPRINT_VERSION`` changes whenever the
        model's serialised form does.
        """
        body = self.model_dump_json(exclude=_NOT_CONTENT, exclude_none=True)
        return _fingerprint(body)

    def serialised(self) -> tuple[str, str]:
        """The report as JSON without absent (None) fields, which is how it is stored, and
        its :meth:`content_fingerprint`, from one serialisation: the fingerprint's body is
        that JSON without its first two members, ``provider`` and ``report_id`` (required,
        first in the model's order, and plain ASCII by their patterns). Tested equal."""
        text = self.model_dump_json(exclude_none=True)
        head = f'{{"provider":"{self.provider}","report_id":"{self.report_id}",'
        if not text.startswith(head):  # never, by the patterns; the long way if it were
            return text, self.content_fingerprint()
        return text, _fingerprint("{" + text[len(head) :])

    def youngest_victim_age(self) -> int | None:
        """The lowest age estimate among the victims, or None when no age is known."""
        ages = [v.age_estimate for v in self.victims if v.age_estimate is not None]
        return min(ages) if ages else None

    def ip_addresses(self) -> list[str]:
        """Every distinct IP address in the report (canonical text), in order of first sight."""
        seen: dict[str, None] = {}
        for person in self.reported_persons:
            for event in person.ip_events:
                seen.setdefault(event.ip, None)
        return list(seen)


def _fingerprint(body: str) -> str:
    return sha256(f"{FINGERPRINT_VERSION}\n{body}".encode()).hexdigest()


for _model in (IpEvent, ReportedPerson, Victim, FileRef, Reporter, TipReport):
    KNOWN_FIELD_NAMES.update(_model.model_fields)


# --- validation entry points ---------------------------------------------------------------


_PATTERN_MESSAGES: Final[dict[str, str]] = {
    "md5": "not an MD5 hash (32 hexadecimal digits)",
    "sha1": "not a SHA-1 hash (40 hexadecimal digits)",
    "pdq": "not a PDQ hash (64 hexadecimal digits)",
    "ip": "not an IPv4 or IPv6 address",
    "provider": "not a known provider (ncmec, hsi, interpol or esp:<name>)",
    "report_id": "not a report id (letters, digits and . _ : / -, at most 128)",
    "emails": "not an e-mail address",
    "email": "not an e-mail address",
    "phones": "not a phone number",
    "screen_names": "has control characters",
    "type": "not a lower-case code",
}


def rejection_from(exc: ValidationError) -> TipReportError:
    """Turn pydantic's errors into a :class:`TipReportError` naming fields, not values."""
    payload_reasons: list[str] = []
    reasons: list[str] = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = tuple(err.get("loc", ()))
        where = field_path(loc)
        kind = err["type"]
        last = loc[-1] if loc else None
        if kind == "extra_forbidden" and isinstance(last, str) and is_payload_key(last):
            payload_reasons.append(f"{where}: {PAYLOAD_REFUSED}")
        elif kind == "file_payload":
            payload_reasons.append(f"{where}: {err['msg']}")
        elif kind == "extra_forbidden":
            reasons.append(f"{where}: unexpected field")
        elif kind == "string_pattern_mismatch":
            field_name = next((p for p in reversed(loc) if isinstance(p, str)), "")
            reasons.append(
                f"{where}: {_PATTERN_MESSAGES.get(field_name, 'not in the expected form')}"
            )
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
            reasons.append(f"{where}: {msg}")
    if payload_reasons:
        return TipReportError("file_payload", tuple(dict.fromkeys(payload_reasons)))
    return TipReportError("invalid_report", tuple(dict.fromkeys(reasons)))


def parse_tip_report(raw: Mapping[str, Any] | str | bytes) -> TipReport:
    """Validate one report given as a mapping or as JSON text; raise :class:`TipReportError`."""
    try:
        if isinstance(raw, str | bytes | bytearray):
            return TipReport.model_validate_json(raw)
        return TipReport.model_validate(raw)
    except ValidationError as exc:
        raise rejection_from(exc) from None
    except RecursionError:
        raise TipReportError("invalid_report", ("report: nested too deeply",)) from None


_REPORT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")


def safe_report_id(value: object) -> str | None:
    """The report id of a (possibly invalid) input when it has the right form, else None.

    Used to name a rejected report in an import answer without echoing arbitrary input.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and _REPORT_ID.match(value):
        return value
    return None
