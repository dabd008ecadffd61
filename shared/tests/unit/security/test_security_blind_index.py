"""Blind indexes and pseudonyms: equal when they should be, unrelated otherwise."""

from __future__ import annotations

import os
import re
import unicodedata

import pytest

from cpu_shared.security.blind_index import BlindIndexer, normalise_name, normalise_phone
from cpu_shared.security.pseudonym import PSEUDONYM_PATTERN, Pseudonymizer

KEY = os.urandom(32)
IDX = BlindIndexer(KEY)

SOK_DARA_KM = "សុខ ដារា"


def test_khmer_with_and_without_zero_width_characters() -> None:
    with_zwsp = "សុខ\u200bដារា"
    without = "សុខដារា"
    with_zwj = "សុ\u200dខដា\u200cរា"
    assert IDX.name(with_zwsp) == IDX.name(without) == IDX.name(with_zwj)
    assert IDX.name(" សុខ   ដារា ") == IDX.name(SOK_DARA_KM)


def test_khmer_vowel_signs_are_kept() -> None:
    # Removing a vowel sign changes the name: សុខ (Sok) vs សខ, ដារា (Dara) vs ដរ.
    assert normalise_name("សុខ") != normalise_name("សខ")
    assert IDX.name("សុខ") != IDX.name("សខ")
    assert IDX.name("ដារា") != IDX.name("ដរ")
    assert "\u17bb" in normalise_name("សុខ")  # KHMER VOWEL SIGN U survives


def test_different_names_differ_and_equivalents_match() -> None:
    assert IDX.name("Sok Dara") != IDX.name("Chan Sophal")
    assert IDX.name("Sok Dara") == IDX.name("  SOK   dara ")
    nfd = unicodedata.normalize("NFD", "José")
    assert nfd != "José" and IDX.name(nfd) == IDX.name("José")
    assert IDX.name("José") != IDX.name("Jose")  # exact index keeps diacritics
    assert re.fullmatch(r"[0-9a-f]{32}", IDX.name("Sok Dara"))
    with pytest.raises(ValueError):
        IDX.name(" \u200b ")


def test_tokens_and_phonetic_keys() -> None:
    assert IDX.name_tokens("Sok Dara") == IDX.name_tokens("dara SOK")
    assert len(set(IDX.name_tokens("Sok Dara")) & set(IDX.name_tokens("Sok Dara Chan"))) == 2
    assert IDX.name_tokens("សុខ ដារា") == IDX.name_tokens("ដារា\u200b សុខ")
    assert IDX.name_phonetic("Vannak") == IDX.name_phonetic("Vanak")
    assert IDX.name_phonetic("Sothea", "soundex") == IDX.name_phonetic("Sotea", "soundex")
    assert IDX.name_phonetic("Sokha") != IDX.name_phonetic("Sophal")
    assert IDX.name_phonetic("José") == IDX.name_phonetic("Jose")
    assert IDX.name_phonetic(SOK_DARA_KM) == []  # no phonetic key for Khmer script


def test_kinds_and_keys_are_separated() -> None:
    indexes = {
        IDX.name("dara"),
        *IDX.name_tokens("dara"),
        *IDX.name_phonetic("dara"),
        *IDX.name_phonetic("dara", "soundex"),
    }
    assert len(indexes) == 4
    assert BlindIndexer(os.urandom(32)).name("dara") != IDX.name("dara")
    assert BlindIndexer(KEY).name("dara") == IDX.name("dara")  # deterministic
    assert "dara" not in repr(IDX) and KEY.hex() not in repr(IDX)


def test_phone_numbers() -> None:
    assert normalise_phone("012 345 678") == "+85512345678"
    assert normalise_phone("+855 (12) 345-678") == "+85512345678"
    assert normalise_phone("00855 12 345 678") == "+85512345678"
    assert IDX.phone("012 345 678") == IDX.phone("+85512345678")
    assert IDX.phone("+85512345678") != IDX.phone("+85512345679")
    for bad in ("hello", "+0123456", "12"):
        with pytest.raises(ValueError):
            IDX.phone(bad)


def test_pseudonyms() -> None:
    ps = Pseudonymizer(KEY)
    child = ps.pseudonym("child", "0b9c7f2e-5d0b-4a39-9a55-1f6f1d1c2b3a")
    assert re.fullmatch(PSEUDONYM_PATTERN, child)
    assert len(child) == 3 + 26
    assert child == Pseudonymizer(KEY).pseudonym("child", "0b9c7f2e-5d0b-4a39-9a55-1f6f1d1c2b3a")
    assert child != ps.pseudonym("case", "0b9c7f2e-5d0b-4a39-9a55-1f6f1d1c2b3a")
    assert child != ps.pseudonym("child", "0b9c7f2e-5d0b-4a39-9a55-1f6f1d1c2b3b")
    assert child != Pseudonymizer(os.urandom(32)).pseudonym(
        "child", "0b9c7f2e-5d0b-4a39-9a55-1f6f1d1c2b3a"
    )
    # Not the blind index of the same value under the same key bytes either.
    assert child[3:] not in IDX.name("0b9c7f2e-5d0b-4a39-9a55-1f6f1d1c2b3a")
    with pytest.raises(ValueError):
        ps.pseudonym("Child Name", "x")
    with pytest.raises(ValueError):
        Pseudonymizer(b"short")


def test_known_answers_do_not_change() -> None:
    # Stored indexes and published pseudonyms must stay what they were when first written:
    # these values were computed with the original HMAC-object implementation.
    key = bytes(range(32))
    idx, ps = BlindIndexer(key), Pseudonymizer(key)
    assert idx.index("icac_email", "u6@example.com") == "260f550259780ef0624447d478462c28"
    assert idx.name("Sok Dara") == "ffa25d73739fc51fcfdda01f498cc5b8"
    assert idx.phone("012 345 678") == "8568446e35a44c3082718554bbcc60f6"
    assert ps.pseudonym("child", "0b9c7f2e-5d0b-4a39-9a55-1f6f1d1c2b3a") == (
        "ps_ej5uoomdtxilv5s4qzeb5cf3zh"
    )
    assert ps.pseudonym("tip", "ឈ្មោះ") == "ps_kenmozt55xs4lkakc5nnrqej3l"


def test_pseudonym_is_the_digest_in_base32() -> None:
    import base64

    from cpu_shared.security.blind_index import HmacSha256

    ps = Pseudonymizer(KEY)
    mac = ps._kind_key("tip")
    assert isinstance(mac, HmacSha256)
    for n in range(3000):
        value = f"{n}-{os.urandom(8).hex()}"
        expected = base64.b32encode(mac.digest(value.encode())[:20]).decode().lower()[:26]
        assert ps.pseudonym("tip", value) == "ps_" + expected


def test_pseudonym_kind_is_checked_on_every_call() -> None:
    ps = Pseudonymizer(KEY)
    ps.pseudonym("child", "x")
    for bad in ("Child", "child name", ""):
        with pytest.raises(ValueError):
            ps.pseudonym(bad, "x")
    with pytest.raises(ValueError):
        ps.pseudonym("child", "")


@pytest.mark.parametrize("key_size", [0, 1, 32, 63, 64, 65, 200])
def test_hmac_with_precomputed_pads_is_rfc_2104(key_size: int) -> None:
    import hmac

    from cpu_shared.security.blind_index import HmacSha256

    key = os.urandom(key_size)
    mac = HmacSha256(key)
    for message in (b"", b"u6@example.com", "សុខ ដារា".encode(), os.urandom(1000)):
        assert mac.digest(message) == hmac.digest(key, message, "sha256")
        assert mac.digest(message) == mac.digest(message)  # the pads are not consumed
    assert key.hex() not in repr(mac) or not key
