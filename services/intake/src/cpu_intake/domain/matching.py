"""Duplicate detection: is the child of a new referral one the unit already knows?

Matching runs on blind indexes. The service stores no searchable plaintext: it stores, per
child, keyed hashes (HMAC) of normalised *features*, and compares those. So this module has
two halves that meet only through sets of opaque strings:

1. :func:`match_features` turns a child (and the reporter's phone) into :class:`MatchFeatures`,
   a set of normalised feature strings per :class:`FeatureKind`. The adapter HMACs every
   string (with a key per kind), e.g. ``features.transform(lambda kind, value: hmac(...))``.
2. :func:`score` compares two such token sets using only set operations (equality,
   intersection, subset), so it gives the same answer on plaintext features and on their
   HMAC digests. :func:`rank_matches` scores a new referral's children against earlier ones
   and returns candidates best first, dropping those under the threshold.

Features (per child):

=================== ============================================================ ============
kind                strings                                                      example
=================== ============================================================ ============
name_full           Latin name, letters only, lower case, accents removed, no    chansokha
                    spaces: given+family, family+given, and tokens sorted
name_fuzzy          each name_full key with 0 or 1 letter deleted (keys of 5+    chansokh
                    letters): two names one typo apart share one of these
name_phonetic       per phonetic scheme (metaphone, nysiis, match rating codex), mrc:CHN SKH
                    the sorted codes of all name tokens
name_token          each Latin name token                                        sokha
name_phonetic_token each token's code under each scheme                          metaphone:SKH
name_km             Khmer name: NFC, zero-width characters and spaces removed,   ចាន់សុខា
                    subscript DA folded to TA; also the tokens sorted
name_km_skeleton    the name_km keys without vowel signs, diacritics and COENG   ចនសខ
                    (3+ letters)
sex                 female or male (nothing for unknown/other)                   female
dob                 date of birth, ISO                                           2017-04-02
birth_year          the year of birth; from an age estimate a at date D, the     2016
                    years D.year-a-1, D.year-a, D.year-a+1
province            province code                                                12
commune             province|district|commune, normalised                        12|dangkao|prey sa
village             province|district|commune|village, normalised                ...|trapeang
reporter_phone      the reporter's phone in E.164                                +85512345678
=================== ============================================================ ============

Scoring is a Fellegi-Sunter style sum of log2 weights (bits of evidence) for each kind of
comparison, a prior, and a logistic: ``score = 1 / (1 + 2 ** -(PRIOR + sum))``, so 0.5 means
the evidence for and against balance. Weights (:class:`MatchWeights`, defaults):

- Latin name, the best level that applies: ``name_exact`` +8, ``name_fuzzy`` +6,
  ``phonetic`` +5, ``name_partial`` (one name's tokens all in the other's) +2; some token in
  common but neither contains the other -2 (typical of siblings); nothing in common -4.
- Khmer name: ``name_km`` +8, ``name_km_skeleton`` +5, nothing in common -4.
- Latin and Khmer together: both agree, the stronger +1; one agrees and one disagrees, the
  sum; both disagree, the stronger disagreement (they are two spellings of one name, not two
  independent witnesses). A name missing on either side counts 0.
- Birth: ``dob_exact`` +6; two different dates of birth -1 in the same year, else -4;
  otherwise (an age estimate on one side) ``age_close`` +2 when the birth years meet, -4
  when they do not.
- Place: ``village`` +3, else ``commune`` +1.5; same province +0.5, different province -1.5.
- Sex: different -5, same +0.5. ``reporter_phone``: +3 (different reporters prove nothing).
- Prior -8 (a random earlier child is very unlikely to be this one); threshold 0.5.

Reasons list the agreeing comparisons worth at least 1 bit, in the order above (a shared
province or sex is too common to be a reason). Name frequency is not used: "Sok Dara" counts
as much as a rare name; a store-side frequency table of name tokens would fix that later.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import jellyfish

from cpu_intake.domain import khmer
from cpu_intake.domain.phone import InvalidPhoneNumber, normalise_phone

if TYPE_CHECKING:
    from cpu_intake.domain.referral import Child


class FeatureKind(StrEnum):
    NAME_FULL = "name_full"
    NAME_FUZZY = "name_fuzzy"
    NAME_PHONETIC = "name_phonetic"
    NAME_TOKEN = "name_token"  # noqa: S105 (a feature kind, not a credential)
    NAME_PHONETIC_TOKEN = "name_phonetic_token"  # noqa: S105
    NAME_KM = "name_km"
    NAME_KM_SKELETON = "name_km_skeleton"
    SEX = "sex"
    DOB = "dob"
    BIRTH_YEAR = "birth_year"
    PROVINCE = "province"
    COMMUNE = "commune"
    VILLAGE = "village"
    REPORTER_PHONE = "reporter_phone"


class Reason(StrEnum):
    NAME_EXACT = "name_exact"
    NAME_FUZZY = "name_fuzzy"
    PHONETIC = "phonetic"
    NAME_PARTIAL = "name_partial"
    NAME_KM = "name_km"
    NAME_KM_SKELETON = "name_km_skeleton"
    DOB_EXACT = "dob_exact"
    AGE_CLOSE = "age_close"
    VILLAGE = "village"
    COMMUNE = "commune"
    REPORTER_PHONE = "reporter_phone"


REASON_MIN_WEIGHT = 1.0
MATCH_THRESHOLD = 0.5
FUZZY_MIN_LENGTH = 5  # shorter keys one letter apart are too often different names
KM_SKELETON_MIN_LENGTH = 3
BIRTH_YEAR_SLACK = 1

PHONETIC_SCHEMES: Mapping[str, Callable[[str], str]] = {
    "metaphone": jellyfish.metaphone,
    "nysiis": jellyfish.nysiis,
    "mrc": jellyfish.match_rating_codex,
}

# Leading words that only say what kind of place follows ("Phum Trapeang" is "Trapeang").
_PLACE_PREFIXES = frozenset(
    {
        "phum", "village", "ភូមិ",
        "khum", "sangkat", "commune", "ឃុំ", "សង្កាត់",
        "srok", "khan", "krong", "district", "ស្រុក", "ខណ្ឌ", "ក្រុង",
    }
)  # fmt: skip
_LATIN_LETTERS = re.compile(r"[a-z]+")
_APOSTROPHES = dict.fromkeys(map(ord, "'\u2019`"))


# --- features ---------------------------------------------------------------------------------


class MatchFeatures(Mapping[str, frozenset[str]]):
    """Feature strings per kind (a kind with no strings is absent). Before the adapter
    hashes them they are plaintext personal data: never log or store them as they are."""

    __slots__ = ("_tokens",)

    def __init__(self, tokens: Mapping[str, Iterable[str]]) -> None:
        frozen = {str(kind): frozenset(values) for kind, values in tokens.items()}
        self._tokens = {kind: values for kind, values in frozen.items() if values}

    def __getitem__(self, kind: str) -> frozenset[str]:
        return self._tokens[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    def __repr__(self) -> str:  # kinds and counts only: the values are personal data
        counts = ", ".join(f"{k}={len(v)}" for k, v in sorted(self._tokens.items()))
        return f"MatchFeatures({counts})"

    def pairs(self) -> Iterator[tuple[str, str]]:
        """Every (kind, value), sorted: the rows of a blind-index table."""
        for kind in sorted(self._tokens):
            for value in sorted(self._tokens[kind]):
                yield kind, value

    def transform(self, function: Callable[[str, str], str]) -> MatchFeatures:
        """The same features with every value replaced by ``function(kind, value)``, e.g.
        its HMAC under the kind's key."""
        return MatchFeatures(
            {kind: {function(kind, value) for value in values} for kind, values in self.items()}
        )


def latin_tokens(text: str | None) -> list[str]:
    """Lower-case ASCII letter runs of ``text`` with accents and apostrophes removed; other
    scripts (Khmer typed in a Latin field) contribute nothing."""
    if not text:
        return []
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_APOSTROPHES))
    letters = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _LATIN_LETTERS.findall(letters)


def _within_one_deletion(key: str) -> set[str]:
    return {key} | {key[:i] + key[i + 1 :] for i in range(len(key))}


def _latin_name_features(given: list[str], family: list[str]) -> dict[str, set[str]]:
    tokens = given + family
    if not tokens:
        return {}
    full = {"".join(given + family), "".join(family + given), "".join(sorted(tokens))}
    fuzzy: set[str] = set()
    for key in full:
        if len(key) >= FUZZY_MIN_LENGTH:
            fuzzy |= _within_one_deletion(key)
    phonetic, phonetic_tokens = set(), set()
    for scheme, encode in PHONETIC_SCHEMES.items():
        codes = sorted(code for code in map(encode, tokens) if code)
        if codes:
            phonetic.add(f"{scheme}:{' '.join(codes)}")
            phonetic_tokens |= {f"{scheme}:{code}" for code in codes}
    return {
        FeatureKind.NAME_FULL: full,
        FeatureKind.NAME_FUZZY: fuzzy,
        FeatureKind.NAME_PHONETIC: phonetic,
        FeatureKind.NAME_TOKEN: set(tokens),
        FeatureKind.NAME_PHONETIC_TOKEN: phonetic_tokens,
    }


def _khmer_name_features(name_km: str | None) -> dict[str, set[str]]:
    if not name_km or not khmer.comparison_key(name_km):
        return {}
    words = khmer.clean(name_km).split(" ")
    texts = {name_km, " ".join(sorted(words))}
    exact = {khmer.comparison_key(text) for text in texts}
    skeletons = {khmer.consonant_skeleton(text) for text in texts}
    return {
        FeatureKind.NAME_KM: exact,
        FeatureKind.NAME_KM_SKELETON: {s for s in skeletons if len(s) >= KM_SKELETON_MIN_LENGTH},
    }


def _place_part(text: str | None) -> str:
    words = khmer.clean(text or "").casefold().split(" ")
    if len(words) > 1 and words[0] in _PLACE_PREFIXES:
        words = words[1:]
    return " ".join(word for word in words if word)


def _birth_years(child: Child, as_of: date) -> set[str]:
    if child.date_of_birth is not None:
        return {str(child.date_of_birth.year)}
    if child.age_estimate is None:
        return set()
    centre = as_of.year - child.age_estimate
    return {str(y) for y in range(centre - BIRTH_YEAR_SLACK, centre + BIRTH_YEAR_SLACK + 1)}


def match_features(
    child: Child, reporter_phone: str | None = None, *, as_of: date | None = None
) -> MatchFeatures:
    """The normalised feature strings of ``child``; ``as_of`` is the day an age estimate
    was given (the referral's received day; today when omitted)."""
    as_of = as_of or datetime.now(UTC).date()
    features: dict[str, set[str]] = {}
    features |= _latin_name_features(
        latin_tokens(child.given_name), latin_tokens(child.family_name)
    )
    features |= _khmer_name_features(child.name_km)
    if child.sex in ("female", "male"):
        features[FeatureKind.SEX] = {child.sex}
    if child.date_of_birth is not None:
        features[FeatureKind.DOB] = {child.date_of_birth.isoformat()}
    features[FeatureKind.BIRTH_YEAR] = _birth_years(child, as_of)
    features[FeatureKind.PROVINCE] = {child.province_code}
    district, commune, village = (
        _place_part(child.district),
        _place_part(child.commune),
        _place_part(child.village),
    )
    if commune:
        features[FeatureKind.COMMUNE] = {f"{child.province_code}|{district}|{commune}"}
    if village:
        features[FeatureKind.VILLAGE] = {f"{child.province_code}|{district}|{commune}|{village}"}
    if reporter_phone:
        try:
            features[FeatureKind.REPORTER_PHONE] = {normalise_phone(reporter_phone)}
        except InvalidPhoneNumber:
            pass  # validated input never gets here; a bad number is simply no evidence
    return MatchFeatures(features)


# --- scoring ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MatchWeights:
    """Log2 weights of each comparison level; see the module docstring."""

    name_exact: float = 8.0
    name_fuzzy: float = 6.0
    phonetic: float = 5.0
    name_partial: float = 2.0
    name_overlap_only: float = -2.0
    name_disagree: float = -4.0
    name_km: float = 8.0
    name_km_skeleton: float = 5.0
    name_km_disagree: float = -4.0
    names_corroborate: float = 1.0
    dob_exact: float = 6.0
    dob_differ_same_year: float = -1.0
    dob_differ: float = -4.0
    age_close: float = 2.0
    age_far: float = -4.0
    village: float = 3.0
    commune: float = 1.5
    province_same: float = 0.5
    province_differ: float = -1.5
    sex_same: float = 0.5
    sex_differ: float = -5.0
    reporter_phone: float = 3.0
    prior: float = -8.0


DEFAULT_WEIGHTS = MatchWeights()
TokenSets = Mapping[str, Iterable[str]]


class _Sides:
    """The two children's token sets, by kind."""

    def __init__(self, a: TokenSets, b: TokenSets) -> None:
        self._a = {str(k): frozenset(v) for k, v in a.items()}
        self._b = {str(k): frozenset(v) for k, v in b.items()}

    def pair(self, kind: FeatureKind) -> tuple[frozenset[str], frozenset[str]]:
        return self._a.get(kind, frozenset()), self._b.get(kind, frozenset())

    def both(self, kind: FeatureKind) -> bool:
        a, b = self.pair(kind)
        return bool(a) and bool(b)

    def meet(self, kind: FeatureKind) -> bool:
        a, b = self.pair(kind)
        return not a.isdisjoint(b)


Evidence = list[tuple[float, Reason | None]]


def _latin_name(s: _Sides, w: MatchWeights) -> Evidence:
    if not s.both(FeatureKind.NAME_TOKEN):
        return []
    if s.meet(FeatureKind.NAME_FULL):
        return [(w.name_exact, Reason.NAME_EXACT)]
    if s.meet(FeatureKind.NAME_FUZZY):
        return [(w.name_fuzzy, Reason.NAME_FUZZY)]
    if s.meet(FeatureKind.NAME_PHONETIC):
        return [(w.phonetic, Reason.PHONETIC)]
    a, b = s.pair(FeatureKind.NAME_TOKEN)
    if a <= b or b <= a:
        return [(w.name_partial, Reason.NAME_PARTIAL)]
    if s.meet(FeatureKind.NAME_TOKEN) or s.meet(FeatureKind.NAME_PHONETIC_TOKEN):
        return [(w.name_overlap_only, None)]
    return [(w.name_disagree, None)]


def _khmer_name(s: _Sides, w: MatchWeights) -> Evidence:
    if not s.both(FeatureKind.NAME_KM):
        return []
    if s.meet(FeatureKind.NAME_KM):
        return [(w.name_km, Reason.NAME_KM)]
    if s.meet(FeatureKind.NAME_KM_SKELETON):
        return [(w.name_km_skeleton, Reason.NAME_KM_SKELETON)]
    return [(w.name_km_disagree, None)]


def _names(s: _Sides, w: MatchWeights) -> Evidence:
    latin, km = _latin_name(s, w), _khmer_name(s, w)
    if not latin or not km:
        return latin or km
    lw, kw = latin[0][0], km[0][0]
    if lw > 0 and kw > 0:
        return [*latin, *km, (w.names_corroborate - min(lw, kw), None)]
    if lw > 0 or kw > 0:
        return [*latin, *km]
    return [min(latin[0], km[0], key=lambda e: e[0])]


def _birth(s: _Sides, w: MatchWeights) -> Evidence:
    if s.meet(FeatureKind.DOB):
        return [(w.dob_exact, Reason.DOB_EXACT)]
    years_meet = s.meet(FeatureKind.BIRTH_YEAR)
    if s.both(FeatureKind.DOB):
        return [(w.dob_differ_same_year if years_meet else w.dob_differ, None)]
    if years_meet:
        return [(w.age_close, Reason.AGE_CLOSE)]
    return [(w.age_far, None)] if s.both(FeatureKind.BIRTH_YEAR) else []


def _place(s: _Sides, w: MatchWeights) -> Evidence:
    evidence: Evidence = []
    if s.meet(FeatureKind.VILLAGE):
        evidence.append((w.village, Reason.VILLAGE))
    elif s.meet(FeatureKind.COMMUNE):
        evidence.append((w.commune, Reason.COMMUNE))
    if s.both(FeatureKind.PROVINCE):
        same = s.meet(FeatureKind.PROVINCE)
        evidence.append((w.province_same if same else w.province_differ, None))
    return evidence


def _sex(s: _Sides, w: MatchWeights) -> Evidence:
    if not s.both(FeatureKind.SEX):
        return []
    return [(w.sex_same if s.meet(FeatureKind.SEX) else w.sex_differ, None)]


def _reporter(s: _Sides, w: MatchWeights) -> Evidence:
    return [(w.reporter_phone, Reason.REPORTER_PHONE)] if s.meet(FeatureKind.REPORTER_PHONE) else []


def score(
    candidate_tokens: TokenSets,
    probe_tokens: TokenSets,
    *,
    weights: MatchWeights = DEFAULT_WEIGHTS,
) -> tuple[float, tuple[str, ...]]:
    """(score in [0, 1], reason codes) for two children's token sets (plaintext features or
    their digests: only equality of strings within a kind is used). Symmetric."""
    sides = _Sides(candidate_tokens, probe_tokens)
    evidence = [
        *_names(sides, weights),
        *_birth(sides, weights),
        *_place(sides, weights),
        *_sex(sides, weights),
        *_reporter(sides, weights),
    ]
    total = weights.prior + sum(weight for weight, _ in evidence)
    probability = 1.0 / (1.0 + 2.0 ** (-total))
    reasons = tuple(
        reason.value
        for weight, reason in evidence
        if reason is not None and weight >= REASON_MIN_WEIGHT
    )
    return round(probability, 4), reasons


@dataclass(frozen=True, slots=True)
class CandidateChildren:
    """An earlier referral's children, as token sets (what the store gives back)."""

    referral_id: Any
    children: Sequence[TokenSets]


@dataclass(frozen=True, slots=True)
class MatchCandidate:
    """An earlier referral that may concern the same child."""

    referral_id: Any
    score: float
    reasons: tuple[str, ...]
    child_index: int  # which child of the new referral
    candidate_child_index: int  # which child of the earlier one


def rank_matches(
    probe_children: Sequence[TokenSets],
    candidates: Iterable[CandidateChildren],
    *,
    threshold: float = MATCH_THRESHOLD,
    weights: MatchWeights = DEFAULT_WEIGHTS,
    exclude: Any = None,
) -> list[MatchCandidate]:
    """Earlier referrals scoring at least ``threshold`` for any pair of children, each once
    with its best pair, best first (ties by referral id). ``exclude``: the probe's own id."""
    best: dict[Any, MatchCandidate] = {}
    for candidate in candidates:
        if exclude is not None and candidate.referral_id == exclude:
            continue
        for i, probe in enumerate(probe_children):
            for j, earlier in enumerate(candidate.children):
                value, reasons = score(earlier, probe, weights=weights)
                current = best.get(candidate.referral_id)
                if value >= threshold and (current is None or value > current.score):
                    best[candidate.referral_id] = MatchCandidate(
                        candidate.referral_id, value, reasons, i, j
                    )
    return sorted(best.values(), key=lambda m: (-m.score, str(m.referral_id)))
