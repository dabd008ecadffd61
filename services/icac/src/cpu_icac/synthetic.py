"""Synthetic tip feeds for tests and benchmarks: seeded, no real person, account or file.

A feed mixes valid reports, exact re-sends of some of them (as a provider's retry would send
them, byte for byte or re-serialised) and malformed messages, each with the reason the platform
must give. Identifiers come from pools sized to the feed so that some tips share a screen name,
an e-mail, a phone, an IP address within two days, or a file, and most do not (as in real
feeds, clusters stay small). IP addresses are in the documentation ranges the test GeoIP
database places (Phnom Penh, Siem Reap, the US) plus private ones it does not know.
Incident times are far from the priority rules' recency limits (72 hours, 30 days, a year), so
expected priorities do not depend on when exactly a test runs.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cpu_icac.domain.hash_sets import HashSet, KnownHash

INCIDENTS = (
    "child_sexual_abuse_material",
    "child_sexual_abuse_material",
    "child_sexual_abuse_material",
    "online_enticement",
    "child_sex_trafficking",
    "child_sexual_molestation",
    "unsolicited_obscene_material_to_child",
    "misleading_content",
)
PROVIDERS = ("ncmec", "ncmec", "ncmec", "hsi", "interpol", "esp:example-video", "esp:example-chat")
# Hours before "now": inside 72 hours, inside 30 days, neither, over a year.
AGE_BANDS_HOURS = ((1, 24), (5 * 24, 20 * 24), (60 * 24, 300 * 24), (400 * 24, 800 * 24))
NETWORKS = ("203.0.113.", "198.51.100.", "192.0.2.", "10.20.30.")

# (message, what the reason must say)
MALFORMED: tuple[tuple[bytes, str], ...] = (
    (b"{this is not json", "invalid_report: report: Invalid JSON"),
    (b"[1, 2, 3]", "invalid_report: report:"),
    (b'{"provider": "ncmec", "report_id": "X-1"}', "incident_type: Field required"),
    (
        b'{"provider": "acme", "report_id": "X-2", "incident_type": "other"}',
        "provider: not a known provider",
    ),
    (
        b'{"provider": "ncmec", "report_id": "X-3", "incident_type": "shoplifting"}',
        "incident_type:",
    ),
    (
        b'{"provider": "ncmec", "report_id": "X-4", "incident_type": "other", '
        b'"files": [{"md5": "not-a-hash"}]}',
        "files[0].md5: not an MD5 hash",
    ),
    (
        b'{"provider": "ncmec", "report_id": "X-5", "incident_type": "other", '
        b'"favourite_colour": "blue"}',
        "<field>: unexpected field",
    ),
    (
        b'{"provider": "ncmec", "report_id": "X-6", "incident_type": "other", '
        b'"victims": [{"age_estimate": -1}]}',
        "victims[0].age_estimate:",
    ),
    (
        b'{"provider": "ncmec", "report_id": "X-7", "incident_type": "other", '
        b'"reported_persons": [{"ip_events": [{"ip": "999.1.1.1"}]}]}',
        "ip: not an IPv4 or IPv6 address",
    ),
    (
        b'{"provider": "ncmec", "report_id": "X-8", "incident_type": "other", '
        b'"files": [{"file_name": "no-hash.jpg"}]}',
        "a file needs at least one of md5, sha1, pdq",
    ),
)


def _hex(rng: random.Random, bits: int) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


def _near(rng: random.Random, pdq: str, flips: int) -> str:
    value = int(pdq, 16)
    for bit in rng.sample(range(256), flips):
        value ^= 1 << bit
    return f"{value:064x}"


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def known_hash_set(size: int, *, seed: int = 1, name: str = "synthetic-national") -> HashSet:
    """A known-hash list of ``size`` entries (MD5, SHA-1 and PDQ each), categories 0-3."""
    rng = random.Random(seed)
    entries = tuple(
        KnownHash(_hex(rng, 128), _hex(rng, 160), _hex(rng, 256), rng.choice((0, 1, 1, 1, 2, 3)))
        for _ in range(size)
    )
    return HashSet(name, entries)


def hash_set_csv(hash_set: HashSet) -> bytes:
    lines = ["md5,sha1,pdq,category"]
    lines += [f"{e.md5},{e.sha1},{e.pdq},{e.category}" for e in hash_set.entries]
    return ("\n".join(lines) + "\n").encode()


def synthetic_reports(
    count: int,
    *,
    now: datetime,
    seed: int = 20261008,
    known: Sequence[KnownHash] = (),
    prefix: str = "SYN",
) -> list[dict[str, Any]]:
    """``count`` valid reports in the platform's shape."""
    rng = random.Random(seed)
    pool = max(50, 8 * count)
    reports = []
    for i in range(count):
        low, high = rng.choice(AGE_BANDS_HOURS)
        at = now - timedelta(hours=rng.uniform(low, high))
        files = []
        for f in range(rng.choice((0, 1, 1, 2, 3))):
            entry = rng.choice(known) if known and rng.random() < 0.1 else None
            pdq = None
            if rng.random() < 0.5:
                pdq = (
                    _near(rng, entry.pdq, rng.randrange(0, 20))
                    if entry is not None and entry.pdq
                    else _hex(rng, 256)
                )
            files.append(
                {
                    "file_name": f"IMG_{i}_{f}.jpg",
                    "md5": entry.md5 if entry is not None else _hex(rng, 128),
                    "sha1": _hex(rng, 160),
                    "pdq": pdq,
                    "viewed_by_provider": rng.random() < 0.7,
                    "publicly_available": rng.random() < 0.2,
                }
            )
        network = rng.choice(NETWORKS)
        report: dict[str, Any] = {
            "provider": rng.choice(PROVIDERS),
            "report_id": f"{prefix}-{i:08d}",
            "incident_type": rng.choice(INCIDENTS),
            "annotations": rng.sample(
                ["sextortion", "csam_solicitation", "minor_to_minor_interaction"],
                rng.choice((0, 0, 0, 1)),
            ),
            "escalation_reason": "Meeting planned this weekend." if rng.random() < 0.02 else None,
            "incident_at": _iso(at),
            "provider_priority": rng.choice(("1", "2", "2", "3", "3", "E")),
            "reporter": {"name": "Example Social Network", "type": "esp"},
            "reported_persons": [
                {
                    "screen_names": [f"user_{rng.randrange(pool)}"],
                    "emails": [f"u{rng.randrange(pool)}@example.com"] if rng.random() < 0.7 else [],
                    "phones": [f"+8551{rng.randrange(pool):07d}"] if rng.random() < 0.5 else [],
                    "ip_events": [
                        {
                            "ip": f"{network}{rng.randrange(1, 255)}",
                            "event": rng.choice(("login", "upload")),
                            "at": _iso(at - timedelta(minutes=10 * m)),
                        }
                        for m in range(rng.choice((0, 1, 1, 2)))
                    ],
                }
            ],
            "victims": [
                {"age_estimate": rng.randrange(2, 18), "sex": rng.choice(("female", "male"))}
                for _ in range(rng.choice((0, 1, 1, 2)))
            ],
            "files": files,
            "narrative": "Synthetic tip; no real person, account or file.",
        }
        reports.append(report)
    return reports


@dataclass
class Feed:
    """Messages ``(key, value)`` in the order to produce them, and what they are."""

    messages: list[tuple[bytes, bytes]] = field(default_factory=list)
    valid: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0
    malformed: list[tuple[bytes, str]] = field(default_factory=list)


def synthetic_feed(
    total: int,
    *,
    now: datetime,
    duplicate_share: float = 0.05,
    malformed_share: float = 0.01,
    seed: int = 20261008,
    known: Sequence[KnownHash] = (),
    prefix: str = "SYN",
) -> Feed:
    """``total`` messages: valid reports, re-sends of some (``duplicate_share`` of the total)
    each after its original, and malformed messages (``malformed_share``)."""
    rng = random.Random(seed + 1)
    n_dup = round(total * duplicate_share)
    n_bad = round(total * malformed_share)
    valid = synthetic_reports(total - n_dup - n_bad, now=now, seed=seed, known=known, prefix=prefix)
    placed: list[tuple[float, tuple[bytes, bytes]]] = [
        (float(i), (r["report_id"].encode(), json.dumps(r).encode())) for i, r in enumerate(valid)
    ]
    for n in range(n_dup):
        original = rng.randrange(len(valid))
        report = valid[original]
        # Half byte for byte, half re-serialised (same report, other bytes).
        value = (
            json.dumps(report).encode()
            if n % 2 == 0
            else json.dumps(report, sort_keys=True, indent=1).encode()
        )
        placed.append(
            (rng.uniform(original + 0.1, len(valid)), (report["report_id"].encode(), value))
        )
    malformed = []
    for n in range(n_bad):
        value, reason = MALFORMED[n % len(MALFORMED)]
        placed.append((rng.uniform(0, len(valid)), (f"BAD-{n:05d}".encode(), value)))
        malformed.append((value, reason))
    placed.sort(key=lambda item: item[0])
    messages = [message for _, message in placed]
    return Feed(messages, valid, n_dup, malformed)
