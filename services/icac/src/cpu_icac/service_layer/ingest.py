"""The triage pipeline, one batch of reports at a time, for every ingest route.

validate (done by the caller: decoder, route, import parser) → dedup and version → enrich
(GeoIP, jurisdiction) → match known hashes → link into subject clusters → priority with
reasons → persist → ``tip.received`` and ``tip.triaged`` in the outbox, all in the caller's
transaction.

Batching is the point: one hash-index pass for the batch's files, one look-up per kind of row
for the whole batch, bulk writes (COPY on PostgreSQL), and the CPU-bound part of the work
(hash matching, geolocation, blind indexes, encryption) off the event loop, before the store
is locked. Then one transaction-scoped lock serialises the check-then-write part (dedup and
linking), so any number of consumer processes and HTTP requests can ingest at once without
two of them storing one report twice or splitting a cluster.

Dedup and versions: a report is ``(provider, report_id)``. Its content fingerprint (the
domain's) says whether a re-sent report changed: the same fingerprint as any version already
held is ``unchanged`` (ignored); a new one is the next version (``updated``). Every version
is kept, encrypted, with where it came from (topic, partition and offset; user; import job).
A new version of an open tip is triaged again; a tip already disposed keeps its disposition
and priority (the new version is on record for the analyst).

Clusters: identifiers are HMAC blind indexes (screen name, e-mail, phone, file hashes; IP
addresses with the time they were seen). Stored identifiers of the batch are looked up, the
clusters they belong to are fed to the domain's :class:`SubjectLinker` as single nodes, then the
batch's tips; clusters the linker joins are merged in the store into the oldest one. When a
cluster crosses a size band of the priority rules (2+, 5+ tips), its open tips are re-assessed
from their stored reasons (:func:`reassess_for_cluster`): a tip's priority always reflects the
cluster it is in now, and a changed level is announced with a new ``tip.triaged``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import operator
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from cpu_icac.adapters import repository as repo
from cpu_icac.adapters import store
from cpu_icac.adapters.ids import uuid4, uuid7
from cpu_icac.domain.hash_sets import HashIndex, HashMatch
from cpu_icac.domain.jurisdiction import HOME_COUNTRY, JurisdictionAssessment, assess_jurisdiction
from cpu_icac.domain.linking import (
    IpSighting,
    SubjectLinker,
    TipIdentifiers,
    read_phones,
    tip_identifiers,
)
from cpu_icac.domain.priority import (
    LEVEL_RANK,
    PriorityAssessment,
    assess_priority,
    assessment_from_reasons,
    cluster_band,
    reassess_for_cluster,
)
from cpu_icac.domain.tip_report import TipReport
from cpu_icac.service_layer.context import Icac
from cpu_shared.contracts.base import EventData
from cpu_shared.contracts.icac import TipReceived, TipTriaged
from cpu_shared.logging import get_logger
from cpu_shared.messaging.topics import TIP_EVENTS
from cpu_shared.security.crypto import field_context

log = get_logger(__name__)

Channel = Literal["kafka", "api", "import"]
Status = Literal["created", "updated", "unchanged"]

# Work on fewer reports than this stays on the event loop (a thread hop costs more).
_THREAD_MIN = 64


@dataclass(slots=True)
class Incoming:
    """A valid report and where it came from."""

    report: TipReport
    fingerprint: str
    channel: Channel
    provenance: str  # "icac.tips.inbound/3@1234", "api", "import:<job id>#17"
    received_by: str | None = None
    correlation_id: str | None = None
    # The report as stored (JSON, absent fields left out) when the caller already has it:
    # :meth:`TipReport.serialised` gives it with the fingerprint, from one serialisation.
    report_json: str | None = None


@dataclass(slots=True)
class Outcome:
    status: Status
    tip_id: uuid.UUID
    priority: str | None = None


@dataclass(slots=True)
class _Prepared:
    item: Incoming
    new_tip_id: uuid.UUID
    version_id: uuid.UUID
    report_token: str
    matches: list[HashMatch]
    jurisdiction: JurisdictionAssessment
    identifiers: TipIdentifiers
    facts: dict[str, Any]
    # For a new tip, made before the store is locked: its pseudonyms (tip, and cluster while
    # it is alone), its priority as a lone tip, and its ``tip.received`` outbox row.
    tip_ps: str
    alone_cluster_ps: str
    alone: PriorityAssessment
    received: tuple[Any, ...]


@dataclass(slots=True)
class _State:
    tip_id: uuid.UUID
    version: int
    fingerprints: set[str]
    row: Any | None  # the stored tip, None for a tip new in this batch


@dataclass(slots=True)
class _Work:
    """One tip the batch creates or gives a new version."""

    tip_id: uuid.UUID
    node: str  # its node for the linker: its own id (new) or its cluster's id (stored)
    row: Any | None
    versions: list[tuple[int, _Prepared]] = field(default_factory=list)
    assessment: PriorityAssessment | None = None
    cluster_id: uuid.UUID | None = None
    cluster_size: int = 1

    @property
    def is_new(self) -> bool:
        return self.row is None

    @property
    def is_open(self) -> bool:
        return self.row is None or self.row.status in ("queued", "claimed")

    @property
    def final(self) -> _Prepared:
        return self.versions[-1][1]


@dataclass(slots=True)
class _Group:
    cluster_id: uuid.UUID
    size: int
    linked_by: frozenset[str]


# --- the CPU part (off the loop) -------------------------------------------------------------


def prepare(
    icac: Icac, items: Sequence[Incoming], index: HashIndex, now: datetime
) -> list[_Prepared]:
    """Hash matches, geolocation and jurisdiction, identifier keys, the encrypted report, and
    what a new tip's events need, for each item. Pure computation: runs in a worker thread,
    before the store is locked (so several processes do it at once)."""
    reports = [item.report for item in items]
    if len(index):
        with icac.match_lock:
            matches = index.match_reports(reports)
    else:
        matches = [[] for _ in reports]
    checked = len(index) > 0
    geoip = icac.geoip
    cipher = icac.cipher
    key = icac.link_key
    out = []
    for item, found in zip(items, matches, strict=True):
        report = item.report
        ips = report.ip_addresses()
        locations = geoip.locate_all(ips) if geoip is not None and ips else {}
        tip_id = uuid7()
        version_id = uuid7()
        tip_text, version_text = str(tip_id), str(version_id)
        token = cipher.encrypt(
            item.report_json or report.model_dump_json(exclude_none=True),
            context=field_context("icac_tip_version", "report", version_text),
        )
        phones = read_phones(report)  # once, for jurisdiction and for linking
        jurisdiction = assess_jurisdiction(report, locations, phones=phones)
        facts = _facts(report, jurisdiction, now)
        tip_ps = icac.tip_pseudonym(tip_text)
        received = _event(
            icac,
            TipReceived(
                tip_id=tip_ps,
                provider=report.provider,
                incident_type=report.incident_type,
                received_at=now,
                country_code=facts["country_code"],
                province_code=facts["province_code"],
            ),
            1,
            item.correlation_id or version_text,
            now,
        )
        out.append(
            _Prepared(
                item=item,
                new_tip_id=tip_id,
                version_id=version_id,
                report_token=token,
                matches=found,
                jurisdiction=jurisdiction,
                identifiers=tip_identifiers(tip_text, report, key=key, phones=phones),
                facts=facts,
                tip_ps=tip_ps,
                alone_cluster_ps=icac.cluster_pseudonym(tip_text),
                alone=assess_priority(
                    report,
                    now=now,
                    hash_matches=found,
                    cluster_size=1,
                    jurisdiction=jurisdiction,
                    hash_sets_checked=checked,
                    rules=icac.rules,
                ),
                received=received,
            )
        )
    return out


# --- the pipeline ----------------------------------------------------------------------------


async def ingest(icac: Icac, session: AsyncSession, items: Sequence[Incoming]) -> list[Outcome]:
    """Triage and store ``items`` in the caller's transaction; one outcome per item, in order."""
    if not items:
        return []
    started = time.perf_counter()
    now = icac.clock()
    index = await icac.hash_sets.current(session)
    if len(items) >= _THREAD_MIN:
        prepared = await asyncio.to_thread(prepare, icac, items, index, now)
    else:
        prepared = prepare(icac, items, index, now)

    await store.lock(session, store.INGEST_LOCK)
    outcomes, works = await _dedup(session, prepared)
    events: list[tuple[Any, ...]] = []
    if works:
        known_keys = await _link(icac, session, works, now)
        for work in works:
            if work.is_open:
                # The lone-tip assessment with the cluster part redone (equal to a fresh one).
                alone = work.final.alone
                work.assessment = (
                    alone
                    if work.cluster_size == 1
                    else reassess_for_cluster(alone, work.cluster_size, rules=icac.rules)
                )
        await _write(icac, session, works, now, events, known_keys)
    await store.copy_rows(session, repo.OUTBOX, repo.OUTBOX_COLUMNS, events)

    priorities = {w.tip_id: w.assessment.level for w in works if w.assessment is not None}
    for outcome in outcomes:
        outcome.priority = priorities.get(outcome.tip_id)
    channel = items[0].channel
    for status in ("created", "updated", "unchanged"):
        count = sum(1 for o in outcomes if o.status == status)
        if count:
            icac.metrics.reports.labels(channel, status).inc(count)
    icac.metrics.ingest_seconds.labels(channel).observe(time.perf_counter() - started)
    return outcomes


async def _dedup(
    session: AsyncSession, prepared: list[_Prepared]
) -> tuple[list[Outcome], list[_Work]]:
    keys = list(dict.fromkeys(p.item.report.key for p in prepared))
    existing = await repo.existing_tips(session, keys)
    fingerprints = await repo.version_fingerprints(session, [row.id for row in existing.values()])
    states: dict[tuple[str, str], _State] = {}
    works: dict[uuid.UUID, _Work] = {}
    outcomes: list[Outcome] = []
    for p in prepared:
        key = p.item.report.key
        state = states.get(key)
        if state is None:
            row = existing.get(key)
            if row is not None:
                state = _State(row.id, row.version, set(fingerprints.get(row.id, ())), row)
            else:
                state = _State(p.new_tip_id, 0, set(), None)
            states[key] = state
        if p.item.fingerprint in state.fingerprints:
            outcomes.append(Outcome("unchanged", state.tip_id))
            continue
        state.version += 1
        state.fingerprints.add(p.item.fingerprint)
        work = works.get(state.tip_id)
        if work is None:
            node = str(state.row.cluster_id) if state.row is not None else str(state.tip_id)
            work = works[state.tip_id] = _Work(state.tip_id, node, state.row)
        created = state.row is None and not work.versions
        work.versions.append((state.version, p))
        outcomes.append(Outcome("created" if created else "updated", state.tip_id))
    return outcomes, list(works.values())


async def _link(icac: Icac, session: AsyncSession, works: list[_Work], now: datetime) -> set[str]:
    """Put every tip of the batch in its subject cluster; merge clusters the batch joins.
    Returns the identifier keys the store already holds."""
    kinds: dict[str, str] = {}
    wanted: dict[tuple[str, datetime], None] = {}
    for work in works:
        for _, p in work.versions:
            for kind, key in p.identifiers.keys:
                kinds[key] = kind
            for sighting in p.identifiers.ip_sightings:
                if sighting.at is not None:
                    wanted[(sighting.key, sighting.at)] = None
    window = icac.ip_window
    stored_keys = await repo.clusters_of_keys(session, list(kinds))
    stored_sightings = await repo.sightings_near(
        session, [(key, at - window, at + window) for key, at in wanted]
    )

    node_keys: dict[str, set[tuple[str, str]]] = {}
    node_sightings: dict[str, list[IpSighting]] = {}
    for key, kind, cluster in stored_keys:
        node_keys.setdefault(str(cluster), set()).add((kind, key))
    for key, at, cluster in stored_sightings:
        node_sightings.setdefault(str(cluster), []).append(IpSighting(key, store.aware(at)))
    stored_nodes = set(node_keys) | set(node_sightings)
    stored_nodes.update(w.node for w in works if not w.is_new)

    linker = SubjectLinker(ip_window=window)
    for node in sorted(stored_nodes):
        linker.add(
            TipIdentifiers(
                node,
                frozenset(node_keys.get(node, ())),  # type: ignore[arg-type]
                tuple(node_sightings.get(node, ())),
            )
        )
    for work in works:
        for _, p in work.versions:
            linker.add(replace(p.identifiers, tip_id=work.node))

    rows = await repo.cluster_rows(session, [uuid.UUID(n) for n in stored_nodes])
    sizes = {str(cid): size for cid, (size, _) in rows.items()}
    linked = {
        str(cid): frozenset(k for k in kinds_.split(",") if k) for cid, (_, kinds_) in rows.items()
    }

    group_of: dict[str, _Group] = {}
    cluster_upserts: list[tuple[uuid.UUID, int, str, bool]] = []
    merges: list[tuple[uuid.UUID, uuid.UUID]] = []
    rebanded: dict[uuid.UUID, int] = {}
    work_nodes = {w.node for w in works}
    for cluster in linker.clusters():
        members = cluster.tip_ids
        if work_nodes.isdisjoint(members):
            continue  # stored clusters the batch's tips did not join (nothing to change)
        stored = [n for n in members if n in stored_nodes]
        size = sum(sizes.get(n, 1) for n in stored) + sum(
            1 for n in members if n not in stored_nodes
        )
        kinds_linked = frozenset(cluster.linked_by).union(
            *(linked.get(n, frozenset()) for n in stored)
        )
        winner = uuid.UUID(cluster.cluster_id)
        group = _Group(winner, size, kinds_linked)
        for node in members:
            group_of[node] = group
        for node in stored:
            if node != cluster.cluster_id:
                merges.append((uuid.UUID(node), winner))
            if cluster_band(sizes.get(node, 1), icac.rules) != cluster_band(size, icac.rules):
                rebanded[uuid.UUID(node)] = size
        if size >= 2:
            cluster_upserts.append(
                (winner, size, ",".join(sorted(kinds_linked)), cluster.cluster_id in sizes)
            )
    for work in works:
        group = group_of[work.node]
        work.cluster_id = group.cluster_id
        work.cluster_size = group.size

    # Read the tips to re-assess before the merges move them.
    batch_ids = {w.tip_id for w in works}
    members = await repo.open_members(session, list(rebanded), batch_ids)
    await _write_clusters(session, cluster_upserts, merges, now)
    await _reassess(icac, session, members, rebanded, group_of, now)
    return {key for key, _, _ in stored_keys}


async def _write_clusters(
    session: AsyncSession,
    upserts: list[tuple[uuid.UUID, int, str, bool]],
    merges: list[tuple[uuid.UUID, uuid.UUID]],
    now: datetime,
) -> None:
    await repo.merge_clusters(session, merges)
    await repo.update_rows(
        session,
        repo.CLUSTERS,
        "id",
        [
            {"id": cid, "size": size, "linked_by": kinds, "updated_at": now}
            for cid, size, kinds, exists in upserts
            if exists
        ],
    )
    await store.copy_rows(
        session,
        repo.CLUSTERS,
        ("id", "size", "linked_by", "created_at", "updated_at"),
        [(cid, size, kinds, now, now) for cid, size, kinds, exists in upserts if not exists],
    )


async def _reassess(
    icac: Icac,
    session: AsyncSession,
    members: list[Any],
    rebanded: dict[uuid.UUID, int],
    group_of: dict[str, _Group],
    now: datetime,
) -> None:
    """Open tips whose cluster crossed a size band: the cluster part of their score redone."""
    if not members:
        return
    updates = []
    events: list[tuple[Any, ...]] = []
    for row in members:
        group = group_of[str(row.cluster_id)]
        before = assessment_from_reasons(json.loads(row.reasons), rules=icac.rules)
        after = reassess_for_cluster(before, group.size, rules=icac.rules)
        change: dict[str, Any] = {
            "id": row.id,
            "priority": after.level,
            "priority_rank": LEVEL_RANK[after.level],
            "score": after.score,
            "priority_floor": after.floor,
            "reasons": _reasons_json(after),
        }
        if after.level != row.priority:
            version = row.event_version + 1
            change["event_version"] = version
            icac.metrics.triaged.labels(after.level).inc()
            events.append(
                _event(
                    icac,
                    TipTriaged(
                        tip_id=icac.tip_pseudonym(str(row.id)),
                        priority=after.level,
                        reason_codes=list(after.reason_codes),
                        cluster_id=icac.cluster_pseudonym(str(group.cluster_id)),
                        cluster_size=group.size,
                        in_jurisdiction=row.in_jurisdiction,
                        province_code=row.province_code,
                        hash_match_count=row.hash_match_count,
                    ),
                    version,
                    str(row.id),
                    now,
                )
            )
        updates.append(change)
    await repo.update_rows(session, repo.TIPS, "id", updates)
    await store.copy_rows(session, repo.OUTBOX, repo.OUTBOX_COLUMNS, events)
    log.info("tips re-assessed for grown clusters", tips=len(updates), events=len(events))


async def _write(
    icac: Icac,
    session: AsyncSession,
    works: list[_Work],
    now: datetime,
    events: list[tuple[Any, ...]],
    known: set[str],
) -> None:
    new_rows: list[tuple[Any, ...]] = []
    updates: list[dict[str, Any]] = []
    versions: list[tuple[Any, ...]] = []
    matches: list[tuple[Any, ...]] = []
    rematched: list[uuid.UUID] = []
    cluster_pseudonyms: dict[uuid.UUID, str] = {}
    levels: Counter[str] = Counter()  # counted here, added to the metric once per level
    for work in works:
        final = work.final
        report = final.item.report
        facts = final.facts
        for number, p in work.versions:
            versions.append(
                (
                    p.version_id,
                    work.tip_id,
                    number,
                    p.item.fingerprint,
                    now,
                    p.item.channel,
                    p.item.provenance[:200],
                    p.item.received_by,
                    p.report_token,
                )
            )
        last_number = work.versions[-1][0]
        first = work.versions[0][1]
        tip_ps = first.tip_ps if work.is_new else icac.tip_pseudonym(str(work.tip_id))
        cluster_ps: str | None = None
        if work.is_new and work.cluster_id == work.tip_id:
            cluster_ps = first.alone_cluster_ps
        elif work.cluster_id is not None:
            cluster_ps = cluster_pseudonyms.get(work.cluster_id)
            if cluster_ps is None:
                cluster_ps = icac.cluster_pseudonym(str(work.cluster_id))
                cluster_pseudonyms[work.cluster_id] = cluster_ps
        correlation = final.item.correlation_id or str(final.version_id)
        if work.is_new:
            assessment = work.assessment
            assert assessment is not None and work.cluster_id is not None
            row = {
                "id": work.tip_id,
                "provider": report.provider,
                "report_id": report.report_id,
                "version": last_number,
                "fingerprint": final.item.fingerprint,
                "current_version_id": final.version_id,
                "source": work.versions[0][1].item.channel,
                "received_at": now,
                "status": "queued",
                "claimed_by": None,
                "claimed_at": None,
                "disposition": None,
                "disposed_by": None,
                "disposed_at": None,
                "duplicate_of": None,
                "event_version": 2,
                **facts,
                **_triage(assessment, work, final),
            }
            new_rows.append(_tip_row(row))
            # The tip.received of its first version (a later one in the batch is an update).
            events.append(first.received)
            events.append(
                _triaged_event(icac, work, final, 2, correlation, now, tip_ps, cluster_ps)
            )
            levels[assessment.level] += 1
        else:
            change: dict[str, Any] = {
                "id": work.tip_id,
                "version": last_number,
                "fingerprint": final.item.fingerprint,
                "current_version_id": final.version_id,
                "updated_at": now,
            }
            if work.is_open:
                assessment = work.assessment
                assert assessment is not None
                version = work.row.event_version + 1
                change.update(facts)
                change.update(_triage(assessment, work, final))
                change["event_version"] = version
                events.append(
                    _triaged_event(icac, work, final, version, correlation, now, tip_ps, cluster_ps)
                )
                levels[assessment.level] += 1
                rematched.append(work.tip_id)
            updates.append(change)
        if work.is_open:
            matches.extend(
                (work.tip_id, m.file_index, m.hash_set, m.algorithm, m.distance, m.category)
                for m in final.matches
            )

    for level, count in levels.items():
        icac.metrics.triaged.labels(level).inc(count)
    await store.copy_rows(session, repo.TIPS, repo.TIP_COLUMNS, new_rows)
    await repo.update_rows(session, repo.TIPS, "id", updates)
    await store.copy_rows(session, repo.VERSIONS, repo.VERSION_COLUMNS, versions)
    await repo.delete_matches(session, rematched)
    await store.copy_rows(session, repo.MATCHES, repo.MATCH_COLUMNS, matches)

    # Identifiers: a key the store does not hold yet is stored with the first tip that had
    # it (under the ingest lock no one else is adding it); sightings are always kept.
    all_keys: dict[str, tuple[str, uuid.UUID]] = {}
    sightings: list[tuple[Any, ...]] = []
    for work in works:
        for _, p in work.versions:
            for kind, key in p.identifiers.keys:
                all_keys.setdefault(key, (kind, work.tip_id))
            sightings.extend(
                (s.key, s.at, work.tip_id) for s in p.identifiers.ip_sightings if s.at is not None
            )
    await store.copy_rows(
        session,
        repo.LINK_KEYS,
        ("key", "kind", "tip_id"),
        [(key, kind, tip) for key, (kind, tip) in all_keys.items() if key not in known],
    )
    await store.copy_rows(session, repo.SIGHTINGS, ("ip_key", "at", "tip_id"), sightings)


# A new tip's row in the order of ``repo.TIP_COLUMNS``, picked in C.
_tip_row = operator.itemgetter(*repo.TIP_COLUMNS)


def _facts(report: TipReport, j: JurisdictionAssessment, now: datetime) -> dict[str, Any]:
    """What triage shows of a report without decrypting it: codes, dates and counts."""
    foreign = [c for c in j.foreign_countries if len(c) == 2 and c.isalpha() and c != "ZZ"]
    country = HOME_COUNTRY if j.home_indicators else (foreign[0] if foreign else None)
    return {
        "incident_type": report.incident_type,
        "annotations": ",".join(report.annotations),
        "provider_priority": report.provider_priority,
        "incident_at": report.incident_at,
        "updated_at": now,
        "victim_count": len(report.victims),
        "youngest_victim_age": report.youngest_victim_age(),
        "file_count": len(report.files),
        "in_jurisdiction": not j.no_jurisdiction_candidate,
        "country_code": country,
        "province_code": j.province_code,
        "home_indicators": ",".join(j.home_indicators)[:200],
        "foreign_countries": ",".join(foreign)[:200],
    }


def _triage(assessment: PriorityAssessment, work: _Work, p: _Prepared) -> dict[str, Any]:
    return {
        "priority": assessment.level,
        "priority_rank": LEVEL_RANK[assessment.level],
        "score": assessment.score,
        "priority_floor": assessment.floor,
        "reasons": _reasons_json(assessment),
        "hash_match_count": len(p.matches),
        "cluster_id": work.cluster_id,
    }


def _reasons_json(assessment: PriorityAssessment) -> str:
    """``[[code, points], ...]`` as compact JSON (what ``json.dumps`` with ``(",", ":")``
    separators gives; tested), each code through the C string encoder."""
    return (
        "["
        + ",".join([f"[{_json_ascii(r.code)},{int(r.points)}]" for r in assessment.reasons])
        + "]"
    )


def _triaged_event(
    icac: Icac,
    work: _Work,
    p: _Prepared,
    version: int,
    correlation: str,
    now: datetime,
    tip_ps: str,
    cluster_ps: str | None,
) -> tuple[Any, ...]:
    assessment = work.assessment
    assert assessment is not None and cluster_ps is not None
    return _event(
        icac,
        TipTriaged(
            tip_id=tip_ps,
            priority=assessment.level,
            reason_codes=list(assessment.reason_codes),
            cluster_id=cluster_ps,
            cluster_size=work.cluster_size,
            in_jurisdiction=not p.jurisdiction.no_jurisdiction_candidate,
            province_code=p.jurisdiction.province_code,
            hash_match_count=len(p.matches),
        ),
        version,
        correlation,
        now,
    )


def envelope_bytes(
    data: EventData,
    *,
    source: str,
    aggregate_id: str,
    aggregate_version: int,
    correlation_id: str,
    occurred_at: datetime,
) -> tuple[uuid.UUID, bytes]:
    """The envelope of CONTRACT.md section 4 around ``data``, as bytes: byte for byte what
    ``new_envelope(...).to_bytes()`` gives (tested), without building and re-validating the
    envelope model for each of the batch's events (``data`` itself is a validated model)."""
    event_id = uuid4()
    head = (
        f'{{"event_id":"{event_id}","event_type":{_json_str(data.event_type)},'
        f'"event_version":{int(data.event_version)},"occurred_at":"{_rfc3339(occurred_at)}",'
        f'"source":{_json_str(source)},"aggregate_id":{_json_str(aggregate_id)},'
        f'"aggregate_version":{int(aggregate_version)},'
        f'"correlation_id":{_json_str(correlation_id[:200])},"data":'
    )
    return event_id, head.encode() + data.model_dump_json().encode() + b"}"


# A string as JSON, UTF-8 kept as it is (as pydantic writes it): the C function that
# ``json.dumps(..., ensure_ascii=False)`` ends in, without an encoder per value.
_json_str: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]
_json_ascii: Callable[[str], str] = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=8)
def _rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _event(
    icac: Icac, data: EventData, version: int, correlation: str, now: datetime
) -> tuple[Any, ...]:
    """An outbox row (the columns of :data:`repo.OUTBOX_COLUMNS`) for one tip event."""
    tip_ps: str = data.tip_id  # type: ignore[attr-defined]
    event_id, payload = envelope_bytes(
        data,
        source=icac.source,
        aggregate_id=tip_ps,
        aggregate_version=version,
        correlation_id=correlation,
        occurred_at=now,
    )
    return (event_id, TIP_EVENTS.name, tip_ps, payload, now)


def event_row(
    icac: Icac, data: EventData, version: int, correlation: str, now: datetime
) -> tuple[Any, ...]:
    """:func:`_event` for the workflow's events (escalated, closed)."""
    return _event(icac, data, version, correlation, now)
