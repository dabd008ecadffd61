#!/usr/bin/env python3
"""Apply one service's Alembic migrations, one process at a time per database.

    cpu-migrate SERVICE            (in the image: /opt/cpu/bin/cpu-migrate)
    python deploy/tools/cpu_migrate.py SERVICE

Reads ``<SERVICE>_DATABASE_URL`` like the service itself and runs the migrations shipped in
``cpu_<service>.migrations`` up to head, exactly as the service does at start when
``<SERVICE>_RUN_MIGRATIONS=true`` (it calls the same ``cpu_shared.db.upgrade_to_head``).

Why a separate step: with several replicas, every replica migrating at start means several
Alembic runs racing on one database (two ``CREATE TABLE`` of the same table, two rows in
``alembic_version``). Here, on PostgreSQL, the run holds a session-level advisory lock for
the whole upgrade, so concurrent runs (e.g. the init containers of a rolling update) queue:
the first migrates, the others find the database at head and do nothing. The Kubernetes
manifests run this as an init container and start the service with
``<SERVICE>_RUN_MIGRATIONS=false``. SQLite needs no lock (a single-process store).

Exit status: 0 when the database is at head, 1 on any error (the init container then fails
and Kubernetes retries it; the service does not start on a half-migrated schema).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import zlib

SERVICES = ("intake", "casework", "forensics", "icac", "reporting")


def lock_key(service: str) -> int:
    """A stable advisory-lock key per service, apart from the outbox relay's key."""
    return zlib.crc32(f"cpu-migrations:{service}".encode()) | (0x4350 << 32)


async def migrate(service: str, url: str, lock_timeout: float) -> None:
    from sqlalchemy import pool, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    from cpu_shared.db import upgrade_to_head

    package = f"cpu_{service}.migrations"
    if make_url(url).get_backend_name() != "postgresql":
        await asyncio.to_thread(upgrade_to_head, package, url)
        return
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as conn:
            key = lock_key(service)
            async with asyncio.timeout(lock_timeout):
                await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            await conn.commit()  # the lock is the session's, not the transaction's
            try:
                # Alembic runs its own event loop, so it gets a thread without one.
                await asyncio.to_thread(upgrade_to_head, package, url)
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                await conn.commit()
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument(
        "--lock-timeout",
        type=float,
        default=600.0,
        help="seconds to wait for another replica's migration (default 600)",
    )
    args = parser.parse_args(argv)
    variable = f"{args.service.upper()}_DATABASE_URL"
    url = os.environ.get(variable)
    if not url:
        print(f"cpu-migrate: {variable} is not set", file=sys.stderr)
        return 1
    try:
        asyncio.run(migrate(args.service, url, args.lock_timeout))
    except Exception as exc:  # one line, no URL (it holds the password)
        print(f"cpu-migrate: {args.service}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"cpu-migrate: {args.service} is at head")
    return 0


if __name__ == "__main__":
    sys.exit(main())
