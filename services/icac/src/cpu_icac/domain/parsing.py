"""Import files of tip reports: JSON lines, CyberTipline XML and NCMEC's Case Management Tool
(CMT) JSON export, each turned into one :class:`ImportItem` per report.

Two kinds of failure, kept apart on purpose:

- A file that is not safe or not possible to read is refused WHOLE with a :class:`TipFileError`
  (``http_status`` 400, 413 or 415): a DTD, an entity declaration or an external reference, XML
  nested deeper than :data:`MAX_XML_DEPTH`, malformed XML or CMT JSON, more than ``max_bytes``,
  or a format this module does not know.
- Otherwise each report stands alone: a bad one becomes an item with a rejection (its reason
  names fields, never values) and the good ones go in.

Reading streams: :func:`iter_tip_file` reads the source in chunks and yields items as it goes,
so a large file is never held whole (the CMT export, one JSON document, is the exception, within
``max_bytes``). A file-level error can therefore surface after some items were yielded: a caller
that consumes the iterator must stage what it gets (one transaction) and drop it on error.
:func:`parse_tip_file` does that in memory and returns all items or raises.

XML is read by ``defusedxml``'s expat parser with DTDs, entities and external references
forbidden; each is reported as its own error type. Expat has no depth limit, so the parser's
target counts depth and stops at 65.

Format mapping decisions (the samples and README in shared/data/tips):

- XML ``<reports provider=…>``/``<submission reportId=… priority=…>`` carry provider, report_id
  and provider_priority; ``<report>`` follows NCMEC's schema; each ``<fileDetails>`` of the
  submission is one file (its ``reportId``, when given, must match the submission's).
- A bare ``<report>`` takes ``report_id`` from the parameter, else ``xml-`` + the first 32 hex
  digits of its content fingerprint (so the same file imported twice is the same report);
  it has no priority and no files (the schema keeps files in a separate document).
- ``incidentType``: the eight schema labels map to the platform codes (platform codes are
  accepted as they are); any other value rejects the report, since the schema's list is closed.
- ``reportAnnotations``: known child elements map to the platform codes, unknown ones are
  ignored. ``escalateToHighPriority`` is the escalation reason.
- ``incidentSummary/platform`` is the reporter's name and ``reporter/reportingPerson/email`` its
  e-mail; a phone's ``countryCallingCode`` is prefixed to it; ``ipCaptureEvent/eventName`` is
  lower-cased (unknown names become ``other``, a missing one ``unknown``); ``victimPerson/age``
  is the age estimate (else the age at the incident from ``dateOfBirth``); every
  ``additionalInfo`` of the report, joined by newlines, is the narrative.
- CMT: ``reportId`` → report_id, ``reportingEsp.espName`` → reporter, ``reportedPersons[]`` →
  screen name, e-mails, phones, ``sourceInformation.sourceCaptures[]`` of type IP address;
  ``uploadedFiles[]``: ``originalFilename`` (else ``filename``), ``verificationHash`` (MD5, or
  SHA-1 when 40 hex digits), ``viewedByEsp``, ``publiclyAvailable``; ``additionalInformations``
  → narrative. File-level source captures, ``ncmecTags``, ``espUserId`` and ``approximateAge``
  of the reported person are not used.
- Elements and keys the platform does not use are ignored, never rejected; but a field that
  carries file content, anywhere in a report, rejects it (code ``file_payload``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from hashlib import sha256
from typing import IO, Any, Final, Literal
from xml.etree.ElementTree import Element, ParseError, TreeBuilder, tostring

from defusedxml.ElementTree import DefusedXMLParser
from pydantic import ValidationError

from cpu_icac.domain.media import may_carry_file
from cpu_icac.domain.tip_report import (
    INCIDENT_TYPES,
    KNOWN_FIELD_NAMES,
    TipReport,
    TipReportError,
    find_file_payload,
    is_payload_key,
    parse_tip_report,
    payload_refusal,
    rejection_from,
    safe_field_name,
    safe_report_id,
    text_carries_file,
)

TipFileFormat = Literal["jsonl", "cybertip_xml", "cmt_json"]

DEFAULT_MAX_BYTES: Final = 50 * 1024 * 1024
MAX_XML_DEPTH: Final = 64
CHUNK_BYTES: Final = 64 * 1024
DEFAULT_PROVIDER: Final = "ncmec"

# --- file-level errors ---------------------------------------------------------------------


class TipFileError(ValueError):
    """The whole file is refused. ``http_status`` is what the HTTP layer answers."""

    http_status: int = 400
    code: str = "bad_file"


class TipFileTooLarge(TipFileError):
    """More bytes than the configured limit."""

    http_status = 413
    code = "too_large"


class UnsupportedTipFormat(TipFileError):
    """Neither JSON lines, CyberTipline XML nor a CMT export."""

    http_status = 415
    code = "unsupported_format"


class MalformedTipFile(TipFileError):
    """Not well-formed XML, or a CMT export that is not JSON."""

    code = "malformed"


class UnsafeXml(TipFileError):
    """XML that asks the parser to do something dangerous."""

    code = "unsafe_xml"


class XmlDtdForbidden(UnsafeXml):
    """A document type declaration (DTD)."""

    code = "xml_dtd_forbidden"


class XmlEntityForbidden(UnsafeXml):
    """An entity declaration (the road to entity expansion, "billion laughs")."""

    code = "xml_entity_forbidden"


class XmlExternalReferenceForbidden(UnsafeXml):
    """A reference to something outside the file (a SYSTEM/PUBLIC identifier)."""

    code = "xml_external_reference_forbidden"


class XmlTooDeep(UnsafeXml):
    """Elements nested deeper than the limit."""

    code = "xml_too_deep"


# --- items ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportItem:
    """What became of one report of a file: a valid report, or a rejection with its reason.

    ``index`` counts reports from 0 in file order; ``location`` says where to look in the file
    ("line 7", "submission 2"); ``report_id`` is known for a rejection when the input gave one
    of the right form. ``raw`` is the rejected report's own bytes (for quarantine), at most
    :data:`MAX_RAW_KEPT` of them, and never for a ``file_payload`` rejection: those bytes
    carry the file itself, which the platform must not hold.
    """

    index: int
    location: str
    report: TipReport | None = None
    rejection: TipReportError | None = None
    report_id: str | None = None
    raw: bytes | None = None

    @property
    def ok(self) -> bool:
        return self.report is not None


MAX_RAW_KEPT: Final = 256 * 1024


def kept_raw(rejection: TipReportError, raw: Callable[[], bytes] | bytes | None) -> bytes | None:
    """The bytes of a rejected report worth keeping in quarantine: none for a file payload
    (they are the file), none that may hold a file anyway (see :func:`may_carry_file`: a
    report refused for another reason may still embed one), none over :data:`MAX_RAW_KEPT`."""
    if rejection.code == "file_payload" or raw is None:
        return None
    data = raw() if callable(raw) else raw
    if len(data) > MAX_RAW_KEPT or may_carry_file(data):
        return None  # not detected as a payload field, but could still hold a file
    return data


def _item(
    index: int,
    location: str,
    build: Callable[[], TipReport],
    report_id: str | None,
    raw: Callable[[], bytes] | None = None,
) -> ImportItem:
    try:
        report = build()
    except TipReportError as exc:
        return ImportItem(
            index, location, rejection=exc, report_id=report_id, raw=kept_raw(exc, raw)
        )
    return ImportItem(index, location, report=report, report_id=report.report_id)


# --- reading with a size limit -------------------------------------------------------------


def _chunks(source: bytes | IO[bytes], max_bytes: int) -> Iterator[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        if len(source) > max_bytes:
            raise TipFileTooLarge(f"the file is larger than the limit of {max_bytes} bytes")
        data = bytes(source)
        for start in range(0, len(data), CHUNK_BYTES):
            yield data[start : start + CHUNK_BYTES]
        return
    total = 0
    while True:
        chunk = source.read(CHUNK_BYTES)
        if not chunk:
            return
        total += len(chunk)
        if total > max_bytes:
            raise TipFileTooLarge(f"the file is larger than the limit of {max_bytes} bytes")
        yield chunk


def _peek(chunks: Iterator[bytes]) -> tuple[bytes, Iterator[bytes]]:
    """The first non-blank bytes (enough to tell the format), and all chunks still to read.
    Blank bytes are dropped from the look-ahead as they come, so a file of megabytes of
    whitespace costs linear time."""
    head = b""
    read: list[bytes] = []
    for chunk in chunks:
        read.append(chunk)
        head = (head + chunk).removeprefix(b"\xef\xbb\xbf").lstrip()
        if len(head) >= 64 or b"\n" in head:
            break

    def chained() -> Iterator[bytes]:
        yield from read
        yield from chunks

    return head, chained()


def detect_format(head: bytes) -> TipFileFormat:
    """Which of the three formats a file is, from its first bytes."""
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"<"):
        return "cybertip_xml"
    if text.startswith(b"["):
        return "cmt_json"
    if text.startswith(b"{"):
        first_line = text.partition(b"\n")[0].strip()
        if first_line == b"{":
            return "cmt_json"  # a pretty-printed document, not one object per line
        if b'"reportedInformation"' in first_line or b'"reportId"' in first_line:
            return "cmt_json"
        return "jsonl"  # (a broken first line is that line's rejection, not the file's)
    raise UnsupportedTipFormat("not JSON lines, CyberTipline XML or a CMT JSON export")


def iter_tip_file(
    source: bytes | IO[bytes],
    *,
    format: TipFileFormat | None = None,
    provider: str | None = None,
    report_id: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 1000,
) -> Iterator[ImportItem]:
    """Yield one :class:`ImportItem` per report of an import file, streaming.

    ``provider`` is used where the file does not say (XML without ``provider=``, CMT: default
    ``ncmec``); ``report_id`` names a bare XML ``<report>``. ``progress(items_done)`` is called
    every ``progress_every`` items and once at the end. Raises a :class:`TipFileError` when the
    whole file is refused, possibly after some items were yielded (see the module doc).
    """
    chunks = _chunks(source, max_bytes)
    if format is None:
        head, chunks = _peek(chunks)
        if not head.strip():
            raise UnsupportedTipFormat("the file is empty")
        format = detect_format(head)
    if format == "jsonl":
        items: Iterator[ImportItem] = _iter_jsonl(chunks)
    elif format == "cybertip_xml":
        items = _iter_xml(chunks, provider=provider, report_id=report_id)
    elif format == "cmt_json":
        items = _iter_cmt(chunks, provider=provider)
    else:
        raise UnsupportedTipFormat("unknown import format")
    done = 0
    for item in items:
        done += 1
        yield item
        if progress is not None and done % progress_every == 0:
            progress(done)
    if progress is not None and done % progress_every != 0:
        progress(done)


def parse_tip_file(
    source: bytes | IO[bytes],
    *,
    format: TipFileFormat | None = None,
    provider: str | None = None,
    report_id: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 1000,
) -> list[ImportItem]:
    """All items of a file, or a :class:`TipFileError` and none: the all-or-nothing form."""
    return list(
        iter_tip_file(
            source,
            format=format,
            provider=provider,
            report_id=report_id,
            max_bytes=max_bytes,
            progress=progress,
            progress_every=progress_every,
        )
    )


# --- JSON lines ----------------------------------------------------------------------------


def _lines(chunks: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """``(line number, line)`` from chunks; a line split across chunks is joined once."""
    partial: list[bytes] = []
    number = 0
    for chunk in chunks:
        pieces = chunk.split(b"\n")
        if len(pieces) == 1:
            partial.append(chunk)
            continue
        partial.append(pieces[0])
        number += 1
        yield number, b"".join(partial)
        for line in pieces[1:-1]:
            number += 1
            yield number, line
        partial = [pieces[-1]]
    tail = b"".join(partial)
    if tail:
        yield number + 1, tail


def _jsonl_report_id(line: bytes) -> str | None:
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return safe_report_id(obj.get("report_id")) if isinstance(obj, dict) else None


def _iter_jsonl(chunks: Iterable[bytes]) -> Iterator[ImportItem]:
    index = 0
    for number, raw in _lines(chunks):
        line = raw.removeprefix(b"\xef\xbb\xbf") if number == 1 else raw
        if not line.strip():
            continue
        try:
            report = TipReport.model_validate_json(line)
        except ValidationError as exc:
            rejection = rejection_from(exc)
            yield ImportItem(
                index,
                f"line {number}",
                rejection=rejection,
                report_id=_jsonl_report_id(line),
                raw=kept_raw(rejection, bytes(line)),
            )
        except RecursionError:
            rejection = TipReportError("invalid_report", ("report: nested too deeply",))
            yield ImportItem(
                index, f"line {number}", rejection=rejection, raw=kept_raw(rejection, bytes(line))
            )
        else:
            yield ImportItem(index, f"line {number}", report=report, report_id=report.report_id)
        index += 1


# --- CyberTipline XML ----------------------------------------------------------------------

INCIDENT_TYPE_LABELS: Final[dict[str, str]] = {
    "child pornography (possession, manufacture, and distribution)": "child_sexual_abuse_material",
    "child sex trafficking": "child_sex_trafficking",
    "child sex tourism": "child_sex_tourism",
    "child sexual molestation": "child_sexual_molestation",
    "misleading domain name": "misleading_domain_name",
    "misleading words or digital images on the internet": "misleading_content",
    "online enticement of children for sexual acts": "online_enticement",
    "unsolicited obscene material sent to a child": "unsolicited_obscene_material_to_child",
}
ANNOTATION_ELEMENTS: Final[dict[str, str]] = {
    "sextortion": "sextortion",
    "csamsolicitation": "csam_solicitation",
    "minortominorinteraction": "minor_to_minor_interaction",
    "sadisticonlineexploitation": "sadistic_online_exploitation",
    "informational": "informational",
}
IP_EVENT_NAMES: Final = frozenset(
    {"login", "upload", "registration", "purchase", "other", "unknown"}
)


# Names of the XML elements and CMT keys read here: a reason may show them (tip_report.py).
KNOWN_FIELD_NAMES.update(
    {
        "reports", "submission", "reportId", "priority", "fileDetails", "incidentSummary",
        "incidentType", "reportAnnotations", "escalateToHighPriority", "incidentDateTime",
        "platform", "internetDetails", "reportingPerson", "personOrUserReported",
        "personOrUserReportedPerson", "screenName", "email", "phone", "espIdentifier",
        "ipCaptureEvent", "ipAddress", "eventName", "dateTime", "victim", "victimPerson", "age",
        "dateOfBirth", "additionalInfo", "fileId", "originalFileName", "fileViewedByEsp",
        "publiclyAvailable", "originalFileHash", "reportedInformation", "reportingEsp",
        "espName", "reportedPeople", "reportedPersons", "emails", "phones", "sourceInformation",
        "sourceCaptures", "uploadedFiles", "filename", "originalFilename", "verificationHash",
        "viewedByEsp", "ncmecTags", "groups", "tags", "value", "additionalInformations",
    }
)  # fmt: skip


def incident_type_code(label: str | None, where: str) -> str:
    """The platform code of a CyberTipline incident type label (or of a platform code)."""
    if label is None or not label.strip():
        raise TipReportError("invalid_report", (f"{where}: missing",))
    key = " ".join(label.split()).lower()
    if key in INCIDENT_TYPE_LABELS:
        return INCIDENT_TYPE_LABELS[key]
    if key in INCIDENT_TYPES:
        return key
    raise TipReportError("invalid_report", (f"{where}: not a CyberTipline incident type",))


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


class _HardenedXmlParser(DefusedXMLParser):  # type: ignore[misc]
    """defusedxml's expat parser, each forbidden construct raising its own error type."""

    def __init__(self, target: Any) -> None:
        super().__init__(target=target, forbid_dtd=True, forbid_entities=True, forbid_external=True)
        # A DTD is refused at its end, so that an entity declaration inside is named as such.
        self.parser.EndDoctypeDeclHandler = self._end_doctype

    def defused_start_doctype_decl(
        self, name: str, sysid: str | None, pubid: str | None, has_internal_subset: bool
    ) -> None:
        if sysid or pubid:
            raise XmlExternalReferenceForbidden(
                "the XML declares an external DTD: external references are not allowed"
            )

    def _end_doctype(self) -> None:
        raise XmlDtdForbidden("the XML has a document type declaration (DTD): not allowed")

    def defused_entity_decl(
        self,
        name: str,
        is_parameter_entity: bool,
        value: str | None,
        base: str | None,
        sysid: str | None,
        pubid: str | None,
        notation_name: str | None,
    ) -> None:
        if sysid or pubid:
            raise XmlExternalReferenceForbidden(
                "the XML declares an external entity: external references are not allowed"
            )
        raise XmlEntityForbidden("the XML declares an entity: entities are not allowed")

    def defused_unparsed_entity_decl(
        self,
        name: str,
        base: str | None,
        sysid: str | None,
        pubid: str | None,
        notation_name: str | None,
    ) -> None:
        raise XmlExternalReferenceForbidden(
            "the XML declares an unparsed external entity: external references are not allowed"
        )

    def defused_external_entity_ref_handler(
        self, context: str, base: str | None, sysid: str | None, pubid: str | None
    ) -> None:
        raise XmlExternalReferenceForbidden(
            "the XML references an external entity: external references are not allowed"
        )


class _StreamingTarget:
    """Builds elements with local names, limits depth, and hands over each finished
    ``<submission>`` of a bundle (removing it from the tree, so memory stays flat)."""

    def __init__(self, max_depth: int) -> None:
        self._builder = TreeBuilder()
        self._max_depth = max_depth
        self._depth = 0
        self.root: Element | None = None
        self.finished: list[Element] = []

    def start(self, tag: str, attrs: dict[str, str]) -> Element:
        self._depth += 1
        if self._depth > self._max_depth:
            raise XmlTooDeep(f"the XML nests elements deeper than {self._max_depth} levels")
        element = self._builder.start(_local(tag), {_local(k): v for k, v in attrs.items()})
        if self.root is None:
            self.root = element
            if element.tag not in ("reports", "report"):
                raise UnsupportedTipFormat("XML whose root is neither <reports> nor <report>")
        return element

    def end(self, tag: str) -> Element:
        element = self._builder.end(_local(tag))
        self._depth -= 1
        if self._depth == 1 and self.root is not None and self.root.tag == "reports":
            self.finished.append(element)
            self.root.remove(element)
        return element

    def data(self, text: str) -> None:
        self._builder.data(text)

    def close(self) -> Element:
        return self._builder.close()


def _iter_xml(
    chunks: Iterable[bytes], *, provider: str | None, report_id: str | None
) -> Iterator[ImportItem]:
    target = _StreamingTarget(MAX_XML_DEPTH)
    parser = _HardenedXmlParser(target)
    raw_digest = sha256()
    index = 0
    try:
        for chunk in chunks:
            raw_digest.update(chunk)
            parser.feed(chunk)
            for submission in target.finished:
                if submission.tag == "submission":
                    yield _submission_item(index, submission, provider, target.root)
                    index += 1
            target.finished.clear()
        parser.close()
    except ParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        raise MalformedTipFile(
            f"the XML is not well-formed (line {line}, column {column})"
        ) from None
    for submission in target.finished:
        if submission.tag == "submission":
            yield _submission_item(index, submission, provider, target.root)
            index += 1
    root = target.root
    if root is not None and root.tag == "report":
        yield _bare_report_item(root, provider, report_id, raw_digest.hexdigest())


def _bundle_provider(root: Element | None, provider: str | None) -> str:
    attr = root.get("provider") if root is not None else None
    return (attr or provider or DEFAULT_PROVIDER).strip().lower()


def _submission_item(
    index: int, submission: Element, provider: str | None, root: Element | None
) -> ImportItem:
    report_id = safe_report_id((submission.get("reportId") or "").strip())
    location = f"submission {index + 1}"

    def build() -> TipReport:
        if report_id is None:
            raise TipReportError(
                "invalid_report", ("submission.reportId: missing or not a report id",)
            )
        reports = [c for c in submission if c.tag == "report"]
        if len(reports) != 1:
            raise TipReportError("invalid_report", ("submission: needs exactly one <report>",))
        file_docs = [c for c in submission if c.tag == "fileDetails"]
        for n, doc in enumerate(file_docs):
            declared = _text(doc, "reportId")
            if declared is not None and declared != report_id:
                raise TipReportError(
                    "invalid_report", (f"fileDetails[{n}].reportId: does not match the submission",)
                )
        return _xml_report(
            reports[0],
            file_docs,
            provider=_bundle_provider(root, provider),
            report_id=report_id,
            priority=submission.get("priority"),
        )

    return _item(index, location, build, report_id, partial(tostring, submission))


def _bare_report_item(
    root: Element, provider: str | None, report_id: str | None, raw_hash: str
) -> ImportItem:
    given = safe_report_id(report_id) if report_id else None
    if report_id and given is None:
        rejection = TipReportError("invalid_report", ("report_id: not a report id",))
        return ImportItem(0, "report", rejection=rejection)
    placeholder = given or "pending"

    def build() -> TipReport:
        report = _xml_report(
            root,
            [],
            provider=_bundle_provider(None, provider),
            report_id=placeholder,
            priority=None,
        )
        if given:
            return report
        return report.model_copy(update={"report_id": f"xml-{report.content_fingerprint()[:32]}"})

    item = _item(0, "report", build, given, partial(tostring, root))
    if item.rejection is not None and given is None:
        return ImportItem(
            0,
            "report",
            rejection=item.rejection,
            report_id=f"xml-{raw_hash[:32]}",
            raw=item.raw,
        )
    return item


def _text(parent: Element | None, path: str) -> str | None:
    if parent is None:
        return None
    found = parent.find(path)
    if found is None or found.text is None:
        return None
    text = found.text.strip()
    return text or None


def _texts(parent: Element, path: str) -> list[str]:
    return [t for el in parent.findall(path) if el.text and (t := el.text.strip())]


def _xml_bool(value: str | None) -> bool | str | None:
    if value is None:
        return None
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    return value  # validation names the field


def _refuse_xml_payload(elements: Iterable[Element]) -> None:
    for top in elements:
        for el in top.iter():
            has_content = bool((el.text or "").strip()) or len(el) > 0
            if (is_payload_key(el.tag) and has_content) or (el.text and text_carries_file(el.text)):
                raise payload_refusal(f"{top.tag}.{safe_field_name(el.tag)}")


def _age_at(born: str | None, when: str | None) -> int | str | None:
    if born is None:
        return None
    try:
        birth = date.fromisoformat(born[:10])
        on = datetime.fromisoformat(when).date() if when else None
    except ValueError:
        return None
    if on is None:
        return None
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def _xml_phone(el: Element) -> str | None:
    number = (el.text or "").strip()
    if not number:
        return None
    code = (el.get("countryCallingCode") or "").strip()
    if number.startswith("+") or not code:
        return number
    return f"{code if code.startswith('+') else '+' + code}{number}"


def _xml_report(
    report: Element,
    file_docs: list[Element],
    *,
    provider: str,
    report_id: str,
    priority: str | None,
) -> TipReport:
    _refuse_xml_payload([report, *file_docs])
    summary = report.find("incidentSummary")
    incident_type = incident_type_code(
        _text(summary, "incidentType"), "incidentSummary.incidentType"
    )
    incident_at = _text(summary, "incidentDateTime")
    annotations = []
    notes = summary.find("reportAnnotations") if summary is not None else None
    if notes is not None:
        for child in notes:
            code = ANNOTATION_ELEMENTS.get(child.tag.lower())
            if code is not None:
                annotations.append(code)

    persons = []
    for reported in report.findall("personOrUserReported"):
        emails: list[str] = []
        phones: list[str] = []
        for who in [reported, *reported.findall("personOrUserReportedPerson")]:
            emails += _texts(who, "email")
            phones += [p for el in who.findall("phone") if (p := _xml_phone(el))]
        ip_events = []
        for capture in reported.findall("ipCaptureEvent"):
            name = (_text(capture, "eventName") or "unknown").lower()
            ip_events.append(
                {
                    "ip": _text(capture, "ipAddress"),
                    "event": name if name in IP_EVENT_NAMES else "other",
                    "at": _text(capture, "dateTime"),
                }
            )
        persons.append(
            {
                "screen_names": _texts(reported, "screenName"),
                "emails": emails,
                "phones": phones,
                "ip_events": ip_events,
            }
        )

    victims = []
    for person in report.findall("victim/victimPerson"):
        age: int | str | None = _text(person, "age")
        if age is None:
            age = _age_at(_text(person, "dateOfBirth"), incident_at)
        victims.append({"age_estimate": age})

    files = []
    for doc in file_docs:
        hashes = {
            (h.get("hashType") or "").strip().lower(): (h.text or "").strip()
            for h in doc.findall("originalFileHash")
        }
        files.append(
            {
                "file_name": _text(doc, "originalFileName"),
                "md5": hashes.get("md5") or None,
                "sha1": hashes.get("sha1") or hashes.get("sha-1") or None,
                "pdq": hashes.get("pdq") or None,
                "viewed_by_provider": _xml_bool(_text(doc, "fileViewedByEsp")),
                "publicly_available": _xml_bool(_text(doc, "publiclyAvailable")),
            }
        )

    platform = _text(summary, "platform")
    reporter_email = _text(report, "reporter/reportingPerson/email")
    narrative = "\n".join(_texts(report, "additionalInfo")) or None
    data = {
        "provider": provider,
        "report_id": report_id,
        "incident_type": incident_type,
        "annotations": annotations,
        "escalation_reason": _text(summary, "escalateToHighPriority"),
        "incident_at": incident_at,
        "provider_priority": priority,
        "reporter": {"name": platform, "type": "esp", "email": reporter_email}
        if (platform or reporter_email)
        else None,
        "reported_persons": persons,
        "victims": victims,
        "files": files,
        "narrative": narrative,
    }
    return parse_tip_report(data)


# --- NCMEC Case Management Tool export -----------------------------------------------------


def _cmt_values(value: Any, key: str | None = None) -> list[str]:
    """CMT wraps values: ``{"emails": [{"value": …}]}``, ``[{"value": …}]``, ``{"value": …}``
    or a bare string. All of them as a list of non-blank strings."""
    if isinstance(value, Mapping) and key is not None and key in value:
        value = value[key]
    if isinstance(value, Mapping | str | int):
        value = [value]
    out = []
    for item in value or []:
        if isinstance(item, Mapping):
            item = item.get("value")
        if isinstance(item, str | int) and not isinstance(item, bool) and str(item).strip():
            out.append(str(item).strip())
    return out


def _cmt_bool(value: Any) -> Any:
    return _xml_bool(value) if isinstance(value, str) else value


def cmt_report_to_dict(
    obj: Mapping[str, Any], *, provider: str = DEFAULT_PROVIDER
) -> dict[str, Any]:
    """One CMT export report in the platform's shape (not yet validated)."""
    where = find_file_payload(obj)
    if where:
        raise payload_refusal(where)
    info = obj.get("reportedInformation") or {}
    if not isinstance(info, Mapping):
        raise TipReportError("invalid_report", ("reportedInformation: not an object",))
    summary = info.get("incidentSummary") or {}
    annotations_raw = summary.get("reportAnnotations") or []
    if isinstance(annotations_raw, Mapping):
        annotations_raw = [k for k, v in annotations_raw.items() if v not in (False, "false", None)]
    annotations = [
        ANNOTATION_ELEMENTS[key]
        for a in annotations_raw
        if isinstance(a, str) and (key := a.replace("_", "").lower()) in ANNOTATION_ELEMENTS
    ]

    persons = []
    people = (info.get("reportedPeople") or {}).get("reportedPersons") or []
    for person in people:
        screen_names = _cmt_values(person.get("screenName"))
        ip_events = []
        for capture in (person.get("sourceInformation") or {}).get("sourceCaptures") or []:
            if (
                str(capture.get("captureType", "IP Address")).lower().replace(" ", "")
                != "ipaddress"
            ):
                continue
            name = str(capture.get("eventName") or "unknown").lower()
            ip_events.append(
                {
                    "ip": capture.get("value"),
                    "event": name if name in IP_EVENT_NAMES else "other",
                    "at": capture.get("dateTime"),
                }
            )
        persons.append(
            {
                "screen_names": screen_names,
                "emails": _cmt_values(person.get("emails"), "emails"),
                "phones": _cmt_values(person.get("phones"), "phones"),
                "ip_events": ip_events,
            }
        )

    files = []
    for upload in (info.get("uploadedFiles") or {}).get("uploadedFiles") or []:
        digest = str(upload.get("verificationHash") or "").strip() or None
        is_sha1 = digest is not None and len(digest) == 40
        files.append(
            {
                "file_name": upload.get("originalFilename") or upload.get("filename"),
                "md5": None if is_sha1 else digest,
                "sha1": digest if is_sha1 else None,
                "viewed_by_provider": _cmt_bool(upload.get("viewedByEsp")),
                "publicly_available": _cmt_bool(upload.get("publiclyAvailable")),
            }
        )

    esp = info.get("reportingEsp") or {}
    narrative = "\n".join(_cmt_values(info.get("additionalInformations"))) or None
    priority = obj.get("priority", obj.get("priorityLevel"))
    return {
        "provider": provider,
        "report_id": str(obj.get("reportId", "")).strip(),
        "incident_type": incident_type_code(
            summary.get("incidentType"), "incidentSummary.incidentType"
        ),
        "annotations": annotations,
        "escalation_reason": summary.get("escalateToHighPriority"),
        "incident_at": summary.get("incidentDateTime"),
        "provider_priority": priority,
        "reporter": {"name": esp.get("espName"), "type": "esp"} if esp.get("espName") else None,
        "reported_persons": persons,
        "victims": [],
        "files": files,
        "narrative": narrative,
    }


def parse_cmt_report(obj: Mapping[str, Any], *, provider: str = DEFAULT_PROVIDER) -> TipReport:
    """One CMT export report validated; raises :class:`TipReportError`."""
    try:
        return parse_tip_report(cmt_report_to_dict(obj, provider=provider))
    except (AttributeError, TypeError):
        # A key holding the wrong kind of JSON value (a list for an object, ...).
        raise TipReportError("invalid_report", ("report: not in the CMT export shape",)) from None
    except RecursionError:
        raise TipReportError("invalid_report", ("report: nested too deeply",)) from None


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def _iter_cmt(chunks: Iterable[bytes], *, provider: str | None) -> Iterator[ImportItem]:
    data = b"".join(chunks)
    try:
        doc = json.loads(data.removeprefix(b"\xef\xbb\xbf"))
    except RecursionError:
        raise MalformedTipFile("the CMT export nests too deeply") from None
    except ValueError as exc:
        where = (
            f" (line {exc.lineno}, column {exc.colno})"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        raise MalformedTipFile(f"the CMT export is not valid JSON{where}") from None
    if isinstance(doc, Mapping) and isinstance(doc.get("reports"), list):
        reports: list[Any] = doc["reports"]
    elif isinstance(doc, list):
        reports = doc
    elif isinstance(doc, Mapping):
        reports = [doc]
    else:
        raise UnsupportedTipFormat("a CMT export is a report object or a list of them")
    for index, obj in enumerate(reports):
        location = f"report {index + 1}"
        if not isinstance(obj, Mapping):
            rejection = TipReportError("invalid_report", ("report: not an object",))
            yield ImportItem(index, location, rejection=rejection)
            continue
        rid = safe_report_id(obj.get("reportId"))
        build = partial(parse_cmt_report, obj, provider=provider or DEFAULT_PROVIDER)
        yield _item(index, location, build, rid, partial(_json_bytes, obj))
