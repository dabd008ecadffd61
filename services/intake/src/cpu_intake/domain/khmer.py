"""Khmer script: what counts as a Khmer name, and the normal forms used to compare names.

Facts this rests on (Unicode's Khmer block, U+1780-U+17FF):
- U+1780-U+17A2 are consonants, U+17A3-U+17B3 independent vowels, U+17DC a letter;
- U+17B6-U+17C5 are dependent vowel signs, U+17C6-U+17D1 and U+17DD other signs (nikahit,
  bantoc, robat, the register shifters...), U+17D2 is COENG (the next consonant is written
  below), U+17B4/U+17B5 are invisible inherent vowels that should not be used at all;
- U+17D4-U+17DB are punctuation and the riel sign, U+17E0-U+17F9 digits: not part of a name.
Zero-width space (U+200B, used as an optional word break), ZWNJ, ZWJ, the word joiner and
the BOM change nothing a reader sees, so they are dropped before anything is compared.
NFC is applied but does not reorder Khmer marks (almost all have combining class 0).
"""

from __future__ import annotations

import unicodedata

_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
_COENG = "\u17d2"
# Subscript DA and subscript TA look the same in most Khmer fonts, so people type either
# (the province "កណ្ដាល" is often written "កណ្តាល"): for comparison they are one letter.
_SUBSCRIPT_FOLD = {_COENG + "\u178a": _COENG + "\u178f"}


def _is_name_char(ch: str) -> bool:
    cp = ord(ch)
    return 0x1780 <= cp <= 0x17D3 or cp in (0x17DC, 0x17DD)


def _is_base_letter(ch: str) -> bool:
    cp = ord(ch)
    return 0x1780 <= cp <= 0x17B3 or cp == 0x17DC


def clean(text: str) -> str:
    """NFC, invisible characters removed, runs of white space made one space, trimmed.

    This is the form a Khmer name is stored and shown in."""
    return " ".join(unicodedata.normalize("NFC", text).translate(_INVISIBLE).split())


def is_khmer_name(text: str) -> bool:
    """True when ``text`` (after :func:`clean`) is Khmer letters and marks separated by spaces,
    with at least one Khmer letter: no Latin letters, digits or punctuation."""
    cleaned = clean(text)
    return any(_is_base_letter(ch) for ch in cleaned) and all(
        ch == " " or _is_name_char(ch) for ch in cleaned
    )


def comparison_key(text: str) -> str:
    """The exact-match key of a Khmer name: :func:`clean`, spaces removed (Khmer is often
    written with no space between family and given name), subscript DA folded to TA."""
    key = clean(text).replace(" ", "")
    for variant, canonical in _SUBSCRIPT_FOLD.items():
        key = key.replace(variant, canonical)
    return key


def consonant_skeleton(text: str) -> str:
    """The letters of :func:`comparison_key` without vowel signs, diacritics or COENG.

    Khmer spellings of one name differ mostly in these marks (ី/ិ, ូ/ុ, a bantoc or not, a
    subscript typed with or without COENG, marks typed in another order), which an exact key
    misses. The skeleton also merges names that really differ ("សុខា" and "សុខ" are both
    "សខ"), so a skeleton match is weaker evidence than an exact one.
    """
    return "".join(ch for ch in comparison_key(text) if _is_base_letter(ch))
