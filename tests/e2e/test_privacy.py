"""Issue 4: after an end-to-end run, no submitted name, phone or narrative is in any service's
log, in a raw dump of any service's PostgreSQL database, or in any event on Kafka."""

from __future__ import annotations

import secrets
import subprocess
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from cpu_platform.devstack.postgres import find_pg_bindir
from cpu_platform.testing.kafka_tools import bearer, read_all
from cpu_platform.testing.stack import PlatformStack, run
from cpu_shared.messaging.topics import TOPICS
from cpu_shared.security.crypto import Keyring


def personal_values() -> dict[str, str]:
    tag = secrets.token_hex(3)
    digits = f"{secrets.randbelow(900) + 100}{secrets.randbelow(900) + 100}"
    return {
        "given_name": f"Zorvath{tag}",
        "family_name": f"Quellin{tag}",
        "name_km": "សុខាវិសាល",
        "phone": f"+85512{digits}",
        "narrative": f"Narrative marker {tag}: the child was seen near the market.",
        "perpetrator": f"Brannoch{tag}",
        "village": f"Phum Xelvar{tag}",
        "screen_name": f"qorvex_{tag}",
        "email": f"vantrel.{tag}@example.org",
        "tip_phone": f"+85577{digits}",
        "tip_narrative": f"Tip marker {tag}: an adult asked the child to meet.",
        "escalation_reason": f"Exigent marker {tag}: a meeting is planned tonight.",
    }


def referral(values: dict[str, str]) -> dict[str, object]:
    return {
        "source": "helpline_1288",
        "received_at": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        "reporter": {
            "anonymous": False,
            "name": f"Reporter {values['family_name']}",
            "phone": values["phone"],
            "relationship": "neighbour",
        },
        "children": [
            {
                "given_name": values["given_name"],
                "family_name": values["family_name"],
                "name_km": values["name_km"],
                "sex": "female",
                "age_estimate": 9,
                "province_code": "12",
                "district": "Chamkar Mon",
                "commune": "Tonle Basac",
                "village": values["village"],
            }
        ],
        "concerns": ["physical_abuse"],
        "alleged_perpetrators": [
            {
                "name": values["perpetrator"],
                "relationship": "relative",
                "age_estimate": 40,
                "has_access_to_child": True,
            }
        ],
        "narrative": values["narrative"],
        "immediate_danger": False,
        "injuries": True,
    }


def tip(values: dict[str, str]) -> dict[str, object]:
    """A partner's tip report (CONTRACT.md section 6) carrying personal values."""
    return {
        "provider": "hsi",
        "report_id": f"HSI-PRIV-{secrets.token_hex(6)}",
        "incident_type": "online_enticement",
        "incident_at": (datetime.now(UTC) - timedelta(hours=2)).isoformat(),
        "provider_priority": "E",
        "escalation_reason": values["escalation_reason"],
        "reporter": {"name": "Example Messaging App", "type": "esp"},
        "reported_persons": [
            {
                "screen_names": [values["screen_name"]],
                "emails": [values["email"]],
                "phones": [values["tip_phone"]],
                "ip_events": [
                    {"ip": "198.51.100.23", "event": "login", "at": datetime.now(UTC).isoformat()}
                ],
            }
        ],
        "victims": [{"age_estimate": 12, "sex": "female"}],
        "files": [],
        "narrative": values["tip_narrative"],
    }


def dump(url: str) -> str:
    bindir = find_pg_bindir()
    assert bindir is not None
    parts = urlsplit(url)
    plain = urlunsplit(("postgresql", parts.netloc, parts.path, "", ""))
    done = subprocess.run(
        [str(bindir / "pg_dump"), "--data-only", "--no-owner", plain],
        capture_output=True,
        timeout=120,
        check=True,
    )
    return done.stdout.decode("utf-8", errors="replace")


def needles(values: dict[str, str]) -> dict[str, str]:
    found = dict(values)
    found["phone_local"] = "0" + values["phone"][4:]  # the same number as a person types it
    found["phone_digits"] = values["phone"][1:]
    return found


def test_no_personal_value_in_logs_databases_or_events(platform_stack: PlatformStack) -> None:
    values = personal_values()
    intake = platform_stack.url("intake")
    created = httpx.post(
        f"{intake}/api/v1/referrals",
        json=referral(values),
        headers=bearer("intake_officer"),
        timeout=30,
    )
    if created.status_code == 404:
        pytest.fail("intake's POST /api/v1/referrals is not there")
    assert created.status_code == 201, created.text
    referral_id = created.json()["id"]
    # Reads leave an audit trail; exercise them so their logging is scanned too.
    assert (
        httpx.get(
            f"{intake}/api/v1/referrals/{referral_id}", headers=bearer("supervisor"), timeout=30
        ).status_code
        == 200
    )

    # A tip through ICAC: stored, read by an analyst, claimed and escalated to casework.
    tips = f"{platform_stack.url('icac')}/api/v1/tips"
    analyst = bearer("icac_analyst", user="analyst-privacy")
    posted = httpx.post(tips, json=tip(values), headers=analyst, timeout=30)
    assert posted.status_code in (200, 201), posted.text
    tip_id = posted.json()["tip_id"]
    assert httpx.get(f"{tips}/{tip_id}", headers=analyst, timeout=30).status_code == 200
    assert httpx.post(f"{tips}/{tip_id}/claim", headers=analyst, timeout=30).status_code == 200
    escalated = httpx.post(
        f"{tips}/{tip_id}/disposition",
        json={"disposition": "escalate"},
        headers=analyst,
        timeout=30,
    )
    assert escalated.status_code == 200, escalated.text

    casework = platform_stack.url("casework")
    deadline = time.monotonic() + 120
    while True:
        cases = httpx.get(
            f"{casework}/api/v1/cases",
            params={"referral_id": referral_id},
            headers=bearer("supervisor"),
            timeout=30,
        )
        if cases.status_code == 200 and cases.json().get("items", cases.json().get("cases")):
            break
        assert time.monotonic() < deadline, f"no case opened for the referral: {cases.text}"
        time.sleep(0.5)
    # ... and for the escalated tip (known to casework by its pseudonym only).
    tip_pseudonym = Keyring.load().pseudonymizer().pseudonym("tip", tip_id)
    while True:
        cases = httpx.get(
            f"{casework}/api/v1/cases",
            params={"tip_id": tip_pseudonym},
            headers=bearer("supervisor"),
            timeout=30,
        )
        if any(c["origin_id"] == tip_pseudonym for c in cases.json().get("items", [])):
            break
        assert time.monotonic() < deadline, "no case opened for the escalated tip"
        time.sleep(0.5)
    time.sleep(2)  # let reporting and the relays catch up before the scans

    leaks = []
    for service, text in platform_stack.logs().items():
        leaks += [
            f"log of {service}: {name}" for name, value in needles(values).items() if value in text
        ]
    for service, url in platform_stack.database_urls.items():
        text = dump(url)
        leaks += [
            f"database of {service}: {name}"
            for name, value in needles(values).items()
            if value in text
        ]
    for topic in TOPICS:
        records = run(read_all(platform_stack.bootstrap_servers, topic.name))
        raw = "\n".join(r.value.decode("utf-8", errors="replace") for r in records if r.value)
        leaks += [
            f"topic {topic.name}: {name}" for name, value in needles(values).items() if value in raw
        ]
    assert not leaks, "personal values found in plaintext:\n" + "\n".join(leaks)
