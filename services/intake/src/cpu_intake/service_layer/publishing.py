"""From stored referrals to the published contracts of ``intake.referral.events``.

Events carry pseudonyms (HMAC of the internal id under a key reporting never has), codes,
dates and counts: never a name, phone, address, narrative or date of birth (a child's age in
years, which reporting counts, is derived on the day received). They go into the outbox in
the caller's transaction, keyed by the referral's pseudonym.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from cpu_intake.adapters.protection import RecordProtection
from cpu_intake.adapters.repository import StoredChild, StoredReferral, codes, utc
from cpu_intake.adapters.tables import Referral, ReferralChild
from cpu_shared.contracts import intake as contract
from cpu_shared.contracts import publish
from cpu_shared.contracts.base import EventData, new_envelope
from cpu_shared.messaging.envelope import EventEnvelope
from cpu_shared.messaging.outbox import enqueue

ReferralFacts = Referral | StoredReferral
ChildFacts = ReferralChild | StoredChild

SOURCE = "intake"


def correlation_id() -> str:
    """The request's correlation id (or the consumed event's), else a new one."""
    from asgi_correlation_id import correlation_id as http_correlation_id

    from cpu_shared.logging import correlation_id as message_correlation_id

    return http_correlation_id.get() or message_correlation_id.get() or uuid.uuid4().hex


def child_profiles(
    protection: RecordProtection, children: Sequence[ChildFacts]
) -> list[contract.ChildProfile]:
    return [
        contract.ChildProfile(
            child_id=protection.child_pseudonym(child.id),
            age_years=child.age_years,
            sex=child.sex,  # type: ignore[arg-type]
            province_code=child.province_code,
        )
        for child in sorted(children, key=lambda c: c.position)
    ]


#: An event ready for the outbox: its topic and its envelope.
Announcement = tuple[str, EventEnvelope]


def announcement(data: EventData, *, aggregate_id: str, version: int) -> Announcement:
    """``data`` in its envelope, for a caller that writes the outbox row itself (submission
    writes everything in one statement); :func:`publish_triaged` enqueues it."""
    envelope = new_envelope(
        data,
        source=SOURCE,
        aggregate_id=aggregate_id,
        aggregate_version=version,
        correlation_id=correlation_id(),
    )
    return data.topic.name, envelope


def submitted(
    row: ReferralFacts, profiles: list[contract.ChildProfile], *, version: int
) -> Announcement:
    return announcement(
        contract.ReferralSubmitted(
            referral_id=row.pseudonym,
            source=row.source,  # type: ignore[arg-type]
            received_at=utc(row.received_at),
            concerns=codes(row.concerns),  # type: ignore[arg-type]
            children=profiles,
        ),
        aggregate_id=row.pseudonym,
        version=version,
    )


def triaged(
    protection: RecordProtection,
    row: ReferralFacts,
    profiles: list[contract.ChildProfile],
    *,
    version: int,
    same_child_as: uuid.UUID | None,
) -> Announcement:
    """``referral.triaged``: casework opens a case from it, or, when
    ``same_child_as_referral_id`` is set, adds it to the case of that earlier referral."""
    return announcement(
        contract.ReferralTriaged(
            referral_id=row.pseudonym,
            received_at=utc(row.received_at),
            priority=row.priority,  # type: ignore[arg-type]
            teams=codes(row.teams),  # type: ignore[arg-type]
            rule_ids=codes(row.rule_ids),
            province_code=row.province_code,
            concerns=codes(row.concerns),  # type: ignore[arg-type]
            children=profiles,
            same_child_as_referral_id=(
                protection.referral_pseudonym(same_child_as) if same_child_as else None
            ),
        ),
        aggregate_id=row.pseudonym,
        version=version,
    )


def publish_triaged(
    session: AsyncSession,
    protection: RecordProtection,
    row: ReferralFacts,
    profiles: list[contract.ChildProfile],
    *,
    version: int,
    same_child_as: uuid.UUID | None,
) -> None:
    """:func:`triaged` into the outbox, in the caller's transaction."""
    topic, envelope = triaged(
        protection, row, profiles, version=version, same_child_as=same_child_as
    )
    enqueue(session, topic, envelope)


def publish_withdrawn(
    session: AsyncSession, row: ReferralFacts, *, reason_code: str, at: datetime, version: int
) -> None:
    publish(
        session,
        contract.ReferralWithdrawn(
            referral_id=row.pseudonym, reason_code=reason_code, withdrawn_at=at
        ),
        source=SOURCE,
        aggregate_id=row.pseudonym,
        aggregate_version=version,
        correlation_id=correlation_id(),
    )
