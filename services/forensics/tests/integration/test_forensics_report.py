"""The chain-of-custody report: a real PDF holding the item, its hashes, every custody step with
its users, and each step's ledger inclusion proof with the signed checkpoint; the proof data
attached inside the PDF verifies."""

from __future__ import annotations

import base64
import io
import json

import pytest
from pypdf import PdfReader

from cpu_forensics.domain.ledger import leaf_hash, parse_and_verify_checkpoint, verify_inclusion

pytestmark = pytest.mark.integration

SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
MD5 = "0cc175b9c0f1b6a831c399e269772661"
SHA1 = "86f7e437faa5a7fce15d1ddcb9eaeaea377667b8"


async def test_the_report_is_a_pdf_a_prosecutor_can_file(forensics) -> None:
    item = await forensics.register(
        type="forensic_image",
        description="ទូរស័ព្ទរបស់ជនសង្ស័យ: full physical image of the Samsung A14",
        hashes={"sha256": SHA256, "md5": MD5, "sha1": SHA1},
        acquisition_tool="Cellebrite UFED 7.60",
    )
    await forensics.move(item["id"], "fo.dara", "lab.vanna", kind="sent_to_lab")
    await forensics.move(item["id"], "lab.vanna", "fo.dara", kind="returned")
    other = await forensics.register(user="fo.sokha")  # a later entry of another item
    assert other["registration"]["ledger_index"] == 3

    response = await forensics.client.get(
        f"/api/v1/evidence/{item['id']}/custody-report.pdf",
        headers=forensics.token("supervisor", user="sup.chan"),
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")

    reader = PdfReader(io.BytesIO(response.content))
    text = "\n".join(page.extract_text() for page in reader.pages)
    flat = "".join(text.split())
    custody = (
        await forensics.client.get(
            f"/api/v1/evidence/{item['id']}/custody", headers=forensics.officer("fo.dara")
        )
    ).json()
    for expected in (item["id"], SHA256, MD5, SHA1, "Cellebrite UFED 7.60", "SEAL-2025-000101"):
        assert expected.replace(" ", "") in flat, expected
    for user in ("fo.dara", "lab.vanna"):
        assert user in text
    for step in custody["events"]:
        assert step["event_id"] in flat
    assert "Chain of custody report" in text
    assert "ទូរស័ព្ទ" in text or "ទូរស័ព្" in text  # Khmer text is drawn (and extractable)
    assert "inclusion VERIFIED" in text and "NOT VERIFIED" not in text

    head = (
        await forensics.client.get(
            "/api/v1/ledger/tree-head", headers=forensics.token("auditor", user="aud.1")
        )
    ).json()
    assert head["tree_size"] == 4
    assert head["root_hash"] in flat

    # The attached proof verifies on its own.
    attached = reader.attachments["custody-proof.json"][0]
    proof = json.loads(attached)
    vkey = forensics.fx.signer.verifier_key
    assert proof["verifier_key"] == vkey
    _origin, size, root = parse_and_verify_checkpoint(proof["checkpoint"], vkey)
    assert (size, base64.b64encode(root).decode()) == (4, proof["root_hash"])
    assert [s["index"] for s in proof["steps"]] == [0, 1, 2]
    for step in proof["steps"]:
        leaf = base64.b64decode(step["leaf"])
        assert json.loads(leaf)["item_id"] == item["id"]
        path = [base64.b64decode(p) for p in step["path"]]
        assert verify_inclusion(leaf_hash(leaf), step["index"], size, path, root)

    audited = await forensics.rows(
        "SELECT user_id FROM audit_log WHERE action = 'custody.report' AND record_id = :id",
        id=item["id"],
    )
    assert [r[0] for r in audited] == ["sup.chan"]


async def test_the_report_of_an_item_one_may_not_see_is_404(forensics) -> None:
    item = await forensics.register()
    response = await forensics.client.get(
        f"/api/v1/evidence/{item['id']}/custody-report.pdf",
        headers=forensics.token("investigator", user="inv.other", teams=["OVCS"]),
    )
    assert response.status_code == 404
