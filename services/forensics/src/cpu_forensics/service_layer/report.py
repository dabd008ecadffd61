"""The chain-of-custody report of one item: a PDF a prosecutor can file.

It holds the item (what it is, its seal, its hashes), every custody step with the people on
both sides, the lab analyses, and for every step its ledger inclusion proof against the
latest signed tree head: ledger index, leaf hash, tree size, root hash, audit path and the
signed checkpoint verbatim, with the verifier key. Before printing, the service checks each
proof and the checkpoint signature itself and says so; a step whose record no longer matches
the ledger is printed with a warning instead of a proof that would not verify.

The same data travels inside the PDF as an attached JSON file (``custody-proof.json``: leaves
in base64, paths, checkpoint, verifier key), so an expert can check it with any RFC 9162
verifier without retyping a hash.

Drawn with fpdf2; Khmer is shaped by HarfBuzz (``set_text_shaping``) in the Khmer OS font,
Latin in DejaVu Sans (Debian's ``fonts-khmeros`` and ``fonts-dejavu-core``). Without those
fonts the report falls back to the PDF core font, and any text it cannot draw is shown as
``?`` with a note saying so on the first page.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import segno
from fpdf import FPDF
from fpdf.enums import WrapMode
from fpdf.fonts import FontFace

from cpu_forensics.domain.analysis import LabAnalysis
from cpu_forensics.domain.custody import CustodyEvent, CustodyTransfer
from cpu_forensics.domain.evidence import EvidenceItem
from cpu_forensics.domain.ledger import (
    NoteInvalid,
    leaf_bytes,
    leaf_hash,
    parse_and_verify_checkpoint,
    verify_inclusion,
)

CAMBODIA = ZoneInfo("Asia/Phnom_Penh")
# fontTools logs every table it subsets at INFO: noise in the service's JSON log.
logging.getLogger("fontTools").setLevel(logging.WARNING)
KIND_LABELS = {
    "registered": "Registered (first custodian)",
    "check_in": "Checked in to store",
    "transfer": "Transferred",
    "sent_to_lab": "Sent to laboratory",
    "returned": "Returned",
    "court_exhibit": "Court exhibit",
    "released": "Released / returned to owner",
    "destroyed": "Destroyed",
}


@dataclass(frozen=True)
class StepProof:
    event: CustodyEvent
    ledger_index: int
    leaf: bytes
    leaf_hash: bytes
    path: list[bytes]
    matches_ledger: bool  # the record's leaf hashes to the ledger's leaf at its index
    verified: bool  # ... and the path leads from it to the signed root


@dataclass(frozen=True)
class ReportData:
    item: EvidenceItem
    steps: list[StepProof]
    transfers: list[CustodyTransfer]
    analyses: list[LabAnalysis]
    tree_size: int
    root_hash: bytes
    checkpoint: str
    checkpoint_verified: bool
    verifier_key: str
    generated_by: str
    generated_at: datetime


def prove_steps(
    events: Sequence[tuple[CustodyEvent, int]],
    ledger_leaf_hash: Any,
    inclusion_proof: Any,
    tree_size: int,
    root: bytes,
) -> list[StepProof]:
    """Each step's leaf (recomputed from its record) and its inclusion proof, checked."""
    steps = []
    for event, index in events:
        leaf = leaf_bytes(event)
        hashed = leaf_hash(leaf)
        if index < tree_size:
            path = inclusion_proof(index, tree_size)
            matches = hashed == ledger_leaf_hash(index)
            verified = matches and verify_inclusion(hashed, index, tree_size, path, root)
        else:  # appended after the head the report is built on
            path, matches, verified = [], False, False
        steps.append(StepProof(event, index, leaf, hashed, path, matches, verified))
    return steps


def checkpoint_ok(
    checkpoint: str, verifier_key: str, origin: str, tree_size: int, root: bytes
) -> bool:
    try:
        head = parse_and_verify_checkpoint(checkpoint, verifier_key, origin=origin)
    except NoteInvalid:
        return False
    return head.tree_size == tree_size and head.root_hash == root


# --- drawing --------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    local = moment.astimezone(CAMBODIA)
    return f"{moment.strftime('%Y-%m-%d %H:%M:%S')} UTC ({local.strftime('%H:%M')} ICT)"


def _find_font(dirs: Sequence[Path], *names: str) -> Path | None:
    for directory in dirs:
        for name in names:
            for candidate in (directory / name, *directory.glob(f"*/{name}")):
                if candidate.is_file():
                    return candidate
    return None


class _Report(FPDF):
    def __init__(self, data: ReportData, font_dirs: Sequence[Path]) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.data = data
        self.set_margins(15, 15, 15)
        self.set_auto_page_break(True, margin=18)
        self.unicode = self._fonts(font_dirs)
        self.set_title(f"Chain of custody - evidence item {data.item.id}")
        self.set_author("CPU forensics service")
        self.set_creator("cpu-forensics")

    def _fonts(self, dirs: Sequence[Path]) -> bool:
        regular = _find_font(dirs, "DejaVuSans.ttf")
        bold = _find_font(dirs, "DejaVuSans-Bold.ttf")
        mono = _find_font(dirs, "DejaVuSansMono.ttf")
        khmer = _find_font(dirs, "KhmerOS.ttf", "KhmerOSsys.ttf", "KhmerOScontent.ttf")
        if regular is None and khmer is None:
            return False
        base = regular or khmer
        self.add_font("body", "", str(base))
        self.add_font("body", "B", str(bold or base))
        self.add_font("mono", "", str(mono or base))
        if khmer is not None:
            self.add_font("khmer", "", str(khmer))
            self.add_font("khmer", "B", str(khmer))
            self.set_fallback_fonts(["khmer"], exact_match=False)
        self.set_text_shaping(True)
        return True

    def font_(self, style: str = "", size: float = 9.5, mono: bool = False) -> None:
        if self.unicode:
            self.set_font("mono" if mono else "body", "" if mono else style, size)
        else:
            self.set_font("Courier" if mono else "Helvetica", "" if mono else style, size)

    def text_(self, value: str) -> str:
        if self.unicode:
            return value
        return value.encode("latin-1", "replace").decode("latin-1")

    def header(self) -> None:
        self.font_("B", 8)
        self.set_text_color(90, 90, 90)
        self.cell(0, 5, self.text_(f"Chain of custody - item {self.data.item.id}"), align="L")
        self.ln(6)
        self.set_text_color(0, 0, 0)

    def footer(self) -> None:
        self.set_y(-13)
        self.font_("", 7.5)
        self.set_text_color(90, 90, 90)
        self.cell(
            0,
            5,
            self.text_(
                f"Ledger size {self.data.tree_size} - generated {_when(self.data.generated_at)} "
                f"by {self.data.generated_by} - page {self.page_no()}/{{nb}}"
            ),
            align="C",
        )
        self.set_text_color(0, 0, 0)

    def heading(self, text: str) -> None:
        self.ln(2)
        self.font_("B", 12)
        self.multi_cell(0, 7, self.text_(text), new_x="LMARGIN", new_y="NEXT")
        self.font_()

    def para(self, text: str, *, size: float = 9.5, mono: bool = False) -> None:
        self.font_("", size, mono=mono)
        self.multi_cell(
            0,
            size * 0.48,
            self.text_(text),
            align="L",
            new_x="LMARGIN",
            new_y="NEXT",
            wrapmode=WrapMode.CHAR if mono else WrapMode.WORD,
        )
        self.font_()

    def pairs(self, rows: Sequence[tuple[str, str]]) -> None:
        self.font_("", 9)
        with self.table(
            col_widths=(45, 135),
            text_align=("LEFT", "LEFT"),
            first_row_as_headings=False,
            line_height=4.8,
            borders_layout="HORIZONTAL_LINES",
        ) as table:
            for label, value in rows:
                row = table.row()
                row.cell(self.text_(label), style=FontFace(emphasis="BOLD"))
                row.cell(self.text_(value))
        self.font_()


def render(data: ReportData, font_dirs: Sequence[Path]) -> bytes:
    """The PDF bytes of the report."""
    item = data.item
    pdf = _Report(data, font_dirs)
    pdf.alias_nb_pages()
    pdf.add_page()

    pdf.font_("B", 16)
    pdf.multi_cell(0, 9, pdf.text_("Chain of custody report"), new_x="LMARGIN", new_y="NEXT")
    pdf.font_("", 12)
    pdf.multi_cell(
        0, 7, pdf.text_("របាយការណ៍ខ្សែសង្វាក់នៃការថែរក្សាភស្តុតាង"), new_x="LMARGIN", new_y="NEXT"
    )
    if not pdf.unicode:
        pdf.para(
            "Note: the Unicode fonts were not found on the server; characters outside Latin-1 "
            "are shown as '?'. Install fonts-dejavu-core and fonts-khmeros and reprint."
        )
    qr = segno.make(item.id, error="m")
    svg = io.BytesIO()
    qr.save(svg, kind="svg", scale=4, border=1, omitsize=True)
    svg.seek(0)
    y = pdf.get_y()
    pdf.image(svg, x=165, y=y, w=30, h=30)
    pdf.para(
        f"Evidence item {item.id}\nCase {item.case_id}\n"
        f"Generated {_when(data.generated_at)} by {data.generated_by}.\n"
        f"Custody steps: {len(data.steps)}. Current custodian: {item.custodian} "
        f"({item.status.value.replace('_', ' ')})."
    )
    pdf.set_y(max(pdf.get_y(), y + 32))

    pdf.heading("1. The item")
    hashes = item.hashes
    rows = [
        ("Type", item.type.value.replace("_", " ")),
        ("Description", item.description),
        ("Collected by", item.collected_by),
        ("Collected at", _when(item.collected_at)),
        ("Collected at (place)", item.collected_location),
        ("Seal number", f"{item.seal_number} ({item.seal_condition.value})"),
        ("Storage location", item.storage_location),
        ("Registered by", f"{item.registered_by}, {_when(item.registered_at)}"),
        ("Derived from item", item.parent_id or "-"),
    ]
    if hashes is not None:
        rows += [
            ("SHA-256", hashes.sha256),
            ("MD5", hashes.md5 or "-"),
            ("SHA-1", hashes.sha1 or "-"),
            ("Acquisition tool", item.acquisition_tool or "-"),
        ]
    pdf.pairs(rows)

    pdf.heading("2. Chain of custody")
    pdf.para(
        "Every step took effect when the receiver accepted it (two-person handover). Times are "
        "when custody changed; 'requested' is when the giver declared the handover."
    )
    pdf.font_("", 8)
    with pdf.table(
        col_widths=(8, 30, 34, 34, 32, 42),
        text_align="LEFT",
        line_height=4.2,
        headings_style=FontFace(emphasis="BOLD", fill_color=(230, 234, 240)),
    ) as table:
        head = table.row()
        for label in ("#", "Step", "From", "To", "When", "Where / purpose / seal"):
            head.cell(label)
        for step in data.steps:
            e = step.event
            notes = [
                f"{e.location}",
                f"Purpose: {e.purpose}",
                f"Seal {e.seal_number} ({e.seal_condition.value})",
            ]
            if e.seal_change_reason:
                notes.append(f"Seal change: {e.seal_change_reason}")
            if e.receipt_note:
                notes.append(f"Receipt note: {e.receipt_note}")
            notes.append(f"Ledger index {step.ledger_index}")
            when = _when(e.at)
            if e.requested_at is not None and abs((e.at - e.requested_at).total_seconds()) >= 1:
                when += f"\nrequested {_when(e.requested_at)}"
            row = table.row()
            row.cell(str(e.sequence))
            row.cell(pdf.text_(KIND_LABELS.get(e.kind.value, e.kind.value)))
            row.cell(pdf.text_(e.from_user))
            row.cell(pdf.text_(e.to_user))
            row.cell(pdf.text_(when))
            row.cell(pdf.text_("\n".join(notes)))
    pdf.font_()

    open_or_closed = [t for t in data.transfers if t.status.value != "accepted"]
    if open_or_closed:
        pdf.heading("Handovers not (or not yet) accepted")
        for t in open_or_closed:
            pdf.para(
                f"{t.kind.value} from {t.from_user} to {t.to_user}, requested {_when(t.at)}: "
                f"{t.status.value}"
                + (f" by {t.closed_by} {_when(t.closed_at)}" if t.closed_by else "")
                + (f" - {t.close_reason}" if t.close_reason else "")
            )

    if data.analyses:
        pdf.heading("3. Laboratory analyses")
        for a in data.analyses:
            line = (
                f"{a.type.value.replace('_', ' ')}: {a.status.value.replace('_', ' ')}; "
                f"requested by {a.requested_by} {_when(a.requested_at)}"
            )
            if a.analyst:
                line += f"; analyst {a.analyst}"
            if a.result is not None:
                line += f"; result {a.result.result_code} ({a.result.method})"
            if a.signed_off_by:
                line += f"; signed off by {a.signed_off_by} {_when(a.signed_off_at)}"
            pdf.para(line)

    pdf.add_page()
    pdf.heading("4. Ledger proof")
    pdf.para(
        "Each custody step is one leaf of the unit's append-only custody ledger, an RFC 9162 "
        "Merkle tree with SHA-256: leaf hash = SHA-256(0x00 || leaf), node = SHA-256(0x01 || "
        "left || right); the leaf is the RFC 8785 canonical JSON of the step. The inclusion "
        "proof of a step leads from its leaf hash to the root of the signed tree head below. "
        "The tree head is a C2SP signed checkpoint (Ed25519) verifiable with the verifier key. "
        "The full data is attached to this PDF as custody-proof.json."
    )
    status = "VERIFIED" if data.checkpoint_verified else "NOT VERIFIED"
    pdf.pairs(
        [
            ("Tree size", str(data.tree_size)),
            ("Root hash (base64)", _b64(data.root_hash)),
            ("Checkpoint signature", status + " by the service when this report was made"),
            ("Verifier key", data.verifier_key),
        ]
    )
    pdf.ln(1)
    pdf.font_("B", 9)
    pdf.cell(0, 5, pdf.text_("Signed checkpoint:"), new_x="LMARGIN", new_y="NEXT")
    pdf.para(data.checkpoint.rstrip("\n"), size=6, mono=True)
    pdf.para("(A long line may wrap here; custody-proof.json holds the exact text.)", size=7)
    for step in data.steps:
        e = step.event
        pdf.ln(1)
        pdf.font_("B", 9)
        verdict = (
            "inclusion VERIFIED"
            if step.verified
            else (
                "WARNING: the stored record no longer matches the ledger"
                if not step.matches_ledger
                else "inclusion NOT VERIFIED"
            )
        )
        pdf.multi_cell(
            0,
            5,
            pdf.text_(f"Step {e.sequence} - ledger index {step.ledger_index} - {verdict}"),
            new_x="LMARGIN",
            new_y="NEXT",
        )
        lines = [
            f"event id  {e.event_id}",
            f"leaf hash {_b64(step.leaf_hash)}",
            f"path ({len(step.path)} nodes, leaf side first):",
            *[f"  {_b64(node)}" for node in step.path],
        ]
        pdf.para("\n".join(lines), size=7.5, mono=True)

    proof = {
        "item_id": item.id,
        "tree_size": data.tree_size,
        "root_hash": _b64(data.root_hash),
        "checkpoint": data.checkpoint,
        "verifier_key": data.verifier_key,
        "steps": [
            {
                "index": s.ledger_index,
                "event_id": s.event.event_id,
                "leaf": _b64(s.leaf),
                "leaf_hash": _b64(s.leaf_hash),
                "path": [_b64(n) for n in s.path],
            }
            for s in data.steps
        ],
    }
    pdf.embed_file(
        basename="custody-proof.json",
        bytes=json.dumps(proof, ensure_ascii=False, indent=2).encode("utf-8"),
        desc="Leaves, inclusion proofs and the signed checkpoint of this report",
        compress=True,
    )
    return bytes(pdf.output())
