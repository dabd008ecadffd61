"""The same service on SQLite, the store of ``make up``: migrations, imports, linking, hash
sets, the workflow and a refused file, through the plain (non-COPY) code paths."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from cpu_icac.app import create_app
from cpu_icac.config import IcacSettings
from cpu_platform.testing.kafka_tools import bearer
from cpu_shared.db import apply_migrations

DATA = Path(__file__).parents[1] / "unit" / "data"


@pytest.fixture
async def sqlite_app(tmp_path: Path, geoip_database: Path) -> AsyncIterator[Any]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'icac.db'}"
    await apply_migrations("cpu_icac.migrations", url)
    app = create_app(
        IcacSettings(
            database_url=url,
            kafka_bootstrap_servers="127.0.0.1:9",
            run_migrations=False,
            geoip_database=geoip_database,
        )
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://icac") as client:
        yield app, client
    app.state.icac.close()
    await app.state.runtime.engine.dispose()


async def test_the_service_on_sqlite(sqlite_app: Any) -> None:
    app, client = sqlite_app
    analyst = bearer("icac_analyst", user="analyst1")
    vics = (DATA / "sample-vics.json").read_bytes()
    uploaded = await client.post(
        "/api/v1/hash-sets",
        files={"file": ("vics.json", vics, "application/json")},
        data={"name": "project-vic"},
        headers=bearer("supervisor"),
    )
    assert uploaded.status_code == 201, uploaded.text
    for name, media in (
        ("sample-tips.jsonl", "application/x-ndjson"),
        ("sample-tips.xml", "application/xml"),
        ("sample-cmt-export.json", "application/json"),
    ):
        data = (DATA / name).read_bytes()
        response = await client.post(
            "/api/v1/tips/import", content=data, headers={"Content-Type": media, **analyst}
        )
        assert response.status_code == 200, response.text
        assert response.json()["rejected"] == 0
        again = await client.post(
            "/api/v1/tips/import", content=data, headers={"Content-Type": media, **analyst}
        )
        assert again.json()["created"] == 0 and again.json()["unchanged"] > 0

    async with app.state.runtime.engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT report_id, cluster_id FROM icac_tip"))).all()
    cluster = {r.report_id: r.cluster_id for r in rows}
    assert len(rows) == 6
    assert cluster["CT-2026-100000001"] == cluster["100000002"] == cluster["100000005"]
    assert cluster["HSI-KH-2026-0193"] == cluster["100000004"]

    queue = (await client.get("/api/v1/tips", headers=analyst)).json()
    assert queue["total"] == 6
    viral = next(t for t in queue["items"] if t["report_id"] == "EV-88811")
    detail = (await client.get(f"/api/v1/tips/{viral['id']}", headers=analyst)).json()
    assert [(m["hash_set"], m["algorithm"], m["category"]) for m in detail["hash_matches"]] == [
        ("project-vic", "md5", 1)
    ]
    assert detail["report"]["files"][0]["file_name"] == "clip.mp4"

    url = f"/api/v1/tips/{viral['id']}"
    assert (await client.post(f"{url}/claim", headers=analyst)).status_code == 200
    done = await client.post(
        f"{url}/disposition", json={"disposition": "no_jurisdiction"}, headers=analyst
    )
    assert done.status_code == 200 and done.json()["status"] == "closed"

    hostile = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "b">]><reports/>'
    refused = await client.post(
        "/api/v1/tips/import",
        content=hostile,
        headers={"Content-Type": "application/xml", **analyst},
    )
    assert refused.status_code == 400 and "entit" in refused.json()["detail"]

    client.cookies.set("cpu_session", analyst["Authorization"][7:])
    pages = await client.get("/ui/tips")
    assert pages.status_code == 200
    assert "HSI-KH-2026-0193" in pages.text and "EV-88811" not in pages.text
    closed = await client.get("/ui/tips", params={"status": "closed"})
    assert "EV-88811" in closed.text
    assert json.loads(json.dumps(detail))["cluster"]["size"] == 1
