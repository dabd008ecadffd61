"""Submission writes its outbox and audit rows with one plain statement instead of through the
shared helpers' ORM objects: the rows must be the ones those helpers would have added."""

from __future__ import annotations

import uuid
from typing import Any

from cpu_intake.adapters.repository import _audit_row, outbox_row
from cpu_shared.contracts import intake as contract
from cpu_shared.contracts.base import new_envelope
from cpu_shared.messaging.outbox import enqueue
from cpu_shared.security.audit import AuditEntry, audit_values, record_access
from cpu_shared.security.auth import Principal


class Collecting:
    def __init__(self) -> None:
        self.added: list[Any] = []

    def add(self, instance: Any) -> None:
        self.added.append(instance)


def _columns(instance: Any, *, skip: frozenset[str]) -> dict[str, Any]:
    table = type(instance).__table__
    mapper = type(instance).__mapper__
    return {
        prop.columns[0].name: getattr(instance, prop.key)
        for prop in mapper.column_attrs
        if prop.columns[0].table is table and prop.columns[0].name not in skip
    }


def test_outbox_row_is_what_enqueue_adds() -> None:
    envelope = new_envelope(
        contract.ReferralWithdrawn(
            referral_id="pseudonym-1",
            reason_code="made_in_error",
            withdrawn_at="2026-01-02T03:04:05Z",
        ),
        source="intake",
        aggregate_id="pseudonym-1",
        aggregate_version=3,
        correlation_id=uuid.uuid4().hex,
    )
    session = Collecting()
    enqueue(session, "intake.referral.events", envelope)  # type: ignore[arg-type]
    (added,) = session.added
    expected = _columns(added, skip=frozenset({"id", "created_at"}))
    row = outbox_row("intake.referral.events", envelope)
    assert {k: v for k, v in row.items() if k != "created_at"} == expected
    assert row["created_at"].tzinfo is not None


def test_audit_row_is_what_record_access_adds() -> None:
    principal = Principal(user="officer.one", roles=frozenset({"intake_officer"}))
    session = Collecting()
    fields: dict[str, Any] = {
        "action": "referral.create",
        "record_type": "referral",
        "record_id": str(uuid.uuid4()),
    }
    entry = record_access(session, principal, **fields)
    assert session.added == [entry]
    row = _audit_row(audit_values(principal, **fields))
    assert set(row) == {c.name for c in AuditEntry.__table__.c} - {"id"}
    assert {k: v for k, v in row.items() if k != "occurred_at"} == _columns(
        entry, skip=frozenset({"id", "occurred_at"})
    )
