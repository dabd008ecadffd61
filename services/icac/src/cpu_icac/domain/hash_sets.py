"""Known hash sets (Project VIC / VICS JSON, or CSV) and the in-memory index tips are matched
against: MD5 and SHA-1 exactly, PDQ within a Hamming distance of 31.

PDQ search, multi-index hashing (Norouzi, Punjani and Fleet, "Fast search in Hamming space
with multi-index hashing", CVPR 2012). A 256-bit PDQ hash is cut into 16 chunks of 16 bits,
and each chunk value indexes a table (one per chunk position). Pigeonhole: if two hashes differ
in at most 31 bits, those differences fall into 16 chunks, so at least one chunk differs in at
most floor(31 / 16) = 1 bit. A query therefore probes, in each of the 16 tables, its own chunk
value and the 16 values one bit away (17 x 16 = 272 probes), collects the entries found, and
verifies each candidate's full 256-bit distance. The search is exact: it finds every entry
within the distance, never a false one. With N entries a query sees about N x 272 / 65536
candidates (about 420 for 100,000 entries) instead of N. For a distance under 16 one probe per
table suffices; beyond 31 the index falls back to comparing with every entry.

The tables and the verification are numpy arrays, and a batch of queries (a consumer's batch of
tips) is searched in one vectorised pass: done one by one in Python (ints and
``int.bit_count()``), probing and verifying 420 candidates cost about 15 times more. A candidate
is first checked on two of its four 64-bit words, which already rules out nearly all of them.
Answers are remembered per hash until the index changes (viral files recur across reports).

Categories are Project VIC (VICS) categories as US and Canadian lists use them; what each does
to a tip's priority lives in :mod:`cpu_icac.domain.priority` (a table the unit can change):

=====  ========================  ====================================================
code   label                     meaning
=====  ========================  ====================================================
0      non_pertinent             not child abuse material: must never raise priority
1      child_abuse_material      CSAM (child abuse material)
2      child_exploitive          exploitive or age-difficult, not itself CSAM
3      cgi_animation             computer-generated or animated CSAM
4      comparison                comparison images, reference only
=====  ========================  ====================================================
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Final, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from cpu_icac.domain.tip_report import TipReport

HashAlgorithm = Literal["md5", "sha1", "pdq"]
HashSetFormat = Literal["project_vic_json", "csv"]

PDQ_MATCH_DISTANCE: Final = 31
PDQ_BITS: Final = 256
_CHUNKS: Final = 16
_CHUNK_BITS: Final = PDQ_BITS // _CHUNKS
_CHUNK_MASK: Final = (1 << _CHUNK_BITS) - 1
_TABLE: Final = 1 << _CHUNK_BITS
_ROW_BASE: Final = np.arange(_CHUNKS, dtype=np.int64) * (_TABLE + 1)
# Chunk c of a hash is bits (48 - 16 * (c % 4)) .. of 64-bit word c // 4.
_CHUNK_SHIFTS: Final = np.array([48, 32, 16, 0], dtype=np.uint64)
# A chunk value itself, then the 16 values one bit away from it.
_FLIPS: Final = np.array([0, *(1 << b for b in range(_CHUNK_BITS))], dtype=np.int64)
_BATCH: Final = 256  # queries verified together: bounds the candidate arrays' memory
PDQ_CACHE_SIZE: Final = 65_536

CATEGORY_LABELS: Final[dict[int, str]] = {
    0: "non_pertinent",
    1: "child_abuse_material",
    2: "child_exploitive",
    3: "cgi_animation",
    4: "comparison",
}
NON_PERTINENT: Final = 0
MAX_PROBLEMS_KEPT: Final = 100

_MD5 = re.compile(r"[0-9a-f]{32}")
_SHA1 = re.compile(r"[0-9a-f]{40}")
_PDQ = re.compile(r"[0-9a-f]{64}")
# Hashes of the empty file: in every list as non-pertinent, evidence of nothing.
EMPTY_FILE_HASHES: Final = frozenset(
    {"d41d8cd98f00b204e9800998ecf8427e", "da39a3ee5e6b4b0d3255bfef95601890afd80709"}
)


class HashSetError(ValueError):
    """A hash-set file that cannot be read at all (not JSON/CSV, wrong shape, no header)."""


@dataclass(frozen=True, slots=True)
class KnownHash:
    """One entry of a hash set: any of its hashes, and its category (None when not given)."""

    md5: str | None
    sha1: str | None
    pdq: str | None
    category: int | None


@dataclass(frozen=True, slots=True)
class HashSet:
    """A loaded list: its name, entries, and what was skipped (reasons name rows, not values)."""

    name: str
    entries: tuple[KnownHash, ...]
    skipped: int = 0
    problems: tuple[str, ...] = ()


class HashMatch(NamedTuple):
    """A file of a tip found in a known set (CONTRACT.md section 5, plus the file's index)."""

    hash_set: str
    algorithm: HashAlgorithm
    distance: int
    category: int | None
    file_index: int

    @property
    def category_label(self) -> str | None:
        return None if self.category is None else CATEGORY_LABELS.get(self.category, "unknown")

    def as_dict(self) -> dict[str, Any]:
        return {
            "hash_set": self.hash_set,
            "algorithm": self.algorithm,
            "distance": self.distance,
            "category": self.category,
            "file_index": self.file_index,
        }


# --- loading -------------------------------------------------------------------------------


def _norm_hex(value: Any, pattern: re.Pattern[str]) -> str | Literal[False] | None:
    """Lower-case hex when well formed, None when absent, False when malformed."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if not text:
        return None
    return text if pattern.fullmatch(text) else False


def _category(value: Any) -> int | Literal[False] | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        return False
    try:
        number = int(str(value).strip())
    except ValueError:
        return False
    return number if number >= 0 else False


class _Collector:
    def __init__(self, name: str) -> None:
        if not name or not name.strip():
            raise HashSetError("a hash set needs a name")
        self.name = name.strip()
        self.entries: list[KnownHash] = []
        self.skipped = 0
        self.problems: list[str] = []

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append(text)

    def add(self, where: str, md5: Any, sha1: Any, pdq: Any, category: Any) -> None:
        hashes = {
            "md5": _norm_hex(md5, _MD5),
            "sha1": _norm_hex(sha1, _SHA1),
            "pdq": _norm_hex(pdq, _PDQ),
        }
        for field_name, value in hashes.items():
            if value is False:
                self.problem(f"{where}: {field_name} is not a valid {field_name} hash; ignored")
        cat = _category(category)
        if cat is False:
            self.problem(f"{where}: category is not a non-negative integer; ignored")
            cat = None
        good = {k: v for k, v in hashes.items() if isinstance(v, str)}
        if not good:
            self.skipped += 1
            self.problem(f"{where}: no valid md5, sha1 or pdq; skipped")
            return
        self.entries.append(
            KnownHash(good.get("md5"), good.get("sha1"), good.get("pdq"), cat)  # type: ignore[arg-type]
        )

    def result(self) -> HashSet:
        return HashSet(self.name, tuple(self.entries), self.skipped, tuple(self.problems))


def _ci(entry: Mapping[str, Any], *names: str) -> Any:
    """A value by any of several key spellings, case-insensitively (VICS writes ``MD5``)."""
    lowered = {str(k).lower(): v for k, v in entry.items()}
    for name in names:
        if name in lowered:
            return lowered[name]
    return None


def load_project_vic_json(data: bytes | str, *, name: str) -> HashSet:
    """A Project VIC (VICS 2.0) JSON list: ``{"value": [{"MD5", "SHA1", "Category", …}]}``
    (also accepted: a bare list, or ``{"Media": [...]}``). Upper-case hex and string numbers
    are fine; an entry without any valid hash is skipped and counted."""
    collector = _Collector(name)
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise HashSetError("the hash set is not valid JSON") from None
    if isinstance(doc, Mapping):
        media = _ci(doc, "value", "media")
    else:
        media = doc
    if not isinstance(media, list):
        raise HashSetError('a Project VIC list holds its entries under "value"')
    for i, entry in enumerate(media):
        where = f"entry {i}"
        if not isinstance(entry, Mapping):
            collector.skipped += 1
            collector.problem(f"{where}: not an object; skipped")
            continue
        collector.add(
            where,
            _ci(entry, "md5"),
            _ci(entry, "sha1", "sha-1"),
            _ci(entry, "pdq", "pdqhash"),
            _ci(entry, "category"),
        )
    return collector.result()


def load_hash_csv(data: bytes | str, *, name: str) -> HashSet:
    """A CSV list with a header naming any of ``md5``, ``sha1``, ``pdq`` and ``category``
    (other columns, such as ``source``, are ignored)."""
    collector = _Collector(name)
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data.removeprefix("\ufeff")
    reader = csv.DictReader(io.StringIO(text))
    fields = {f.strip().lower() for f in reader.fieldnames or []}
    if not fields & {"md5", "sha1", "pdq"}:
        raise HashSetError("the CSV header names none of md5, sha1, pdq")
    for row in reader:
        row_ci = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
        collector.add(
            f"line {reader.line_num}",
            row_ci.get("md5"),
            row_ci.get("sha1"),
            row_ci.get("pdq"),
            row_ci.get("category"),
        )
    return collector.result()


def load_hash_set(data: bytes, *, name: str, format: HashSetFormat | None = None) -> HashSet:
    """A hash set in either format; without ``format`` it is told by the first character."""
    if format is None:
        head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
        format = "project_vic_json" if head in (b"{", b"[") else "csv"
    if format == "project_vic_json":
        return load_project_vic_json(data, name=name)
    try:
        return load_hash_csv(data, name=name)
    except UnicodeDecodeError:
        raise HashSetError("the CSV is not UTF-8") from None


# --- the index -----------------------------------------------------------------------------


def pdq_distance(a: str | int, b: str | int) -> int:
    """Hamming distance between two PDQ hashes (hex or int)."""
    x = int(a, 16) if isinstance(a, str) else a
    y = int(b, 16) if isinstance(b, str) else b
    return (x ^ y).bit_count()


def _pdq_words(hexes: Sequence[str]) -> npt.NDArray[np.uint64]:
    """(n, 4) array of 64-bit words, most significant first, from 64-hex-digit strings."""
    raw = np.frombuffer(bytes.fromhex("".join(hexes)), dtype=">u8")
    return raw.astype(np.uint64).reshape(len(hexes), 4)


def _chunks_of(words: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    """(n, 16) array of the 16-bit chunks of each hash."""
    n = words.shape[0]
    return (
        ((words[:, :, None] >> _CHUNK_SHIFTS) & np.uint64(_CHUNK_MASK))
        .astype(np.int64)
        .reshape(n, _CHUNKS)
    )


class PdqIndex:
    """Multi-index hashing over PDQ hashes (see the module doc), vectorised with numpy.

    Per chunk position, entries are sorted by chunk value (``order``) with a table of where
    each of the 65,536 values starts (``offsets``): a probe is two look-ups, and all the
    candidates of a batch of queries are verified at once (XOR, ``bitwise_count``).
    Memory: 96 bytes per entry (its four words and its place in 16 orders) plus 4 MB of
    offsets, about 14 MB for 100,000 entries.
    Entries are appended; the arrays are rebuilt on the next search after a change.
    """

    def __init__(self) -> None:
        self._hexes: list[str] = []
        self.labels: list[tuple[str, int | None]] = []
        self._built = 0
        self._cache: dict[str, tuple[tuple[int, int], ...]] = {}

    def __len__(self) -> int:
        return len(self._hexes)

    def add(self, pdq: str, hash_set: str, category: int | None) -> None:
        self._hexes.append(pdq)
        self.labels.append((hash_set, category))

    def clear_cache(self) -> None:
        """Forget remembered answers (the index itself is unchanged)."""
        self._cache.clear()

    def _build(self) -> None:
        n = len(self._hexes)
        words = _pdq_words(self._hexes)
        self._words = [np.ascontiguousarray(words[:, k]) for k in range(4)]
        chunks = _chunks_of(words)
        # int32 throughout: half the memory of int64, so more of it stays in cache.
        self._order = np.argsort(chunks, axis=0, kind="stable").T.astype(np.int32).ravel()
        offsets = np.zeros((_CHUNKS, _TABLE + 1), dtype=np.int64)
        for c in range(_CHUNKS):
            offsets[c, 1:] = np.cumsum(np.bincount(chunks[:, c], minlength=_TABLE))
        # Flat, each chunk position's start in ``order`` folded in; a probe's range is
        # offsets[p] to offsets[p + 1] (the extra last slot of a row is never probed).
        folded = offsets + (np.arange(_CHUNKS, dtype=np.int64) * n)[:, None]
        self._offsets = folded.ravel().astype(np.int32 if 16 * n < 2**31 else np.int64)
        self._built = n
        self._cache.clear()

    def search_many(
        self, queries: Sequence[str], max_distance: int = PDQ_MATCH_DISTANCE
    ) -> list[tuple[tuple[int, int], ...]]:
        """For each query (64 hex digits, lower case), ``(entry, distance)`` of every entry
        within ``max_distance`` bits, nearest first; ``entry`` indexes :attr:`labels`.

        Answers at the default distance are remembered (a viral file comes back in thousands
        of reports), up to :data:`PDQ_CACHE_SIZE` queries, until the index changes.
        """
        if not queries or not self._hexes:
            return [() for _ in queries]
        if self._built != len(self._hexes):
            self._build()
        cache = self._cache if max_distance == PDQ_MATCH_DISTANCE else {}
        todo = [q for q in dict.fromkeys(queries) if q not in cache]
        found: dict[str, list[tuple[int, int]]] = {q: [] for q in todo}
        for start in range(0, len(todo), _BATCH):
            batch = todo[start : start + _BATCH]
            for qid, entry, distance in self._search_batch(batch, max_distance):
                found[batch[qid]].append((entry, distance))
        if len(cache) + len(found) > PDQ_CACHE_SIZE:
            for old in list(islice(cache, len(cache) // 2 + len(found))):
                del cache[old]
        for query, hits in found.items():
            cache[query] = tuple(sorted(hits, key=lambda hit: (hit[1], hit[0])))
        return [cache[q] for q in queries]

    def _search_batch(
        self, queries: Sequence[str], max_distance: int
    ) -> list[tuple[int, int, int]]:
        q = _pdq_words(queries)
        b = len(queries)
        n = len(self._hexes)
        if max_distance >= 2 * _CHUNKS:
            # No pigeonhole guarantee with one-bit probes: compare with every entry.
            per_query = np.full(b, n, dtype=np.int64)
            cand = np.tile(np.arange(n, dtype=np.int32), b)
        else:
            flips = _FLIPS if max_distance >= _CHUNKS else _FLIPS[:1]
            # Row c of the offsets table has 65,537 slots: probe p of chunk c is c * 65537 + v.
            probes = (_chunks_of(q)[:, :, None] ^ flips) + _ROW_BASE[None, :, None]
            starts = self._offsets[probes].astype(np.int64)
            lengths = self._offsets[probes + 1] - starts
            per_query = lengths.reshape(b, -1).sum(axis=1)
            starts, lengths = starts.ravel(), lengths.ravel()
            total = int(per_query.sum())
            if total == 0:
                return []
            # Concatenate the ranges order[start:end] of every probe, without a Python loop.
            before = np.cumsum(lengths) - lengths
            cand = self._order[np.repeat(starts - before, lengths) + np.arange(total)]
        qid = np.repeat(np.arange(b), per_query)
        # Two words first: a candidate more than max_distance away on 128 bits is out, and
        # that is nearly all of them; the other two words only for the few left.
        near = np.bitwise_count(self._words[0][cand] ^ np.repeat(q[:, 0], per_query))
        near += np.bitwise_count(self._words[1][cand] ^ np.repeat(q[:, 1], per_query))
        keep = np.flatnonzero(near <= max_distance)
        cand, qid, distance = cand[keep], qid[keep], near[keep].astype(np.int64)
        distance += np.bitwise_count(self._words[2][cand] ^ q[qid, 2])
        distance += np.bitwise_count(self._words[3][cand] ^ q[qid, 3])
        hit = distance <= max_distance
        # An entry near a query turns up in several chunk tables: keep it once.
        keys, first = np.unique(qid[hit].astype(np.int64) * n + cand[hit], return_index=True)
        hit_distance = distance[hit][first]
        return [(int(k // n), int(k % n), int(d)) for k, d in zip(keys, hit_distance, strict=True)]


@dataclass
class HashIndex:
    """Every loaded set in one index. Add sets with :meth:`add`; a set added again under the
    same name replaces the old one (the index is rebuilt, which is fine at load time)."""

    _sets: dict[str, HashSet] = field(default_factory=dict)
    _md5: dict[str, list[tuple[str, int | None]]] = field(default_factory=dict)
    _sha1: dict[str, list[tuple[str, int | None]]] = field(default_factory=dict)
    _pdq: PdqIndex = field(default_factory=PdqIndex)

    @classmethod
    def of(cls, sets: Iterable[HashSet]) -> HashIndex:
        index = cls()
        for hash_set in sets:
            index.add(hash_set)
        return index

    @property
    def set_names(self) -> list[str]:
        return list(self._sets)

    def __len__(self) -> int:
        return sum(len(s.entries) for s in self._sets.values())

    def add(self, hash_set: HashSet) -> None:
        """Index a set (replacing an earlier set of the same name)."""
        if hash_set.name in self._sets:
            sets = {**self._sets, hash_set.name: hash_set}
            self._sets, self._md5, self._sha1, self._pdq = {}, {}, {}, PdqIndex()
            for kept in sets.values():
                self.add(kept)
            return
        self._sets[hash_set.name] = hash_set
        name = hash_set.name
        seen_md5: set[str] = set()
        seen_sha1: set[str] = set()
        seen_pdq: set[str] = set()
        for entry in hash_set.entries:
            # The first entry of a set wins when a list repeats a hash.
            if entry.md5 and entry.md5 not in seen_md5:
                seen_md5.add(entry.md5)
                self._md5.setdefault(entry.md5, []).append((name, entry.category))
            if entry.sha1 and entry.sha1 not in seen_sha1:
                seen_sha1.add(entry.sha1)
                self._sha1.setdefault(entry.sha1, []).append((name, entry.category))
            if entry.pdq and entry.pdq not in seen_pdq:
                seen_pdq.add(entry.pdq)
                self._pdq.add(entry.pdq, name, entry.category)

    def lookup_md5(self, md5: str) -> list[tuple[str, int | None]]:
        """``(hash_set, category)`` of every set holding this MD5 (lower-case hex)."""
        return self._md5.get(md5, [])

    def lookup_sha1(self, sha1: str) -> list[tuple[str, int | None]]:
        """``(hash_set, category)`` of every set holding this SHA-1 (lower-case hex)."""
        return self._sha1.get(sha1, [])

    def pdq_search(
        self, pdq: str, max_distance: int = PDQ_MATCH_DISTANCE
    ) -> list[tuple[str, int | None, int]]:
        """``(hash_set, category, distance)`` of every entry within ``max_distance`` bits of
        one PDQ hash (64 hex digits), nearest first."""
        found = self._pdq.search_many([pdq.lower()], max_distance)[0]
        return [(*self._pdq.labels[entry], distance) for entry, distance in found]

    def pdq_search_many(
        self, pdqs: Sequence[str], max_distance: int = PDQ_MATCH_DISTANCE
    ) -> list[list[tuple[str, int | None, int]]]:
        """:meth:`pdq_search` for many hashes at once (one vectorised pass)."""
        labels = self._pdq.labels
        found = self._pdq.search_many([p.lower() for p in pdqs], max_distance)
        return [[(*labels[entry], distance) for entry, distance in hits] for hits in found]

    def clear_cache(self) -> None:
        """Forget remembered PDQ answers (for measurements; the index forgets by itself on
        every change)."""
        self._pdq.clear_cache()

    def match_reports(self, reports: Sequence[TipReport]) -> list[list[HashMatch]]:
        """The matches of each report's files, in file order, for a batch of reports (all
        PDQ look-ups of the batch in one vectorised search).

        Per file and set, the best match only: an exact MD5/SHA-1 match over a PDQ one, the
        nearest PDQ match otherwise. Empty-file hashes never match.
        """
        md5s, sha1s = self._md5, self._sha1
        pdq_files: list[tuple[int, int, str]] = []
        per_file: list[list[dict[str, HashMatch]]] = []
        for r, report in enumerate(reports):
            files: list[dict[str, HashMatch]] = []
            for f, file in enumerate(report.files):
                best: dict[str, HashMatch] = {}
                if file.md5 and file.md5 in md5s and file.md5 not in EMPTY_FILE_HASHES:
                    for name, category in md5s[file.md5]:
                        best[name] = HashMatch(name, "md5", 0, category, f)
                if file.sha1 and file.sha1 in sha1s and file.sha1 not in EMPTY_FILE_HASHES:
                    for name, category in sha1s[file.sha1]:
                        if name not in best:
                            best[name] = HashMatch(name, "sha1", 0, category, f)
                if file.pdq:
                    pdq_files.append((r, f, file.pdq))
                files.append(best)
            per_file.append(files)
        if pdq_files and len(self._pdq):
            found = self._pdq.search_many([p for _, _, p in pdq_files])
            labels = self._pdq.labels
            for (r, f, _), hits in zip(pdq_files, found, strict=True):
                best = per_file[r][f]
                for entry, distance in hits:  # nearest first: the first per set is the best
                    name, category = labels[entry]
                    if name not in best:
                        best[name] = HashMatch(name, "pdq", distance, category, f)
        return [[m for best in files for m in best.values()] for files in per_file]

    def match_report(self, report: TipReport) -> list[HashMatch]:
        """The matches of one report's files (see :meth:`match_reports`)."""
        return self.match_reports([report])[0]
