"""The custody ledger: an append-only Merkle tree of custody events, with signed tree heads.

Everything here follows CONTRACT.md section 7, so that a verifier who has only that section and
the service's responses can check the log without this code.

Leaves
------
A leaf is the RFC 8785 (JCS) canonical JSON, UTF-8, of the *leaf document* of one
:class:`~cpu_forensics.domain.custody.CustodyEvent` (:func:`leaf_document`)::

    {"format": "cpu-custody-event/v1",
     "event_id", "item_id", "case_id": str, "sequence": int (0 = registration),
     "kind": "registered" | "check_in" | "transfer" | "sent_to_lab" | "returned"
             | "court_exhibit" | "released" | "destroyed",
     "from_user", "to_user", "purpose", "location": str,
     "at": RFC 3339, "requested_at": RFC 3339 | null, "recorded_at": RFC 3339,
     "transfer_id": str | null,
     "seal_number": str, "seal_condition": "intact" | "damaged" | "broken" | "missing",
     "seal_change_reason": str | null, "receipt_note": str | null,
     "evidence": null | {"type", "description", "collected_by", "collected_at" (RFC 3339),
                         "collected_location", "parent_id", "sha256", "md5", "sha1",
                         "acquisition_tool"}}

* Every key is always present (null when it does not apply): one shape, no optional keys for a
  verifier to guess about. ``format`` names the shape, so a later version cannot be mistaken
  for this one.
* Instants are RFC 3339 in UTC with exactly six fractional digits and ``Z``
  (``2025-03-01T08:30:00.000000Z``): one spelling per instant, whatever the store returns.
* ``evidence`` is set on the ``registered`` event only: the ledger commits to what the item is
  (its hashes above all), not only to where it went.
* The leaf holds no ledger index: the tree already fixes each leaf's position, and the store's
  index column is checked separately (``indices`` in :func:`verify_log`).
* Leaves are append-only and never erased, and ``evidence.description`` and the locations are
  free text: the ledger routes are for forensic officers, supervisors and auditors only
  (CONTRACT.md section 7), and nothing of a leaf goes into events; signed heads carry only
  sizes and hashes.
* JCS is done by the ``rfc8785`` package. It is pure Python and costs 50 to 90 us a leaf, so
  re-encoding a million stored records takes one to two minutes. :func:`leaf_matches_event`
  is the faster equivalent for verification (about a third of that): the leaf bytes are
  committed by the tree, so parsing them and comparing, type for type, with the document
  rebuilt from the record detects the same edits as re-encoding (the committed bytes were
  canonical when appended). ``verify_log(..., records=...)`` does exactly that.

Tree
----
RFC 9162 section 2.1 with SHA-256: leaf hash ``SHA-256(0x00 || leaf)``, node
``SHA-256(0x01 || left || right)``, the empty tree's hash ``SHA-256("")``, and the split at the
largest power of two smaller than the size (2.1.1), never the midpoint.

* :class:`MerkleTree` keeps, for each level, the hashes of the complete subtrees (each level
  built from the one below in one comprehension, the cheapest loop CPython offers). Any
  subtree hash the RFC recursion needs is then a lookup (complete, aligned subtrees) or a
  fold of O(log n) of them, so a root at any size, an inclusion proof (2.1.3.1) and a
  consistency proof (2.1.4.1) cost O(log n) after an O(n) build.
* :func:`verify_inclusion` and :func:`verify_consistency` are the algorithms of RFC 9162
  2.1.3.2 and 2.1.4.2, step by step. Where the RFC is silent: a consistency proof from size 0
  or between equal sizes must be empty, and the roots must be the empty tree's hash
  (size 0) or equal (equal sizes).
* :class:`CompactTree` is the incremental form: the size and the roots of the perfect subtrees
  the size decomposes into (one per set bit). Appending merges at most log2(n) of them
  (amortised one), and the root folds them right to left. Its state is small enough to store
  with every signed head, so appending never reads old leaves.

Signed tree heads
-----------------
C2SP signed notes in checkpoint form (c2sp.org/signed-note, c2sp.org/tlog-checkpoint):
``<origin>\\n<size>\\n<base64 root>\\n`` then a blank line and ``— <key name>
<base64(key id || Ed25519 signature)>\\n``; key id = ``SHA-256(name || 0x0A || 0x01 ||
public key)[:4]``; verifier key ``<name>+<8 hex key id>+<base64(0x01 || public key)>``.
The key name defaults to the origin, as the spec recommends. Parsing is strict: base64 must be
canonical (one spelling per value), extension lines are refused (this log writes none, and an
unaudited line is a place to hide something), signatures from other keys are ignored as the
spec requires, but a signature that claims the expected key and fails rejects the whole note.

Verification
------------
:func:`verify_log` recomputes every leaf hash, the tree, and every signed head's root at its
size, and names the first bad entry. See its docstring for what each input lets it detect.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cpu_forensics.domain.custody import CustodyEvent
from cpu_forensics.domain.values import rfc3339

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()
LEAF_FORMAT = "cpu-custody-event/v1"

_sha256 = hashlib.sha256


# --- leaves -------------------------------------------------------------------------------


def leaf_document(event: CustodyEvent) -> dict[str, Any]:
    """The JSON document whose JCS bytes are ``event``'s leaf (the shape in the module doc)."""
    evidence = event.evidence
    evidence_doc: dict[str, Any] | None = None
    if evidence is not None:
        hashes = evidence.hashes
        evidence_doc = {
            "type": evidence.type.value,
            "description": evidence.description,
            "collected_by": evidence.collected_by,
            "collected_at": rfc3339(evidence.collected_at),
            "collected_location": evidence.collected_location,
            "parent_id": evidence.parent_id,
            "sha256": hashes.sha256 if hashes is not None else None,
            "md5": hashes.md5 if hashes is not None else None,
            "sha1": hashes.sha1 if hashes is not None else None,
            "acquisition_tool": evidence.acquisition_tool,
        }
    return {
        "format": LEAF_FORMAT,
        "event_id": event.event_id,
        "item_id": event.item_id,
        "case_id": event.case_id,
        "sequence": event.sequence,
        "kind": event.kind.value,
        "from_user": event.from_user,
        "to_user": event.to_user,
        "purpose": event.purpose,
        "location": event.location,
        "at": rfc3339(event.at),
        "requested_at": rfc3339(event.requested_at) if event.requested_at is not None else None,
        "recorded_at": rfc3339(event.recorded_at),
        "transfer_id": event.transfer_id,
        "seal_number": event.seal_number,
        "seal_condition": event.seal_condition.value,
        "seal_change_reason": event.seal_change_reason,
        "receipt_note": event.receipt_note,
        "evidence": evidence_doc,
    }


def leaf_bytes(event: CustodyEvent) -> bytes:
    """The leaf of ``event``: RFC 8785 canonical JSON of its leaf document."""
    return rfc8785.dumps(leaf_document(event))


def leaf_matches_event(leaf: bytes, event: CustodyEvent) -> bool:
    """Whether committed ``leaf`` bytes say exactly what ``event`` (rebuilt from a record) says.

    Equivalent to ``leaf == leaf_bytes(event)`` for leaves this log appended, two to three
    times faster: parse, then compare value for value and type for type (``1`` is not
    ``true``).
    """
    try:
        parsed = json.loads(leaf)
    except (ValueError, UnicodeDecodeError):
        return False
    document = leaf_document(event)
    return bool(parsed == document) and _same_types(parsed, document)


def _same_types(a: Any, b: Any) -> bool:
    # After ==, only the types can still differ (1 == 1.0 == True in Python, not in JSON).
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return all(_same_types(value, b[key]) for key, value in a.items())
    if type(a) is list:
        return all(_same_types(x, y) for x, y in zip(a, b, strict=True))
    return True


def _event_id_of(leaf: bytes) -> str | None:
    try:
        value = json.loads(leaf).get("event_id")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None
    return value if isinstance(value, str) else None


# --- hashing ------------------------------------------------------------------------------


def leaf_hash(leaf: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 || leaf)."""
    return _sha256(LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: SHA-256(0x01 || left || right)."""
    return _sha256(NODE_PREFIX + left + right).digest()


def leaf_hashes(leaves: Iterable[bytes]) -> list[bytes]:
    """The leaf hash of every leaf, in order (one tight loop: this is the hot path)."""
    sha, prefix = _sha256, LEAF_PREFIX
    return [sha(prefix + leaf).digest() for leaf in leaves]


def _next_level(level: list[bytes]) -> list[bytes]:
    # Pairs (0,1), (2,3), ...; an odd last node has no complete parent yet and is dropped
    # (zip of one iterator with itself stops there, hence strict=False).
    sha, prefix = _sha256, NODE_PREFIX
    pairs = iter(level)
    return [sha(prefix + a + b).digest() for a, b in zip(pairs, pairs, strict=False)]


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """An RFC 9162 tree over a list of leaf hashes: roots and proofs at any size up to it."""

    __slots__ = ("_levels",)

    def __init__(self, hashes: Sequence[bytes], *, checked: bool = True) -> None:
        level = list(hashes)
        if checked and not all(isinstance(h, bytes) and len(h) == HASH_SIZE for h in level):
            raise ValueError("every leaf hash must be 32 bytes")
        levels = [level]
        while len(level) > 1:
            level = _next_level(level)
            levels.append(level)
        self._levels = levels

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def extend(self, hashes: Sequence[bytes]) -> None:
        """Append leaf hashes, computing only the new complete subtrees (amortised O(1) each),
        so a long-lived tree serving proofs follows the log without being rebuilt."""
        new = list(hashes)
        if not all(isinstance(h, bytes) and len(h) == HASH_SIZE for h in new):
            raise ValueError("every leaf hash must be 32 bytes")
        levels = self._levels
        levels[0].extend(new)
        height = 0
        while len(levels[height]) > 1:
            if height + 1 == len(levels):
                levels.append([])
            below, above = levels[height], levels[height + 1]
            above.extend(_next_level(below[2 * len(above) :]))
            height += 1

    def leaf_hash(self, index: int) -> bytes:
        return self._levels[0][index]

    def _check_size(self, size: int) -> int:
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} is outside 0..{self.size}")
        return size

    def _mth(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) per RFC 9162 2.1.1."""
        n = hi - lo
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and lo % n == 0:
            height = n.bit_length() - 1
            return self._levels[height][lo >> height]
        k = _largest_power_of_two_below(n)
        return node_hash(self._mth(lo, lo + k), self._mth(lo + k, hi))

    def root(self, size: int | None = None) -> bytes:
        """The Merkle Tree Hash of the first ``size`` leaves (all of them by default)."""
        size = self.size if size is None else self._check_size(size)
        return self._mth(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]) of RFC 9162 2.1.3.1, leaf side first."""
        size = self.size if size is None else self._check_size(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf index {index} is outside 0..{size - 1}")
        path: list[bytes] = []
        lo, hi, m = 0, size, index
        # The RFC's recursion, unrolled: walk down from the root, collecting siblings.
        while hi - lo > 1:
            k = _largest_power_of_two_below(hi - lo)
            if m < k:
                path.append(self._mth(lo + k, hi))
                hi = lo + k
            else:
                path.append(self._mth(lo, lo + k))
                lo, m = lo + k, m - k
        path.reverse()
        return path

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        """PROOF(first, D[0:second]) of RFC 9162 2.1.4.1; empty when first is 0 or second."""
        second = self.size if second is None else self._check_size(second)
        if not 0 <= first <= second:
            raise ValueError(f"first size {first} is outside 0..{second}")
        if first in (0, second):
            return []
        path: list[bytes] = []
        lo, hi, m, complete = 0, second, first, True
        # SUBPROOF(m, D[lo:hi], complete), unrolled the same way.
        while m != hi - lo:
            k = _largest_power_of_two_below(hi - lo)
            if m <= k:
                path.append(self._mth(lo + k, hi))
                hi = lo + k
            else:
                path.append(self._mth(lo, lo + k))
                lo, m, complete = lo + k, m - k, False
        if not complete:
            path.append(self._mth(lo, hi))
        path.reverse()
        return path


def merkle_root(hashes: Sequence[bytes]) -> bytes:
    """MTH over ``hashes`` (RFC 9162 2.1.1); SHA-256 of the empty string for none."""
    return MerkleTree(hashes).root()


def inclusion_proof(hashes: Sequence[bytes], index: int, tree_size: int) -> list[bytes]:
    """The inclusion proof of leaf ``index`` in the tree of the first ``tree_size`` hashes."""
    return MerkleTree(hashes[:tree_size]).inclusion_proof(index, tree_size)


def consistency_proof(hashes: Sequence[bytes], first: int, second: int) -> list[bytes]:
    """The consistency proof between the trees of the first ``first`` and ``second`` hashes."""
    return MerkleTree(hashes[:second]).consistency_proof(first, second)


def _all_hashes(*values: bytes) -> bool:
    return all(isinstance(v, bytes) and len(v) == HASH_SIZE for v in values)


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, path: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 2.1.3.2: does ``path`` prove ``leaf_hash`` at ``index`` under ``root``?"""
    if not _all_hashes(leaf_hash, root, *path):
        return False
    if not 0 <= index < tree_size:
        return False
    fn, sn = index, tree_size - 1
    r = leaf_hash
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, path: Sequence[bytes]
) -> bool:
    """RFC 9162 2.1.4.2: does ``path`` prove the tree at ``first`` is a prefix of ``second``?"""
    if not _all_hashes(first_root, second_root, *path):
        return False
    if not 0 <= first <= second:
        return False
    if first == second:
        return not path and first_root == second_root
    if first == 0:
        return not path and first_root == EMPTY_ROOT
    if not path:
        return False
    nodes = list(path)
    if first & (first - 1) == 0:
        nodes.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = nodes[0]
    for c in nodes[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0


class CompactTree:
    """The incremental tree: its size and the roots of its perfect subtrees, largest first.

    ``CompactTree(size, nodes)`` restores a stored state (``nodes`` must hold one hash per set
    bit of ``size``); :meth:`append` is O(log n) worst case and O(1) amortised.
    """

    __slots__ = ("_nodes", "_size")

    def __init__(self, size: int = 0, nodes: Sequence[bytes] = ()) -> None:
        if size < 0:
            raise ValueError("size must not be negative")
        if len(nodes) != size.bit_count() or not _all_hashes(*nodes):
            raise ValueError(f"a tree of size {size} has {size.bit_count()} 32-byte nodes")
        self._size = size
        self._nodes = list(nodes)

    @classmethod
    def from_leaf_hashes(cls, hashes: Sequence[bytes]) -> CompactTree:
        tree = MerkleTree(hashes)
        nodes, lo = [], 0
        for height in reversed(range(len(hashes).bit_length())):
            if len(hashes) >> height & 1:
                nodes.append(tree._mth(lo, lo + (1 << height)))
                lo += 1 << height
        return cls(len(hashes), nodes)

    @property
    def size(self) -> int:
        return self._size

    @property
    def nodes(self) -> tuple[bytes, ...]:
        return tuple(self._nodes)

    def append(self, leaf: bytes) -> int:
        """Add a leaf; returns its index."""
        return self.append_hash(_sha256(LEAF_PREFIX + leaf).digest())

    def append_hash(self, hash_: bytes) -> int:
        """Add a leaf by its leaf hash; returns its index."""
        index = n = self._size
        nodes = self._nodes
        while n & 1:
            hash_ = _sha256(NODE_PREFIX + nodes.pop() + hash_).digest()
            n >>= 1
        nodes.append(hash_)
        self._size = index + 1
        return index

    def root(self) -> bytes:
        nodes = self._nodes
        if not nodes:
            return EMPTY_ROOT
        root = nodes[-1]
        for left in reversed(nodes[:-1]):
            root = node_hash(left, root)
        return root


# --- signed notes and checkpoints ---------------------------------------------------------


class NoteInvalid(ValueError):
    """A signed note or checkpoint that is malformed or not signed by the expected key."""


ED25519_SIGNATURE_TYPE = b"\x01"
_SIG_PREFIX = "\u2014 "  # em dash, space
_MAX_SIGNATURE_LINES = 100
_MAX_NOTE_CHARS = 1 << 16
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
_HEX8 = re.compile(r"[0-9a-f]{8}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise NoteInvalid(f"{what} is not base64") from None
    if _b64(raw) != value:
        raise NoteInvalid(f"{what} is not canonical base64")
    return raw


def _check_key_name(name: str) -> str:
    if not name or "+" in name or any(ch.isspace() or ord(ch) < 0x20 for ch in name):
        raise NoteInvalid("a key name must be non-empty, without spaces or '+'")
    return name


def _public_bytes(public_key: Ed25519PublicKey | bytes) -> bytes:
    if isinstance(public_key, Ed25519PublicKey):
        return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    if isinstance(public_key, bytes) and len(public_key) == 32:
        return public_key
    raise ValueError("an Ed25519 public key is 32 bytes")


def key_id(name: str, public_key: Ed25519PublicKey | bytes) -> bytes:
    """The signed-note key id: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    raw = _public_bytes(public_key)
    return _sha256(name.encode() + b"\n" + ED25519_SIGNATURE_TYPE + raw).digest()[:4]


def verifier_key(name: str, public_key: Ed25519PublicKey | bytes) -> str:
    """``<name>+<8 hex key id>+<base64(0x01 || public key)>``."""
    _check_key_name(name)
    raw = _public_bytes(public_key)
    return f"{name}+{key_id(name, raw).hex()}+{_b64(ED25519_SIGNATURE_TYPE + raw)}"


@dataclass(frozen=True, slots=True)
class NoteVerifier:
    name: str
    key_id: bytes
    public_key: Ed25519PublicKey


def parse_verifier_key(vkey: str) -> NoteVerifier:
    """Parse and check a verifier key (its key id must match its name and key)."""
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise NoteInvalid("a verifier key is <name>+<key id>+<key>")
    name, hex_id, encoded = parts
    _check_key_name(name)
    if not _HEX8.fullmatch(hex_id):
        raise NoteInvalid("the key id is 8 lower-case hex digits")
    raw = _unb64(encoded, "verifier key")
    if len(raw) != 33 or raw[:1] != ED25519_SIGNATURE_TYPE:
        raise NoteInvalid("only Ed25519 verifier keys (0x01 and 32 bytes) are accepted")
    if key_id(name, raw[1:]).hex() != hex_id:
        raise NoteInvalid("the key id does not match the key")
    return NoteVerifier(name, bytes.fromhex(hex_id), Ed25519PublicKey.from_public_bytes(raw[1:]))


def _check_note_chars(note: str) -> None:
    if len(note) > _MAX_NOTE_CHARS:
        raise NoteInvalid("note too long")
    for ch in note:
        if ord(ch) < 0x20 and ch != "\n":
            raise NoteInvalid("a note has no control characters but newline")
        if 0xD800 <= ord(ch) <= 0xDFFF:
            raise NoteInvalid("a note is valid UTF-8")


def sign_note(private_key: Ed25519PrivateKey, key_name: str, text: str) -> str:
    """``text`` (ending in a newline) as a signed note with one Ed25519 signature."""
    _check_key_name(key_name)
    if not text.endswith("\n"):
        raise NoteInvalid("note text must end in a newline")
    _check_note_chars(text)
    signature = private_key.sign(text.encode("utf-8"))
    kid = key_id(key_name, private_key.public_key())
    return f"{text}\n{_SIG_PREFIX}{key_name} {_b64(kid + signature)}\n"


def open_note(note: str | bytes, verifier_key: str) -> str:
    """The text of ``note`` once a signature by ``verifier_key`` verifies; else NoteInvalid.

    Signatures by other keys are ignored (signed-note spec); a signature naming the expected
    key that does not verify rejects the note.
    """
    verifier = parse_verifier_key(verifier_key)
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteInvalid("a note is valid UTF-8") from None
    _check_note_chars(note)
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteInvalid("no blank line before the signatures")
    text, signatures = note[: split + 1], note[split + 2 :]
    if not signatures.endswith("\n"):
        raise NoteInvalid("signature lines end in a newline")
    lines = signatures[:-1].split("\n")
    if len(lines) > _MAX_SIGNATURE_LINES:
        raise NoteInvalid("too many signatures")
    verified = False
    for line in lines:
        if not line.startswith(_SIG_PREFIX):
            raise NoteInvalid("a signature line starts with an em dash and a space")
        name, space, encoded = line[len(_SIG_PREFIX) :].partition(" ")
        if not space or " " in encoded:
            raise NoteInvalid("a signature line is: em dash, name, signature")
        _check_key_name(name)
        raw = _unb64(encoded, "signature")
        if len(raw) < 5:
            raise NoteInvalid("a signature is a key id and at least one byte")
        if name != verifier.name or raw[:4] != verifier.key_id:
            continue  # someone else's signature (a witness, a rotated key): not ours to judge
        try:
            verifier.public_key.verify(raw[4:], text.encode("utf-8"))
        except InvalidSignature:
            raise NoteInvalid(f"invalid signature for key {name}+{raw[:4].hex()}") from None
        verified = True
    if not verified:
        raise NoteInvalid(f"no signature by {verifier.name}+{verifier.key_id.hex()}")
    return text


class Checkpoint(NamedTuple):
    """A verified tree head: unpacks as ``origin, tree_size, root_hash``."""

    origin: str
    tree_size: int
    root_hash: bytes


def checkpoint_text(origin: str, tree_size: int, root_hash: bytes) -> str:
    """The checkpoint body: origin, decimal size, base64 root, each ending in a newline."""
    _check_key_name(origin)  # no spaces or '+': the spec's advice, kept as a rule here
    if not isinstance(tree_size, int) or isinstance(tree_size, bool) or tree_size < 0:
        raise ValueError("tree size is a non-negative integer")
    if not _all_hashes(root_hash):
        raise ValueError("the root hash is 32 bytes")
    return f"{origin}\n{tree_size}\n{_b64(root_hash)}\n"


def sign_checkpoint(
    private_key: Ed25519PrivateKey,
    origin: str,
    tree_size: int,
    root_hash: bytes,
    *,
    key_name: str | None = None,
) -> str:
    """A signed checkpoint; the key name is the origin unless ``key_name`` says otherwise."""
    text = checkpoint_text(origin, tree_size, root_hash)
    return sign_note(private_key, key_name if key_name is not None else origin, text)


def parse_and_verify_checkpoint(
    text: str | bytes, verifier_key: str, *, origin: str | None = None
) -> Checkpoint:
    """Verify a signed checkpoint and return ``(origin, tree_size, root_hash)``.

    ``origin``, when given, must match the checkpoint's. Raises :class:`NoteInvalid`.
    """
    body = open_note(text, verifier_key)
    lines = body[:-1].split("\n")
    if len(lines) != 3:
        raise NoteInvalid("a checkpoint here is exactly origin, size and root hash")
    origin_line, size_line, root_line = lines
    if not origin_line:
        raise NoteInvalid("empty origin")
    if origin is not None and origin_line != origin:
        raise NoteInvalid(f"origin {origin_line!r} is not {origin!r}")
    if not _DECIMAL.fullmatch(size_line):
        raise NoteInvalid("tree size is a decimal without leading zeros")
    root = _unb64(root_line, "root hash")
    if len(root) != HASH_SIZE:
        raise NoteInvalid("the root hash is 32 bytes")
    return Checkpoint(origin_line, int(size_line), root)


# --- verifying the whole log --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LedgerProblem:
    """One thing that failed. Entry problems name entries ``index`` up to ``index_end``
    (exclusive; ``index + 1`` when the entry is known exactly); tree-head problems name the
    position of the head in the list given (``tree_head``)."""

    code: str
    message: str
    index: int | None = None
    index_end: int | None = None
    event_id: str | None = None
    tree_head: int | None = None


@dataclass(frozen=True, slots=True)
class LedgerReport:
    """The outcome of :func:`verify_log`. ``ok`` is True only when nothing failed."""

    ok: bool
    tree_size: int
    root_hash: bytes
    tree_heads_verified: int  # heads whose signature and root both check out
    verified_size: int  # the largest size a verified head vouches for
    unsigned_entries: int  # entries after that size: intact as far as anyone can tell
    first_bad_index: int | None
    first_bad_event_id: str | None
    first_bad_exact: bool  # False: only "somewhere from first_bad_index on" is known
    problems: tuple[LedgerProblem, ...]

    def summary(self) -> str:
        if self.ok:
            return (
                f"ledger intact: {self.tree_size} entries, root {_b64(self.root_hash)}, "
                f"{self.tree_heads_verified} signed heads verified"
            )
        if self.first_bad_index is None:
            where = "no entry named"
        else:
            where = "first bad entry " + ("" if self.first_bad_exact else "at or after ")
            where += f"index {self.first_bad_index}"
            if self.first_bad_event_id is not None:
                where += f" (event {self.first_bad_event_id})"
        return f"ledger FAILED: {where}; " + "; ".join(p.message for p in self.problems)


def verify_log(
    leaves: Sequence[bytes],
    tree_heads: Sequence[str],
    verifier_key: str,
    *,
    origin: str | None = None,
    stored_leaf_hashes: Sequence[bytes] | None = None,
    indices: Sequence[int] | None = None,
    event_ids: Sequence[str] | None = None,
    records: Sequence[CustodyEvent] | None = None,
) -> LedgerReport:
    """Recompute the log from its leaves and check it against everything stored about it.

    ``leaves`` are the leaf bytes in ledger order: recomputed by the caller from its stored
    custody records (``leaf_bytes``), or as stored at append time and then checked against
    the records here (``records``). ``tree_heads`` are signed checkpoints (every one the
    service kept, and any held by others). Optional evidence, each of which lets the report
    name the first bad entry exactly:

    * ``records``: the custody events rebuilt from the stored rows, one per leaf. Each must
      say what its leaf says (:func:`leaf_matches_event`): an edited record is named even
      when the stored leaves are intact.
    * ``indices``: the ledger index stored on each record, in the order given. A deleted row
      leaves a hole (position p holds index p + 1); swapped or duplicated rows break order.
    * ``stored_leaf_hashes``: the leaf hashes stored when each entry was appended. A record
      edited after the fact no longer hashes to its stored hash.
    * ``event_ids``: each record's event id, used to name entries (else read from the leaf)
      and checked for duplicates.

    Signed heads are the evidence an intruder cannot forge. A head whose root differs from
    the recomputed tree at its size puts the first bad entry between the largest head that
    matches and that head's size: exactly one entry when a head is signed after every append.
    A head larger than the log means entries were removed from its end. A head that fails
    while a *larger* head matches means the log signed two histories. What no local check can
    catch is an intruder who deletes the newest entries together with every head covering
    them: heads published to others (the ``tree_heads`` they hold) catch that.
    """
    n = len(leaves)
    hashes = leaf_hashes(leaves)
    tree = MerkleTree(hashes, checked=False)  # made just above: 32 bytes each
    problems: list[LedgerProblem] = []
    exact: list[int] = []

    if indices is not None:
        if len(indices) != n:
            raise ValueError("indices must give one index per leaf")
        if list(indices) != list(range(n)):
            p = next(i for i, stored in enumerate(indices) if stored != i)
            held = indices[p]
            why = (
                f"entry {p} is missing: the record at position {p} has index {held}"
                if held > p
                else f"entries out of order: the record at position {p} has index {held}"
            )
            problems.append(LedgerProblem("index_gap", why, p, p + 1))
            exact.append(p)

    if event_ids is not None:
        if len(event_ids) != n:
            raise ValueError("event_ids must give one id per leaf")
        if len(set(event_ids)) != n:
            seen: set[str] = set()
            for p, event_id in enumerate(event_ids):
                if event_id in seen:
                    problems.append(
                        LedgerProblem(
                            "duplicate_event", f"event {event_id} appears twice", p, p + 1
                        )
                    )
                    exact.append(p)
                    break
                seen.add(event_id)

    if stored_leaf_hashes is not None:
        stored = list(stored_leaf_hashes)
        if stored != hashes:
            common = min(len(stored), n)
            p = next((i for i in range(common) if stored[i] != hashes[i]), common)
            if p < common:
                problems.append(
                    LedgerProblem(
                        "leaf_changed",
                        f"entry {p} no longer hashes to the leaf hash stored when it was appended",
                        p,
                        p + 1,
                    )
                )
            elif len(stored) > n:
                problems.append(
                    LedgerProblem(
                        "entries_missing",
                        f"{len(stored) - n} entries from index {n} on have a stored hash "
                        "but no record",
                        n,
                        n + 1,
                    )
                )
            else:
                problems.append(
                    LedgerProblem(
                        "entries_unrecorded",
                        f"entries from index {p} on have no stored leaf hash",
                        p,
                        p + 1,
                    )
                )
            exact.append(p)

    if records is not None:
        if len(records) != n:
            raise ValueError("records must give one custody event per leaf")
        for p, (leaf, record) in enumerate(zip(leaves, records, strict=True)):
            if not leaf_matches_event(leaf, record):
                problems.append(
                    LedgerProblem(
                        "record_changed",
                        f"the custody record of entry {p} (event {record.event_id}) no longer "
                        "says what its ledger leaf says",
                        p,
                        p + 1,
                        event_id=record.event_id,
                    )
                )
                exact.append(p)
                break

    def event_id_at(first: int) -> str | None:
        if event_ids is not None:
            return event_ids[first]
        if records is not None:
            return records[first].event_id
        return _event_id_of(leaves[first])

    return verify_tree(
        hashes,
        tree_heads,
        verifier_key,
        origin=origin,
        entry_problems=problems,
        event_id_at=event_id_at,
        tree=tree,
    )


def verify_tree(
    hashes: Sequence[bytes],
    tree_heads: Iterable[str],
    verifier_key: str,
    *,
    origin: str | None = None,
    entry_problems: Sequence[LedgerProblem] = (),
    event_id_at: Callable[[int], str | None] | None = None,
    tree: MerkleTree | None = None,
) -> LedgerReport:
    """The second half of :func:`verify_log`, for callers that check entries themselves.

    ``hashes`` are the leaf hashes of the log (recomputed by the caller), ``entry_problems``
    what the caller found wrong with individual entries (each naming its ``index``), and
    ``event_id_at(index)`` names an entry. Every signed head is checked against the tree as in
    :func:`verify_log`, and the first bad entry is judged from both. ``tree_heads`` may be a
    lazy iterable (a store streaming a million heads); ``tree`` a tree already built over
    ``hashes``.
    """
    n = len(hashes)
    if tree is None:
        tree = MerkleTree(hashes)
    problems = list(entry_problems)
    exact = [p.index for p in problems if p.index is not None]

    verified: list[int] = []
    failed: list[tuple[int, int]] = []  # (size, position in tree_heads)
    for k, note in enumerate(tree_heads):
        try:
            head = parse_and_verify_checkpoint(note, verifier_key, origin=origin)
        except NoteInvalid as e:
            problems.append(LedgerProblem("tree_head_invalid", f"tree head {k}: {e}", tree_head=k))
            continue
        if head.tree_size <= n and tree.root(head.tree_size) == head.root_hash:
            verified.append(head.tree_size)
        else:
            failed.append((head.tree_size, k))
    verified_size = max(verified, default=0)

    head_range: tuple[int, int] | None = None
    for size, k in sorted(failed):
        if size <= verified_size:
            problems.append(
                LedgerProblem(
                    "tree_head_inconsistent",
                    f"tree head {k} (size {size}) does not match the log although a larger "
                    f"signed head (size {verified_size}) does: two histories were signed",
                    tree_head=k,
                )
            )
            continue
        lo, hi = verified_size, (size if size <= n else n + 1)
        if head_range is None:
            head_range = (lo, hi)
            if size > n and lo == n:
                message = (
                    f"tree head {k} vouches for {size} entries, the log holds {n}: "
                    f"entries from index {n} on were removed"
                )
                code = "entries_missing"
            elif size > n:
                message = (
                    f"tree head {k} vouches for {size} entries, the log holds {n}, and the "
                    f"log matches no signed head past size {lo}"
                )
                code = "entries_missing"
            else:
                message = (
                    f"tree head {k} (size {size}) does not match the recomputed tree: an "
                    f"entry from index {lo} to {hi - 1} was changed, removed or moved"
                )
                code = "root_mismatch"
            problems.append(LedgerProblem(code, message, lo, hi, tree_head=k))

    first: int | None = None
    first_exact = True
    if head_range is None:
        first = min(exact, default=None)
    else:
        lo, hi = head_range
        before = [p for p in exact if p < hi]
        if before:
            first = min(before)
        else:
            first, first_exact = lo, hi - lo == 1

    first_event: str | None = None
    if first is not None and first < n and event_id_at is not None:
        first_event = event_id_at(first)

    return LedgerReport(
        ok=not problems,
        tree_size=n,
        root_hash=tree.root(),
        tree_heads_verified=len(verified),
        verified_size=verified_size,
        unsigned_entries=n - verified_size,
        first_bad_index=first,
        first_bad_event_id=first_event,
        first_bad_exact=first_exact if first is not None else False,
        problems=tuple(problems),
    )
