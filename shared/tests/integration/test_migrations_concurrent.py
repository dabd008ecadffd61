"""Several replicas starting at once on one PostgreSQL database migrate it exactly once."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

MIGRATIONS = "cpu_platform.testing.probe_service.migrations"


async def test_concurrent_starts_migrate_once(make_database: Callable[[str], str]) -> None:
    url = make_database("probe")
    code = f"from cpu_shared.db import upgrade_to_head; upgrade_to_head({MIGRATIONS!r}, {url!r})"
    # Separate processes, as replicas are (Alembic's context is global to a process).
    replicas = [
        subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE) for _ in range(4)
    ]
    errors = [proc.communicate(timeout=120)[1].decode() for proc in replicas]
    assert [proc.returncode for proc in replicas] == [0, 0, 0, 0], errors
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        versions = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).all()
        outbox = (
            await conn.execute(
                sa.text(
                    "SELECT count(*) FROM information_schema.tables WHERE table_name = 'outbox'"
                )
            )
        ).scalar()
    await engine.dispose()
    assert [v[0] for v in versions] == ["probe_0001"]
    assert outbox == 1
