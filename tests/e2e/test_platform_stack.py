"""The whole platform as processes: every service healthy, ready, and serving its contract."""

from __future__ import annotations

import httpx

from cpu_platform.testing.kafka_tools import bearer
from cpu_platform.testing.stack import PlatformStack


def test_every_service_is_ready_and_guards_its_api(platform_stack: PlatformStack) -> None:
    for name in platform_stack.processes:
        base = platform_stack.url(name)
        assert httpx.get(f"{base}/ready", timeout=10).status_code == 200, name
        assert httpx.get(f"{base}/openapi.json", timeout=10).status_code == 200, name
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        assert "cpu_outbox_backlog" in metrics, name
        assert httpx.get(f"{base}/api/v1/audit", timeout=10).status_code == 401, name
        audit = httpx.get(f"{base}/api/v1/audit", headers=bearer("auditor"), timeout=10)
        assert audit.status_code == 200, (name, audit.text)
        ops = httpx.get(f"{base}/api/v1/audit", headers=bearer("ops"), timeout=10)
        assert ops.status_code == 403, name
