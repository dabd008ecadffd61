"""Issue 4: after a master-key rotation every record is still readable, and new writes use the
new key. Runs `cpu keys rotate` as an operator would, against PostgreSQL."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from cpu_shared.security.crypto import FieldCipher, field_context, generate_key


def cpu(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "cpu_platform.cli", *args],
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def keys_env(keys: dict[str, str], active: str) -> dict[str, str]:
    return {
        "CPU_CRYPTO_MASTER_KEYS": json.dumps(keys),
        "CPU_CRYPTO_ACTIVE_MASTER_KEY": active,
        "CPU_CRYPTO_BLIND_INDEX_KEY": generate_key(),
        "CPU_CRYPTO_PSEUDONYM_KEY": generate_key(),
    }


async def test_rotation_keeps_every_record_readable_and_new_writes_use_the_new_key(
    make_database: Callable[[str], str],
) -> None:
    url = make_database("rotation")
    k1, k2 = generate_key(), generate_key()
    raw = {"k1": base64.b64decode(k1), "k2": base64.b64decode(k2)}
    before = FieldCipher({"k1": raw["k1"]}, "k1")
    names = {str(uuid.uuid4()): f"Sokha {n} សុខា" for n in range(1200)}
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(
            sa.text("CREATE TABLE child (id varchar(36) PRIMARY KEY, name_enc text, province text)")
        )
        await conn.execute(
            sa.text("INSERT INTO child VALUES (:id, :name, '12')"),
            [
                {
                    "id": cid,
                    "name": before.encrypt(name, context=field_context("child", "name", cid)),
                }
                for cid, name in names.items()
            ],
        )

    status = cpu("keys", "status", "--database-url", url, env=keys_env({"k1": k1}, "k1"))
    assert "child.name_enc" in status and "k1: 1200" in status

    rotated = keys_env({"k1": k1, "k2": k2}, "k2")
    out = cpu("keys", "rotate", "--database-url", url, "--batch-size", "250", env=rotated)
    assert "1200 value(s) re-wrapped under k2" in out
    assert "k2: 1200" in cpu("keys", "status", "--database-url", url, env=rotated)
    again = cpu("keys", "rotate", "--database-url", url, env=rotated)
    assert "0 value(s) re-wrapped" in again

    # Readable with k2 alone: the old key can now be retired.
    after = FieldCipher({"k2": raw["k2"]}, "k2")
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT id, name_enc FROM child"))).all()
    assert {
        cid: after.decrypt(token, context=field_context("child", "name", cid))
        for cid, token in rows
    } == names
    new = FieldCipher(raw, "k2").encrypt("Dara", context=field_context("child", "name", "x"))
    assert new.startswith("enc1.k2.")
    await engine.dispose()
