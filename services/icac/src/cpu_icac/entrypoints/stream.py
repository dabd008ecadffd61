"""Kafka: the raw tip feed in, tip events out (through the outbox).

``icac.tips.inbound`` carries raw reports (CONTRACT.md section 6), not envelopes. A batch
consumer (up to ``ICAC_CONSUMER_MAX_RECORDS`` per batch) decodes each message with
:func:`decode_tip`:

- a valid report becomes an :class:`Incoming` whose inbox key is
  ``provider:report_id:fingerprint``, so an exact re-send is dropped by the consumer's inbox
  before the pipeline sees it (and the pipeline would find it unchanged anyway);
- an invalid report raises ``InvalidEvent`` with the domain's reason (field names and rules,
  never values) and is dead-lettered to ``icac.tips.inbound.dlq`` with that reason;
- a report carrying file content (an image or a video, code ``file_payload``), or an invalid
  message that may hold one (not UTF-8 text, an image signature, a ``data:`` URI or a long
  base64 run anywhere: ``may_carry_file``), is NOT dead-lettered: a DLQ message is the
  original bytes, kept and replayable, and the platform must never hold such material. It is
  quarantined instead, reason and SHA-256 only.

Each batch is triaged and stored in the consumer's transaction (with its inbox rows), so the
offsets move only after the tips, their versions and their events are committed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession

from cpu_icac.domain.media import may_carry_file
from cpu_icac.domain.tip_report import TipReportError, parse_tip_report, safe_report_id
from cpu_icac.service_layer.context import Icac
from cpu_icac.service_layer.ingest import Incoming, ingest
from cpu_icac.service_layer.quarantine import Rejected, quarantine
from cpu_shared.logging import get_logger
from cpu_shared.messaging.consumer import InvalidEvent
from cpu_shared.messaging.topics import TIP_EVENTS
from cpu_shared.service import ServiceRuntime

log = get_logger(__name__)

MAX_EVENT_ID = 200


@dataclass(slots=True)
class RefusedFile:
    """A report refused for carrying file content: only its reason and digest go further."""

    reason: str
    provenance: str
    digest: str
    report_id: str | None
    code: str = "file_payload"


def _provenance(record: ConsumerRecord) -> str:
    return f"{record.topic}/{record.partition}@{record.offset}"


def decode_tip(record: ConsumerRecord) -> Incoming | RefusedFile:
    """A message of the feed as a validated report (or a refused file); raises
    ``InvalidEvent`` for a report that can never be taken, which is dead-lettered."""
    value = record.value
    if not isinstance(value, bytes | bytearray) or not value:
        raise InvalidEvent("report: the message is empty")
    try:
        report = parse_tip_report(value)
    except TipReportError as exc:
        carries = exc.code == "file_payload"
        if carries or may_carry_file(bytes(value)):
            key = record.key.decode("utf-8", "replace") if record.key else None
            return RefusedFile(
                exc.reason if carries else f"{exc.reason} (and the message may hold file content)",
                _provenance(record),
                hashlib.sha256(value).hexdigest(),
                safe_report_id(key),
                "file_payload" if carries else "may_carry_file",
            )
        raise InvalidEvent(f"{exc.code}: {exc.reason}") from None
    report_json, fingerprint = report.serialised()
    return Incoming(
        report=report,
        fingerprint=fingerprint,
        channel="kafka",
        provenance=_provenance(record),
        report_json=report_json,
    )


def tip_event_id(item: Incoming | RefusedFile) -> str:
    """The inbox key: ``provider:report_id:fingerprint`` (a digest of it if longer than the
    inbox column), or the refused message's digest."""
    if isinstance(item, RefusedFile):
        return f"refused:{item.digest}"
    report = item.report
    key = f"{report.provider}:{report.report_id}:{item.fingerprint}"
    if len(key) > MAX_EVENT_ID:
        key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def register_subscribers(runtime: ServiceRuntime, icac: Icac) -> None:
    runtime.publishes(TIP_EVENTS)

    async def handle_batch(session: AsyncSession, items: list[Any]) -> None:
        incoming = [i for i in items if isinstance(i, Incoming)]
        refused = [i for i in items if isinstance(i, RefusedFile)]
        if incoming:
            await ingest(icac, session, incoming)
        if refused:
            await quarantine(
                icac,
                session,
                [
                    Rejected(
                        channel="kafka",
                        reason_code=r.code,
                        reason=r.reason,
                        provenance=r.provenance,
                        report_id=r.report_id,
                        raw_sha256=r.digest,
                    )
                    for r in refused
                ],
                icac.clock(),
            )
            log.warning(
                "tip reports carrying file content refused and quarantined (not dead-lettered)",
                count=len(refused),
            )

    async def handle_one(session: AsyncSession, item: Any) -> None:
        await handle_batch(session, [item])

    runtime.consumer(
        icac.settings.inbound_topic,
        icac.settings.inbound_group,
        handle_one,
        batch=True,
        handle_batch=handle_batch,
        decode=decode_tip,
        event_id_of=tip_event_id,
        max_records=icac.settings.consumer_max_records,
    )
