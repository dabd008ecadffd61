"""Issue 3: each service's committed AsyncAPI document matches what its code declares."""

from __future__ import annotations

import json

import pytest

from cpu_platform.cli import SERVICE_NAMES, asyncapi_path, service_asyncapi


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_committed_asyncapi_matches_the_code(service: str) -> None:
    committed = json.loads(asyncapi_path(service).read_text())
    assert committed == service_asyncapi(service), (
        f"services/{service}/asyncapi.json is stale: run `uv run cpu asyncapi` and commit it"
    )


def test_the_documents_describe_topics_and_event_payloads() -> None:
    casework = service_asyncapi("casework")
    addresses = {c["address"] for c in casework["channels"].values()}
    assert {
        "casework.case.events",
        "intake.referral.events",
        "icac.tip.events",
        "forensics.evidence.events",
    } <= addresses
    schemas = casework["components"]["schemas"]
    assert {"CaseOpenedV1", "CaseChargedV1", "CaseClosedV1"} <= set(schemas)
