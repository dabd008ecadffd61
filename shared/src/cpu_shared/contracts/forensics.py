"""Events on ``forensics.evidence.events``."""

from datetime import datetime

from pydantic import Field

from cpu_shared.contracts.base import EventData
from cpu_shared.contracts.codes import AnalysisType, CustodyKind, EvidenceType, Pseudonym
from cpu_shared.messaging.topics import EVIDENCE_EVENTS


class EvidenceRegistered(EventData):
    event_type = "evidence.registered"
    topic = EVIDENCE_EVENTS

    item_id: Pseudonym
    case_id: Pseudonym
    item_type: EvidenceType
    parent_item_id: Pseudonym | None = None
    collected_at: datetime
    registered_at: datetime


class EvidenceCustodyTransferred(EventData):
    event_type = "evidence.custody_transferred"
    topic = EVIDENCE_EVENTS

    item_id: Pseudonym
    case_id: Pseudonym
    kind: CustodyKind
    at: datetime
    ledger_index: int = Field(ge=0)


class EvidenceAnalysisRequested(EventData):
    event_type = "evidence.analysis_requested"
    topic = EVIDENCE_EVENTS

    analysis_id: Pseudonym
    item_id: Pseudonym
    case_id: Pseudonym
    analysis_type: AnalysisType
    requested_at: datetime


class EvidenceAnalysisCompleted(EventData):
    event_type = "evidence.analysis_completed"
    topic = EVIDENCE_EVENTS

    analysis_id: Pseudonym
    item_id: Pseudonym
    case_id: Pseudonym
    analysis_type: AnalysisType
    result_code: str = Field(max_length=50, pattern=r"^[a-z_]+$")
    completed_at: datetime


class EvidenceDisposed(EventData):
    event_type = "evidence.disposed"
    topic = EVIDENCE_EVENTS

    item_id: Pseudonym
    case_id: Pseudonym
    kind: CustodyKind
    at: datetime


class LedgerTreeHeadSigned(EventData):
    """A signed tree head of the custody ledger (CONTRACT.md section 7), published so that
    other parties can hold it and later prove the log was never rewritten."""

    event_type = "ledger.tree_head_signed"
    topic = EVIDENCE_EVENTS

    tree_size: int = Field(ge=0)
    root_hash: str = Field(min_length=44, max_length=44)  # base64 of 32 bytes, padded
    timestamp: datetime
    checkpoint: str = Field(max_length=2000)
