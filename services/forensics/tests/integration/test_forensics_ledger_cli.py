"""``cpu ledger verify`` as an operator runs it, against a real PostgreSQL store: an intact
ledger exits 0; a single custody row tampered with (a changed byte, a deleted row, two rows
swapped) exits 1 and names that entry by ledger index and event id.

The tampering is done the way an intruder with the database owner's rights would: the
append-only triggers are switched off for the session (``session_replication_role``) first.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration


async def build_ledger(forensics) -> dict[int, str]:  # type: ignore[no-untyped-def]
    """Seven entries over three items, interleaved; returns ledger index -> event id."""
    a = await forensics.register(user="fo.dara")  # 0
    b = await forensics.register(user="fo.sokha", type="blood", description="Blood swab")  # 1
    await forensics.move(a["id"], "fo.dara", "fo.vanna")  # 2
    await forensics.move(b["id"], "fo.sokha", "lab.chan", kind="sent_to_lab")  # 3
    c = await forensics.register(
        user="fo.dara", type="document", description="Handwritten note"
    )  # 4
    await forensics.move(a["id"], "fo.vanna", "fo.dara", kind="check_in")  # 5
    await forensics.move(c["id"], "fo.dara", "fo.vanna", kind="destroyed")  # 6
    rows = await forensics.rows("SELECT ledger_index, id FROM evidence_custody_events")
    return {int(index): event_id for index, event_id in rows}


def run_verify(forensics, *args: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = os.environ | {
        "FORENSICS_DATABASE_URL": forensics.database_url,
        "FORENSICS_LEDGER_SIGNING_KEY_FILE": str(forensics.settings.ledger_signing_key_file),
        "FORENSICS_LEDGER_ALLOW_DEV_KEY": "false",
    }
    return subprocess.run(
        [sys.executable, "-m", "cpu_platform.cli", "ledger", "verify", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def flip(token: str) -> str:
    """The same ciphertext with one character (one byte of the encoding) changed."""
    position = len(token) - 10
    replacement = "A" if token[position] != "A" else "B"
    return token[:position] + replacement + token[position + 1 :]


async def test_an_intact_ledger_verifies(forensics) -> None:
    await build_ledger(forensics)
    result = run_verify(forensics)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ledger intact: 7 entries, 7 signed tree heads verified" in result.stdout


Tamper = Callable[[Any, dict[int, str]], Awaitable[int]]


async def changed_user(forensics, ids: dict[int, str]) -> int:  # type: ignore[no-untyped-def]
    await forensics.execute_as_owner(
        "UPDATE evidence_custody_events SET to_user = 'fo.vannb' WHERE ledger_index = 2"
    )
    return 2


async def changed_encrypted_byte(forensics, ids: dict[int, str]) -> int:  # type: ignore[no-untyped-def]
    token = await forensics.scalar(
        "SELECT purpose_enc FROM evidence_custody_events WHERE ledger_index = 3"
    )
    await forensics.execute_as_owner(
        "UPDATE evidence_custody_events SET purpose_enc = :t WHERE ledger_index = 3", t=flip(token)
    )
    return 3


async def changed_time(forensics, ids: dict[int, str]) -> int:  # type: ignore[no-untyped-def]
    await forensics.execute_as_owner(
        "UPDATE evidence_custody_events SET at = at - interval '1 second' WHERE ledger_index = 5"
    )
    return 5


async def changed_item_description(forensics, ids: dict[int, str]) -> int:  # type: ignore[no-untyped-def]
    """What an item *is* is committed by its registration: its row is a custody record too."""
    await forensics.execute_as_owner(
        "UPDATE evidence_items SET description_enc = :t "
        "WHERE id = (SELECT item_id FROM evidence_custody_events WHERE ledger_index = 1)",
        t=flip(
            await forensics.scalar(
                "SELECT description_enc FROM evidence_items WHERE id = "
                "(SELECT item_id FROM evidence_custody_events WHERE ledger_index = 1)"
            )
        ),
    )
    return 1


async def deleted_row(forensics, ids: dict[int, str]) -> int:  # type: ignore[no-untyped-def]
    await forensics.execute_as_owner("DELETE FROM evidence_custody_events WHERE ledger_index = 3")
    return 3


async def swapped_rows(forensics, ids: dict[int, str]) -> int:  # type: ignore[no-untyped-def]
    await forensics.execute_as_owner(
        "UPDATE evidence_custody_events SET ledger_index = 1000000 WHERE ledger_index = 2",
        "UPDATE evidence_custody_events SET ledger_index = 2 WHERE ledger_index = 5",
        "UPDATE evidence_custody_events SET ledger_index = 5 WHERE ledger_index = 1000000",
    )
    return 2


async def swapped_contents(forensics, ids: dict[int, str]) -> int:  # type: ignore[no-untyped-def]
    """Two steps of two items trade their receivers."""
    await forensics.execute_as_owner(
        "UPDATE evidence_custody_events AS e SET to_user = o.to_user "
        "FROM evidence_custody_events AS o "
        "WHERE (e.ledger_index, o.ledger_index) IN ((2, 3), (3, 2))"
    )
    return 2


async def changed_leaf(forensics, ids: dict[int, str]) -> int:  # type: ignore[no-untyped-def]
    await forensics.execute_as_owner(
        "UPDATE custody_ledger_leaves SET leaf_hash = sha256(leaf_hash) WHERE ledger_index = 4"
    )
    return 4


@pytest.mark.parametrize(
    "tamper",
    [
        changed_user,
        changed_encrypted_byte,
        changed_time,
        changed_item_description,
        deleted_row,
        swapped_rows,
        swapped_contents,
        changed_leaf,
    ],
    ids=lambda f: f.__name__,
)
async def test_a_tampered_custody_row_is_named(forensics, tamper: Tamper) -> None:
    ids = await build_ledger(forensics)
    index = await tamper(forensics, ids)
    result = run_verify(forensics)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "ledger FAILED" in result.stdout, output
    assert f"FIRST BAD ENTRY: index {index} event_id {ids[index]}" in result.stdout, output

    api = await forensics.client.get(
        "/api/v1/ledger/verify", headers=forensics.token("auditor", user="aud.1")
    )
    report = api.json()
    assert report["ok"] is False
    assert (report["first_bad_index"], report["first_bad_event_id"]) == (index, ids[index])


async def test_an_item_row_rewritten_to_another_holder_is_reported(forensics) -> None:
    ids = await build_ledger(forensics)
    await forensics.execute_as_owner(
        "UPDATE evidence_items SET custodian = 'intruder' WHERE id = "
        "(SELECT item_id FROM evidence_custody_events WHERE ledger_index = :i)",
        i=5,
    )
    result = run_verify(forensics)
    assert result.returncode == 1, result.stdout
    assert "item_state_mismatch" in result.stdout
    assert f"entry 5 (event {ids[5]})" in result.stdout


async def test_erasing_the_newest_entries_is_caught_by_a_checkpoint_held_elsewhere(
    forensics, tmp_path: Path
) -> None:
    """An intruder deletes the last step with its leaf and head and rewinds the ledger state:
    nothing local contradicts it any more. A tree head published earlier (and kept by, say,
    the prosecutor's office from the event stream) does."""
    ids = await build_ledger(forensics)
    held = tmp_path / "held-checkpoint.txt"
    held.write_text(
        await forensics.scalar(
            "SELECT checkpoint FROM custody_ledger_tree_heads WHERE tree_size = 7"
        )
    )
    await forensics.execute_as_owner(
        "DELETE FROM evidence_custody_events WHERE ledger_index = 6",
        "DELETE FROM custody_ledger_leaves WHERE ledger_index = 6",
        "DELETE FROM custody_ledger_tree_heads WHERE tree_size = 7",
        "UPDATE evidence_items SET custodian = 'fo.dara', status = 'in_custody', "
        "last_sequence = 0 WHERE id = (SELECT item_id FROM evidence_custody_events "
        "WHERE ledger_index = 4)",
    )
    # The state row still says 7 entries: that alone gives it away...
    result = run_verify(forensics)
    assert result.returncode == 1, result.stdout
    assert "FIRST BAD ENTRY: index 6" in result.stdout, result.stdout
    # ... and with the state rewound too, the checkpoint held elsewhere still does.
    await rewind_state(forensics, 6)
    assert run_verify(forensics).returncode == 0  # what no local check can see
    result = run_verify(forensics, "--checkpoint", str(held))
    assert result.returncode == 1, result.stdout
    assert "entries_missing" in result.stdout
    assert "FIRST BAD ENTRY: index 6" in result.stdout
    assert ids[6] not in result.stdout  # its record is gone; only the index can be named


async def rewind_state(forensics, size: int) -> None:  # type: ignore[no-untyped-def]
    from cpu_forensics.domain.ledger import CompactTree

    hashes = [
        bytes(h)
        for (h,) in await forensics.rows(
            "SELECT leaf_hash FROM custody_ledger_leaves WHERE ledger_index < :n "
            "ORDER BY ledger_index",
            n=size,
        )
    ]
    nodes = b"".join(CompactTree.from_leaf_hashes(hashes).nodes)
    await forensics.execute_as_owner(
        "UPDATE custody_ledger_state SET tree_size = :n, nodes = :nodes", n=size, nodes=nodes
    )


async def test_the_command_refuses_to_run_without_a_verifier_key(forensics, tmp_path: Path) -> None:
    await build_ledger(forensics)
    env = os.environ | {
        "FORENSICS_DATABASE_URL": forensics.database_url,
        "FORENSICS_LEDGER_SIGNING_KEY_FILE": str(tmp_path / "absent.pem"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "cpu_platform.cli", "ledger", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert not (tmp_path / "absent.pem").exists()  # a verifier never makes itself a key
    vkey = forensics.fx.signer.verifier_key
    with_key = subprocess.run(
        [sys.executable, "-m", "cpu_platform.cli", "ledger", "verify", "--verifier-key", vkey],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert with_key.returncode == 0, with_key.stdout + with_key.stderr


async def test_the_signatures_option_trades_older_heads_for_speed(forensics) -> None:
    """``--signatures newest`` checks every head's root but verifies only the newest head's
    signature: a corrupted signature on an older (true) head then goes unseen, one on the
    newest head does not."""
    await build_ledger(forensics)
    assert run_verify(forensics, "--signatures", "newest").returncode == 0

    def corrupt(note: str) -> str:
        body, _, signature = note.rpartition(" ")
        return f"{body} {flip(signature.rstrip())}\n"

    older = await forensics.scalar(
        "SELECT checkpoint FROM custody_ledger_tree_heads WHERE tree_size = 3"
    )
    await forensics.execute_as_owner(
        "UPDATE custody_ledger_tree_heads SET checkpoint = :c WHERE tree_size = 3",
        c=corrupt(older),
    )
    full = run_verify(forensics)
    assert full.returncode == 1 and "tree_head_invalid" in full.stdout, full.stdout
    assert "[tree head of size 3]" in full.stdout
    assert run_verify(forensics, "--signatures", "newest").returncode == 0

    newest = await forensics.scalar(
        "SELECT checkpoint FROM custody_ledger_tree_heads WHERE tree_size = 7"
    )
    await forensics.execute_as_owner(
        "UPDATE custody_ledger_tree_heads SET checkpoint = :c WHERE tree_size = 7",
        c=corrupt(newest),
    )
    fast = run_verify(forensics, "--signatures", "newest")
    assert fast.returncode == 1 and "tree_head_invalid" in fast.stdout, fast.stdout
